"""A real browser against the real server: register, sign in, see your name, sign out.

Chromium comes from the system (Debian's ``chromium`` package), never from
``playwright install``. Without it the test is skipped on a developer machine and fails in CI.
Screenshots of every step land in ``test-artifacts/screenshots/``.
"""

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import httpx
import pytest

from tests.catalog.conftest import png
from tests.conftest import IN_CI, PASSWORD

if TYPE_CHECKING:
    from playwright.async_api import ViewportSize

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = os.environ.get("ORIGINLIVE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORTS: dict[str, "ViewportSize"] = {
    "mobile": {"width": 360, "height": 780},
    "desktop": {"width": 1280, "height": 900},
}


def _unavailable(message: str) -> NoReturn:
    if IN_CI:
        pytest.fail(message + " (CI must run the browser test)")
    pytest.skip(message)


@pytest.fixture
def chromium() -> str:
    """The system Chromium's path."""
    if not Path(CHROMIUM).exists():
        _unavailable(f"no Chromium at {CHROMIUM}; apt-get install chromium")
    return CHROMIUM


async def _stock_the_shelves(url: str) -> None:
    """A merchant with an approved shop and two products, arranged over the JSON API."""
    async with httpx.AsyncClient(base_url=url) as api:
        merchant = {"email": "coop@example.com", "password": PASSWORD, "display_name": "合作社"}
        assert (await api.post("/api/v1/auth/register", json=merchant)).status_code == 201
        token = await api.post(
            "/api/v1/auth/token", data={"username": merchant["email"], "password": PASSWORD}
        )
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        shop = await api.post(
            "/api/v1/shops",
            json={"name": "武功猕猴桃合作社", "region_code": "610431", "description": "关中平原"},
            headers=headers,
        )
        assert shop.status_code == 201, shop.text
        for title, price in (("徐香猕猴桃 5斤装", 3990), ("红心猕猴桃 礼盒 12个", 8800)):
            product = await api.post(
                f"/api/v1/shops/{shop.json()['id']}/products",
                json={
                    "title": title,
                    "category": "水果",
                    "origin_region_code": "610431",
                    "skus": [{"name": "标准装", "price_cents": price, "stock": 50}],
                    "provenance": [
                        {
                            "batch": "2026-09-A",
                            "kind": kind,
                            "date": day,
                            "place": place,
                            "place_region_code": "610431",
                        }
                        for kind, day, place in (
                            ("harvest", "2026-09-12", "普集街道果园"),
                            ("inspection", "2026-09-13", "县农产品检测站"),
                        )
                    ],
                },
                headers=headers,
            )
            assert product.status_code == 201, product.text
        image = await api.post(
            f"/api/v1/products/{product.json()['id']}/images",
            files={"file": ("kiwi.png", png(48, 48), "image/png")},
            headers=headers,
        )
        assert image.status_code == 201, image.text


@pytest.mark.parametrize("viewport", VIEWPORTS)
async def test_register_sign_in_and_out_in_a_browser(
    chromium: str, live_server: str, database_url: str, viewport: str
) -> None:
    try:
        from playwright.async_api import async_playwright, expect
    except ImportError:
        _unavailable("playwright is not installed; pip install -e '.[dev]'")
    await _stock_the_shelves(live_server)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    backend = database_url.split("+", 1)[0].split(":", 1)[0]
    step = iter(range(1, 100))

    async def shot(page: Any, name: str) -> None:
        path = SCREENSHOTS / f"{backend}-{viewport}-{next(step):02d}-{name}.png"
        await page.screenshot(path=str(path), full_page=True)

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(
                viewport=VIEWPORTS[viewport], locale="en-US", base_url=live_server
            )
            page = await context.new_page()

            await page.goto("/")
            await expect(page.get_by_text("徐香猕猴桃 5斤装")).to_be_visible()
            await shot(page, "home")

            await page.get_by_role("link", name="Register").click()
            await page.get_by_label("Your name").fill("李梅")
            await page.get_by_label("Email").fill("li.mei@example.com")
            await page.get_by_label("Password").fill(PASSWORD)
            await shot(page, "register")
            await page.get_by_role("button", name="Create account").click()

            await expect(page.get_by_text("Your account is ready.")).to_be_visible()
            await page.get_by_label("Email").fill("li.mei@example.com")
            await page.get_by_label("Password").fill("wrong password")
            await page.get_by_role("button", name="Sign in").click()
            await expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")
            await shot(page, "wrong-password")

            await page.get_by_label("Password").fill(PASSWORD)
            await page.get_by_role("button", name="Sign in").click()
            await expect(page).to_have_url(f"{live_server}/")
            await expect(page.locator(".who")).to_have_text("李梅")
            cookies = {c["name"]: c for c in await context.cookies()}
            assert cookies["originlive_session"]["httpOnly"] is True
            assert cookies["originlive_session"]["sameSite"] == "Lax"
            await shot(page, "signed-in")

            await page.get_by_text("红心猕猴桃 礼盒 12个").click()
            await expect(page.get_by_role("heading", name="红心猕猴桃 礼盒 12个")).to_be_visible()
            await expect(page.locator(".price.big")).to_have_text("¥88.00")
            await shot(page, "product")

            await page.locator(".facts").get_by_role("link", name="武功猕猴桃合作社").click()
            await expect(page.get_by_role("heading", name="武功猕猴桃合作社")).to_be_visible()
            await shot(page, "shop")

            await page.get_by_role("searchbox", name="Search products").fill("礼盒")
            await page.get_by_role("button", name="Search", exact=True).click()
            await expect(page.locator(".summary")).to_have_text("1 product")
            await shot(page, "search")

            await page.get_by_role("button", name="Sign out").click()
            await expect(page.get_by_role("link", name="Sign in")).to_be_visible()
            await expect(page.locator(".who")).to_have_count(0)
            assert "originlive_session" not in {c["name"] for c in await context.cookies()}
            await shot(page, "signed-out")
        finally:
            await browser.close()
