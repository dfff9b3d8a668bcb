"""The whole journey through the pages, in Debian's Chromium, in Chinese and in English.

A grower registers, opens a shop, which an operator approves; the grower lists a product with
a photo and its provenance, schedules a session and reads the RTMP server and stream key off
the console; ffmpeg publishes there, as OBS would. A buyer registers on a phone-sized screen,
finds the session on the home page, watches (the video's currentTime advances), chats and
likes; the grower opens a flash offer pinned in the room; the buyer buys it, pays in the
sandbox and sees the order paid; the grower sees the sale come in, ships the order, and the
buyer sees it shipped. Screenshots of every step land in ``test-artifacts/screenshots/``.

Labels are read from the pages' own catalogue, so the Chinese run clicks what a Chinese
reader sees (``tests/web/test_i18n.py`` holds the catalogue to every string).
"""

import asyncio
import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from originlive.accounts import service as accounts
from originlive.accounts.models import Role
from originlive.web.templating import LANGUAGES, translations
from tests.catalog.conftest import png
from tests.conftest import PASSWORD
from tests.media.conftest import publish
from tests.servers import free_port
from tests.web.test_browser import CHROMIUM_ARGS, SCREENSHOTS, VIEWPORTS, _unavailable

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

PAGE_BUDGET = 300 * 1024  # the room's first load, video excluded (issue 6)
LOCALES = {"en": "en-US", "zh_CN": "zh-CN"}


async def pay_and_see_the_order(buyer: Any, _: Callable[[str], str]) -> int:
    """Pay on the sandbox gateway's page, open the order and wait until it says paid; its id."""
    from playwright.async_api import expect  # imported where the browser tests run only

    await buyer.get_by_role("button", name=_("Pay"), exact=True).click()
    await buyer.get_by_role("link", name=_("See the order")).click()
    for _attempt in range(50):  # the gateway's webhook arrives within moments
        if await buyer.locator("#order-status").inner_text() == _("Paid"):
            break
        await asyncio.sleep(0.2)
        await buyer.reload()
    await expect(buyer.locator("#order-status")).to_have_text(_("Paid"))
    return int(buyer.url.rstrip("/").rsplit("/", 1)[1])


async def new_page(browser: Any, *, url: str, language: str, viewport: str) -> Any:
    """A page in a context of its own: the journey's site, language and screen."""
    made = await browser.new_context(
        viewport=VIEWPORTS[viewport], base_url=url, locale=LOCALES[language]
    )
    return await made.new_page()


async def _operator(database_url: str) -> str:
    """An operator, made as `originlive create-operator` makes one; their email."""
    email = f"ops-{uuid.uuid4().hex[:8]}@example.com"
    engine = create_async_engine(database_url)
    try:
        async with async_sessionmaker(engine)() as session:
            await accounts.create(
                session, email=email, password=PASSWORD, display_name="县电商中心",
                roles=(Role.OPERATOR,),
            )  # fmt: skip
            await session.commit()
    finally:
        await engine.dispose()
    return email


