"""An anchor's sale from plan to payout-ready money, through the pages, in Debian's Chromium.

The shop's merchant offers an open plan that approves line-ups by itself on its plans page; an
anchor joins it in the selection library, schedules a session of their own, proposes the
shop's kiwis in its line-up (the offer opens at once), goes live and pins it. A buyer buys from
the room and pays in the sandbox. The county hub's staff carry the parcel to the door (their
phones' scans, over the API), the buyer confirms receipt, and ``originlive ledger settle``
runs with an after-sales window of nothing (it cannot move time), as it would once the window
closed. Then the anchor's statement shows their commission available, and the shop's its part
less the platform's fee, the commission and the hub's fee. Screenshots land in
``test-artifacts/screenshots/``.
"""

import asyncio
import datetime as dt
import re
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from originlive.accounts import service as accounts
from originlive.accounts.models import Role
from originlive.ledger.settlement import split
from originlive.web.templating import translations
from tests.conftest import PASSWORD
from tests.web.test_browser import CHROMIUM_ARGS, SCREENSHOTS, _unavailable, chromium
from tests.web.test_journey import LOCALES, _operator, new_page, pay_and_see_the_order

__all__ = ["chromium"]  # a fixture, used by name

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

COUNTY = "610431"  # 武功县: the shop, the hub and the buyer
PRICE_FEN, RATE_BP = 2990, 1200  # the anchor's live price, and the plan's 12 %
# The deployment's split, set on the server so that the test knows it.
RULE = split.SplitRule(platform_fee_bp=500, station_fee_fen=100)


async def _anchor(database_url: str) -> tuple[str, int]:
    """An anchor (as running a session of their own made them); their email and id."""
    email = f"anchor-{uuid.uuid4().hex[:8]}@example.com"
    engine = create_async_engine(database_url)
    try:
        async with async_sessionmaker(engine)() as session:
            user = await accounts.create(
                session, email=email, password=PASSWORD, display_name="新农人 小周",
                roles=(Role.ANCHOR,),
            )  # fmt: skip
            anchor_id = user.id
            await session.commit()
    finally:
        await engine.dispose()
    return email, anchor_id


class Api:
    """The JSON API of the live server, as the test's staff and arrangements use it."""

    def __init__(self, url: str) -> None:
        self.client = httpx.AsyncClient(base_url=url, timeout=30)

    async def token(self, email: str) -> dict[str, str]:
        made = await self.client.post(
            "/api/v1/auth/token", data={"username": email, "password": PASSWORD}
        )
        assert made.status_code == 200, made.text
        return {"Authorization": f"Bearer {made.json()['access_token']}"}

    async def register(self, email: str, name: str) -> dict[str, str]:
        body = {"email": email, "password": PASSWORD, "display_name": name}
        made = await self.client.post("/api/v1/auth/register", json=body)
        assert made.status_code == 201, made.text
        return await self.token(email)

    async def post(self, path: str, headers: dict[str, str], **body: Any) -> Any:
        done = await self.client.post(path, json=body, headers=headers)
        assert done.status_code in (200, 201, 204), done.text
        return done.json() if done.content else None


async def _arrange(api: Api, tag: str, operator_email: str) -> dict[str, Any]:
    """A merchant's approved shop with a product, and the county's hub (which delivers to the
    door) with a member of staff."""
    merchant = await api.register(f"coop-{tag}@example.com", "徐杨合作社")
    shop = await api.post(
        "/api/v1/shops", merchant, name=f"徐杨猕猴桃合作社 {tag}", region_code=COUNTY,
        description="关中平原",
    )  # fmt: skip
    product = await api.post(
        f"/api/v1/shops/{shop['id']}/products", merchant, title="徐香猕猴桃 5斤装",
        category="水果", origin_region_code=COUNTY,
        skus=[{"name": "标准装", "price_cents": 3990, "stock": 50}],
    )  # fmt: skip
    operator = await api.token(operator_email)
    hub = await api.post(
        "/api/v1/delivery-nodes", operator, kind="county_hub", region_code=COUNTY,
        name="武功县物流中心", home_delivery=True,
    )  # fmt: skip
    staff_email = f"hub-{tag}@example.com"
    staff = await api.register(staff_email, "物流中心 小王")
    await api.post(f"/api/v1/delivery-nodes/{hub['id']}/staff", operator, email=staff_email)
    return {"merchant": merchant, "shop": shop, "product": product, "staff": staff}


