"""The region picker in a real browser on a phone-sized screen: province → … → village fills
the code in, the form posts it, and the next form opens at the place of the last order's code.
A screenshot lands in ``test-artifacts/screenshots/``."""

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from originlive.regions import service as regions
from tests.conftest import PASSWORD
from tests.media.conftest import schedule
from tests.web.test_browser import CHROMIUM_ARGS, SCREENSHOTS, VIEWPORTS, _unavailable

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

TOWNSHIP, VILLAGE = "610431102", "610431102202"
FULL_NAME = "陕西省 咸阳市 武功县 武功镇 徐杨村"


async def _villages(database_url: str) -> None:
    """A village under 武功县's township 武功镇 (shipped), as an operator adds it."""
    engine = create_async_engine(database_url)
    try:
        async with async_sessionmaker(engine)() as session:
            await regions.create(session, code=VILLAGE, name="徐杨村", parent_code=TOWNSHIP)
            await session.commit()
    finally:
        await engine.dispose()


async def test_choose_a_village_and_its_code_is_filled_in(
    chromium: str, live_server: str, database_url: str
) -> None:
    try:
        from playwright.async_api import async_playwright, expect
    except ImportError:
        _unavailable("playwright is not installed; pip install -e '.[dev]'")
    await _villages(database_url)
    merchant, live = await schedule(live_server)
    email = "picker@example.com"
    async with httpx.AsyncClient(base_url=live_server) as api:
        offer = await api.post(
            f"/api/v1/live-sessions/{live['id']}/offers",
            json={"sku_id": merchant.sku_id, "price_cents": 2990, "quantity": 50,
                  "per_buyer_limit": 5},
            headers=merchant.headers,
        )  # fmt: skip
        assert offer.status_code == 201, offer.text
        body = {"email": email, "password": PASSWORD, "display_name": "李梅"}
        assert (await api.post("/api/v1/auth/register", json=body)).status_code == 201
    buy = f"/offers/{offer.json()['id']}/buy"

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(
                viewport=VIEWPORTS["mobile"], base_url=live_server, locale="en-US"
            )
            page: Any = await context.new_page()
            await page.goto(f"/login?next={buy}")
            await page.get_by_label("Email").fill(email)
            await page.get_by_label("Password").fill(PASSWORD)
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_url(f"**{buy}")

            code = page.get_by_label("Region code")
            for level, name in (
                ("Province", "陕西省"),
                ("City", "咸阳市"),
                ("County or district", "武功县"),
                ("Township or town", "武功镇"),
                ("Village or community", "徐杨村"),
            ):
                await page.get_by_label(level, exact=True).select_option(label=name)
            await expect(code).to_have_value(VILLAGE)
            await expect(page.locator(".region-place")).to_have_text(FULL_NAME)
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(SCREENSHOTS / "region-picker.png"), full_page=True)

            # The form posts the code; the next form opens at that place.
            await page.get_by_label("Receiver").fill("李梅")
            await page.get_by_label("Phone").fill("13900000000")
            await page.get_by_label("Address").fill("徐杨村 3组")
            await page.get_by_role("button", name="Place the order and pay").click()
            await page.wait_for_url("**/checkout/**")
            await page.goto(buy)
            await expect(page.get_by_label("Village or community", exact=True)).to_have_value(
                VILLAGE
            )
            await expect(page.locator(".region-place")).to_have_text(FULL_NAME)

            # A code typed by hand opens the selects at its place too.
            await code.fill("610431")
            await code.press("Tab")
            await expect(page.get_by_label("County or district", exact=True)).to_have_value(
                "610431"
            )
            await expect(page.get_by_label("Township or town", exact=True)).to_have_value("")
            await expect(page.get_by_label("Village or community", exact=True)).to_have_count(0)
            await expect(page.locator(".region-place")).to_have_text("陕西省 咸阳市 武功县")
        finally:
            await browser.close()