@pytest.mark.parametrize("language", LOCALES)
async def test_the_whole_journey_through_the_pages(
    chromium: str, farm: Any, tmp_path: Any, language: str
) -> None:
    try:
        from playwright.async_api import async_playwright, expect
    except ImportError:
        _unavailable("playwright is not installed; pip install -e '.[dev]'")
    _: Callable[[str], str] = translations(language).gettext
    rtmp_port = free_port()
    url = await farm.start(
        ORIGINLIVE_RTMP_PORT=str(rtmp_port), ORIGINLIVE_AUTO_APPROVE_SHOPS="false"
    )
    operator_email = await _operator(farm.database_url)
    tag = uuid.uuid4().hex[:8]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    step = iter(range(1, 100))

    async def shot(page: Any, who: str, name: str) -> None:
        path = SCREENSHOTS / f"journey-{language}-{next(step):02d}-{who}-{name}.png"
        await page.screenshot(path=str(path), full_page=True)

    async def register(page: Any, name: str, email: str) -> None:
        await page.goto("/register")
        await page.get_by_label(_("Your name")).fill(name)
        await page.get_by_label(_("Email")).fill(email)
        await page.get_by_label(_("Password")).fill(PASSWORD)
        await page.get_by_role("button", name=_("Create account")).click()
        await sign_in(page, email)  # the account is made; signing in is the next page
        await expect(page.locator(".who")).to_have_text(name)

    async def sign_in(page: Any, email: str) -> None:
        if "/login" not in page.url:
            await page.goto("/login")
        await page.get_by_label(_("Email")).fill(email)
        await page.get_by_label(_("Password")).fill(PASSWORD)
        await page.get_by_role("button", name=_("Sign in")).click()

    publisher = None
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=chromium,
            args=[*CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required"],
        )
        try:

            async def context(viewport: str) -> Any:
                return await new_page(browser, url=url, language=language, viewport=viewport)

            grower, buyer, operator = (
                await context("desktop"), await context("mobile"), await context("desktop")
            )  # fmt: skip

            # The grower registers and opens a shop; it waits for an operator.
            await register(grower, "徐杨果园", f"grower-{tag}@example.com")
            assert await grower.get_attribute("html", "lang") == LANGUAGES[language][1]
            await grower.get_by_role("link", name=_("My shops")).click()
            await grower.get_by_label(_("Shop name")).fill(f"徐杨果园 {tag}")
            await grower.get_by_label(_("Where the shop is (region code)")).fill("610431")
            await grower.get_by_label(_("About the shop")).fill("秦岭北麓的猕猴桃")
            await grower.get_by_role("button", name=_("Open the shop")).click()
            await expect(grower.locator("#shop-state")).to_have_text(_("Awaiting approval"))
            shop_url = grower.url.split("?")[0]
            await shot(grower, "grower", "shop-opened")

            # The county centre's operator approves it.
            await sign_in(operator, operator_email)
            await operator.get_by_role("link", name=_("Operator")).click()
            review = operator.locator(".review", has_text=f"徐杨果园 {tag}")
            await review.get_by_role("button", name=_("Approve")).click()
            await expect(operator.locator(".review", has_text=f"徐杨果园 {tag}")).to_have_count(0)
            await shot(operator, "operator", "approved")

            # The grower lists a product, with a photo and a step of its provenance.
            await grower.goto(shop_url)
            await expect(grower.locator("#shop-state")).to_have_text(_("Approved"))
            await grower.get_by_role("link", name=_("Products"), exact=True).click()
            await grower.get_by_label(_("Title")).fill("徐香猕猴桃 5斤装")
            await grower.get_by_label(_("Category")).fill("水果")
            await grower.get_by_label(_("Origin (region code)")).fill("610431")
            await grower.get_by_label(_("Description"), exact=True).fill("树上自然熟，现摘现发")
            await grower.get_by_label(_("Variant"), exact=True).fill("5斤 中果")
            await grower.get_by_label(_("Price (yuan)")).fill("39.90")
            await grower.get_by_label(_("Stock"), exact=True).fill("200")
            await shot(grower, "grower", "new-product")
            await grower.get_by_role("button", name=_("Create the product")).click()
            photo = tmp_path / "orchard.png"
            photo.write_bytes(png(64, 48))
            await grower.locator("#f-photo").set_input_files(str(photo))
            await grower.get_by_role("button", name=_("Upload")).click()
            await expect(grower.locator(".photos img")).to_have_count(1)
            provenance = grower.locator("#provenance-form")
            await provenance.get_by_label(_("Batch")).fill("2026-09-A")
            await provenance.get_by_label(_("Where"), exact=True).fill("徐杨村 3组果园")
            await provenance.get_by_role("button", name=_("Add the step")).click()
            await expect(grower.locator(".timeline")).to_contain_text("徐杨村 3组果园")
            await shot(grower, "grower", "product")

            # It schedules a session and reads where to point the encoder.
            await grower.get_by_role("link", name=_("Live sessions")).click()
            await grower.get_by_label(_("Title")).fill("猕猴桃采摘直播")
            await grower.get_by_role("button", name=_("Schedule")).click()
            server = await grower.locator("#ingest-server").input_value()
            key = await grower.locator("#stream-key").input_value()
            assert server == f"rtmp://127.0.0.1:{rtmp_port}/live" and len(key) > 20
            session_id = int(re.search(r"/console/live/(\d+)", grower.url).group(1))  # type: ignore[union-attr]
            await shot(grower, "grower", "control-room")

            # The buyer registers on a phone; the room before the anchor goes live, weighed.
            await register(buyer, "李梅", f"buyer-{tag}@example.com")
            # Weighed in a context of its own: a first visit, nothing cached.
            loaded: list[int] = []

            async def weigh(response: Any) -> None:
                if "/media/hls/" not in response.url:
                    loaded.append(len(await response.body()))

            first_visit = await context("mobile")
            first_visit.on("response", weigh)
            await first_visit.goto(f"/live/{session_id}")
            await first_visit.wait_for_load_state("networkidle")
            first_visit.remove_listener("response", weigh)
            assert sum(loaded) < PAGE_BUDGET, loaded
            await first_visit.context.close()
            await buyer.goto(f"/live/{session_id}")
            await expect(buyer.locator("#room-status")).to_have_text(_("Starting soon"))
            await shot(buyer, "buyer", "room-scheduled")

            # ffmpeg publishes where the console said: the session goes live by itself.
            publisher = publish(f"{server}/{key}", seconds=300, log=tmp_path / "publisher.log")
            await expect(buyer.locator("#room-status")).to_have_text(_("Live"), timeout=20_000)
            await buyer.goto("/")
            await buyer.locator(f'a[href="/live/{session_id}"]').first.click()
            await buyer.wait_for_function(
                "document.getElementById('player').currentTime > 1", timeout=30_000
            )
            first = await buyer.evaluate("document.getElementById('player').currentTime")
            await asyncio.sleep(1.5)
            assert await buyer.evaluate("document.getElementById('player').currentTime") > first
            await shot(buyer, "buyer", "playing")
            await buyer.get_by_placeholder(_("Say something")).fill("还有货吗？")
            await buyer.get_by_role("button", name=_("Send")).click()
            await expect(buyer.locator("#feed")).to_contain_text("还有货吗？")
            await buyer.get_by_role("button", name=_("Like")).click()
            await expect(buyer.locator("#room-likes")).to_have_text("1", timeout=5_000)
            await shot(buyer, "buyer", "chat")

            # The grower sees it live and opens a flash offer, pinned.
            await grower.reload()
            await expect(grower.locator("#session-state")).to_have_text(_("Live"))
            offer = grower.locator("#offer-form")
            await offer.get_by_label(_("Live price (yuan)")).fill("29.90")
            await offer.get_by_label(_("How many to put on sale")).fill("50")
            await offer.get_by_label(_("At most per buyer")).fill("5")
            await offer.get_by_role("button", name=_("Open the offer")).click()
            await expect(grower.locator("#offers .offer-left")).to_have_text("50")
            await shot(grower, "grower", "offer-pinned")

            # The buyer sees it pinned, buys two and pays in the sandbox; the room (here the
            # grower's second tab) hears of the purchase.
            room = await grower.context.new_page()
            await room.goto(f"/live/{session_id}")
            await expect(room.locator("#offer-left")).to_have_text("50")
            await expect(buyer.locator("#offer-price")).to_have_text("¥29.90")
            await expect(buyer.locator("#offer-left")).to_have_text("50")
            await buyer.get_by_role("link", name=_("Buy now")).click()
            await buyer.get_by_label(_("How many")).select_option("2")
            await buyer.get_by_label(_("Receiver")).fill("李梅")
            await buyer.get_by_label(_("Phone")).fill("13900000000")
            await buyer.get_by_label(_("Region code")).fill("610431")
            await buyer.get_by_label(_("Address")).fill("武功镇 徐杨村 3组")
            await shot(buyer, "buyer", "buy")
            await buyer.get_by_role("button", name=_("Place the order and pay")).click()
            await expect(buyer.locator(".checkout .price")).to_have_text("¥59.80")
            bought = _("A buyer in {county} bought {item}").split("{item}")[0]
            await expect(room.locator("#feed .purchase")).to_contain_text(
                bought.format(county="武功县").strip()
            )
            await expect(room.locator("#offer-left")).to_have_text("48")
            await shot(room, "room", "purchase-heard")
            await shot(buyer, "buyer", "checkout")
            order_id = await pay_and_see_the_order(buyer, _)
            await shot(buyer, "buyer", "paid")

            # The grower's sales panel takes the sale in by itself (htmx), units included.
            await expect(grower.locator("#paid-orders")).to_have_text("1", timeout=10_000)
            await expect(grower.locator("#takings")).to_have_text("¥59.80")
            await expect(grower.locator("#offers .offer-left")).to_have_text("48")
            await shot(grower, "grower", "sales")

            # It ships the paid order from the console; the buyer sees it shipped.
            await grower.get_by_role("link", name=_("Orders"), exact=True).click()
            card = grower.locator(f"#order-{order_id}")
            await expect(card.locator(".order-status")).to_have_text(_("Paid"))
            await card.get_by_text(_("Ship"), exact=True).click()
            await card.get_by_label(_("Carrier")).fill("中国邮政")
            await card.get_by_label(_("Waybill number")).fill("EMS-2026112501")
            await card.get_by_role("button", name=_("Mark as shipped")).click()
            await grower.goto(f"{shop_url}/orders?status=shipped")
            await expect(grower.locator(f"#order-{order_id}")).to_contain_text("EMS-2026112501")
            await shot(grower, "grower", "shipped")
            await buyer.reload()
            await expect(buyer.locator("#order-status")).to_have_text(_("Shipped"))
            await expect(buyer.locator("#order-history")).to_contain_text("EMS-2026112501")
            await shot(buyer, "buyer", "shipped")
        finally:
            await browser.close()
            if publisher is not None:
                publisher.kill()
                publisher.wait()