def _settle(database_url: str, data_dir: Path) -> str:
    """``originlive ledger settle`` on the server's database, the after-sales window closed."""
    env = {
        "ORIGINLIVE_DATABASE_URL": database_url,
        "ORIGINLIVE_DATA_DIR": str(data_dir),
        "ORIGINLIVE_SECRET_KEY": "live-test-secret",
        "ORIGINLIVE_AFTER_SALES_DAYS": "0",
        "ORIGINLIVE_PLATFORM_FEE_BP": str(RULE.platform_fee_bp),
        "ORIGINLIVE_STATION_FEE_FEN": str(RULE.station_fee_fen),
        "PATH": "/usr/bin:/bin",
    }
    command = [str(Path(sys.executable).with_name("originlive")), "ledger", "settle"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("language", LOCALES)
async def test_an_anchor_s_sale_is_split_between_anchor_and_shop(
    chromium: str, farm: Any, tmp_path: Path, language: str
) -> None:
    try:
        from playwright.async_api import async_playwright, expect
    except ImportError:
        _unavailable("playwright is not installed; pip install -e '.[dev]'")
    _: Callable[[str], str] = translations(language).gettext
    url = await farm.start(
        ORIGINLIVE_AFTER_SALES_DAYS="0",
        ORIGINLIVE_SETTLE_INTERVAL_SECONDS="0",  # settled by the command, below
        ORIGINLIVE_PLATFORM_FEE_BP=str(RULE.platform_fee_bp),
        ORIGINLIVE_STATION_FEE_FEN=str(RULE.station_fee_fen),
    )
    tag = uuid.uuid4().hex[:8]
    operator_email = await _operator(farm.database_url)
    anchor_email, anchor_id = await _anchor(farm.database_url)
    api = Api(url)
    made = await _arrange(api, tag, operator_email)
    shop_id = made["shop"]["id"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    step = iter(range(1, 100))

    async def shot(page: Any, who: str, name: str) -> None:
        path = SCREENSHOTS / f"anchor-journey-{language}-{next(step):02d}-{who}-{name}.png"
        await page.screenshot(path=str(path), full_page=True)

    async def sign_in(page: Any, email: str) -> None:
        await page.goto("/login")
        await page.get_by_label(_("Email")).fill(email)
        await page.get_by_label(_("Password")).fill(PASSWORD)
        await page.get_by_role("button", name=_("Sign in")).click()
        await expect(page.locator(".who")).to_be_visible()

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:

            async def context(viewport: str) -> Any:
                return await new_page(browser, url=url, language=language, viewport=viewport)

            merchant, anchor, buyer = (
                await context("desktop"), await context("desktop"), await context("mobile")
            )  # fmt: skip

            # The merchant offers an open plan at 12 % that approves line-ups by itself.
            await sign_in(merchant, f"coop-{tag}@example.com")
            await merchant.goto(f"/console/shops/{shop_id}/plans")
            plan = merchant.locator("#plan-form")
            await plan.get_by_label(_("Name"), exact=True).fill("新农人带货计划")
            await plan.get_by_label(_("Rate (per cent)")).fill("12")
            await plan.get_by_label(_("Approve members' line-ups without asking me")).check()
            await plan.get_by_role("button", name=_("Offer the plan")).click()
            await expect(merchant.get_by_text(_("The plan is offered to anchors."))).to_be_visible()
            await shot(merchant, "merchant", "plan")

            # The anchor joins it in the library and schedules a session of their own.
            await sign_in(anchor, anchor_email)
            await anchor.goto("/anchor/library")
            join = _("Join the plan at %(rate)s") % {"rate": "12%"}
            await anchor.get_by_role("button", name=join).click()
            await expect(anchor.get_by_text(_("You joined the plan."))).to_be_visible()
            await shot(anchor, "anchor", "joined")
            await anchor.goto("/anchor/live")
            await anchor.get_by_label(_("Title")).fill("新农人小周 带你逛果园")
            await anchor.get_by_role("button", name=_("Schedule")).click()
            control_room = re.compile(r"/console/live/(\d+)")
            await anchor.wait_for_url(control_room)
            session_id = int(control_room.search(anchor.url).group(1))  # type: ignore[union-attr]

            # It proposes the kiwis in the session's line-up: the plan approves at once.
            await anchor.goto(f"/anchor/live/{session_id}/lineup")
            form = anchor.locator("#lineup-form")
            choice = f"徐香猕猴桃 5斤装 · 标准装 · {made['shop']['name']} · 12%"
            await form.get_by_label(_("What to sell (shop, your rate)")).select_option(label=choice)
            await form.get_by_label(_("Live price (yuan)")).fill(f"{PRICE_FEN / 100:.2f}")
            await form.get_by_label(_("How many to put on sale")).fill("20")
            await form.get_by_label(_("At most per buyer")).fill("2")
            await form.get_by_role("button", name=_("Propose")).click()
            flash = _("In your session: its offer is open, ready to pin.")
            await expect(anchor.get_by_text(flash)).to_be_visible()
            await shot(anchor, "anchor", "lineup")

            # It goes live and pins the offer in the control room.
            await anchor.goto(f"/console/live/{session_id}")
            await anchor.get_by_role("button", name=_("Go live now")).click()
            await anchor.locator("#sales").get_by_role("button", name=_("Pin"), exact=True).click()
            await expect(anchor.locator("#sales tr.pinned")).to_have_count(1)
            await shot(anchor, "anchor", "pinned")

            # The buyer buys one from the room and pays in the sandbox.
            await api.register(f"buyer-{tag}@example.com", "李梅")
            await sign_in(buyer, f"buyer-{tag}@example.com")
            await buyer.goto(f"/live/{session_id}")
            await expect(buyer.locator("#offer-price")).to_have_text(f"¥{PRICE_FEN / 100:.2f}")
            await buyer.get_by_role("link", name=_("Buy now")).click()
            await buyer.get_by_label(_("How many")).select_option("1")
            await buyer.get_by_label(_("Receiver")).fill("李梅")
            await buyer.get_by_label(_("Phone")).fill("13900000000")
            await buyer.get_by_label(_("Region code")).fill(COUNTY)
            await buyer.get_by_label(_("Address")).fill("武功镇 徐杨村 3组")
            await buyer.get_by_role("button", name=_("Place the order and pay")).click()
            order_id = await pay_and_see_the_order(buyer, _)
            await shot(buyer, "buyer", "paid")

            # The shop ships it through the network; the hub's staff carry it to the door.
            await api.post(f"/api/v1/orders/{order_id}/ship", made["merchant"])
            parcels = await api.client.get(
                f"/api/v1/orders/{order_id}/parcels", headers=made["merchant"]
            )
            (parcel,) = parcels.json()
            for n, status in enumerate(("picked_up", "out_for_delivery", "delivered")):
                await api.post(
                    "/api/v1/scans", made["staff"], scan_id=f"journey-{tag}-{n}",
                    parcel_code=parcel["code"], status=status,
                    happened_at=dt.datetime.now(dt.UTC).isoformat(),
                )  # fmt: skip
            await buyer.reload()
            await expect(buyer.locator("#order-status")).to_have_text(_("Delivered"))
            # The buyer confirms receipt.
            buyer_token = await api.token(f"buyer-{tag}@example.com")
            confirmed = await api.post(f"/api/v1/orders/{order_id}/confirm-receipt", buyer_token)
            assert confirmed["status"] == "completed"

            # The settlement runs once the after-sales window has closed.
            settled = await asyncio.to_thread(_settle, farm.database_url, tmp_path / "data")
            assert "1 orders released" in settled, settled

            # Both statements show the split: the anchor's commission, the shop's part less
            # the platform's fee, the commission and the hub's fee for the parcel.
            shares = split.shares(
                total_fen=PRICE_FEN,
                lines=[split.SoldLine(PRICE_FEN, anchor_id, RATE_BP)],
                rule=RULE,
            )
            commission = shares.anchors[anchor_id]
            assert commission == PRICE_FEN * RATE_BP // 10_000
            shop_part = shares.shop - RULE.station_fee_fen
            closing = _("Closing balance")
            await anchor.goto("/anchor/statement")
            row = anchor.locator("#summary tr", has_text=closing)
            await expect(row.locator("td")).to_have_text(["¥0.00", f"¥{commission / 100:.2f}"])
            released = anchor.locator("#summary tr", has_text=_("Released"))
            await expect(released.locator("td").nth(1)).to_have_text(f"¥{commission / 100:.2f}")
            await shot(anchor, "anchor", "statement")
            await merchant.goto(f"/console/shops/{shop_id}/statement")
            row = merchant.locator("#summary tr", has_text=closing)
            await expect(row.locator("td")).to_have_text(["¥0.00", f"¥{shop_part / 100:.2f}"])
            await shot(merchant, "merchant", "statement")
        finally:
            await browser.close()
            await api.client.aclose()
