"""The station staff's phone page: who may open it, typed codes recorded without JavaScript,
pick-up by form, and in Chromium the offline queue: scans made with no connection are kept on
the phone and recorded later with the times they were made."""

import asyncio
import datetime as dt
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from PIL import Image, ImageDraw

from originlive.logistics.station import read_code
from tests.accounts.test_pages import HTML, csrf_of, login
from tests.conftest import PASSWORD, Actor
from tests.logistics.conftest import Network
from tests.web.test_browser import CHROMIUM_ARGS, SCREENSHOTS, VIEWPORTS, _unavailable, chromium

__all__ = ["chromium"]  # a fixture, used by name

_SCAN_ID = re.compile(r'name="scan_id" value="([^"]+)"')


@asynccontextmanager
async def signed_in(app: Any, who: Actor) -> AsyncIterator[httpx.AsyncClient]:
    """A browser-like client of its own, signed in with the user's cookie session."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers={"Accept-Language": "en"}
    ) as browser:
        done = await login(browser, who.email)
        assert done.status_code == 303, done.text
        yield browser


def form_fields(page: httpx.Response, action: str) -> dict[str, str]:
    """The hidden fields (CSRF token, scan id) of the page's form posting to ``action``."""
    form = page.text[page.text.index(f'action="{action}"') :]
    found = _SCAN_ID.search(form)
    assert found, form
    return {"csrf_token": csrf_of(page), "scan_id": found.group(1)}


async def shipped(network: Network, buyer: Actor, count: int = 1) -> list[str]:
    """Labels of parcels on their way to the network's point."""
    order = await network.paid_order(buyer, quantity=count)
    if count == 1:
        return [p["code"] for p in await network.ship(order)]
    (line,) = order["items"]
    plans = [{"items": [{"order_item_id": line["id"], "quantity": 1}]} for _ in range(count)]
    return [p["code"] for p in await network.ship(order, parcels=plans)]


async def events(network: Network, code: str) -> list[dict[str, Any]]:
    seen = await network.market.client.get(
        f"/api/v1/parcels/{code}", headers=network.operator.headers
    )
    assert seen.status_code == 200, seen.text
    return list(seen.json()["events"])


# Code 128's bar and space widths of each value (ISO/IEC 15417); the last is the stop.
WIDTHS = """212222 222122 222221 121223 121322 131222 122213 122312 132212 221213 221312 231212
112232 122132 122231 113222 123122 123221 223211 221132 221231 213212 223112 312131 311222
321122 321221 312212 322112 322211 212123 212321 232121 111323 131123 131321 112313 132113
132311 211313 231113 231311 112133 112331 132131 113123 113321 133121 313121 211331 231131
213113 213311 213131 311123 311321 331121 312113 312311 332111 314111 221411 431111 111224
111422 121124 121421 141122 141221 112214 112412 122114 122411 142112 142211 241211 221114
413111 241112 134111 111242 121142 121241 114212 124112 124211 411212 421112 421211 212141
214121 412121 111143 111341 131141 114113 114311 411113 411311 113141 114131 311141 411131
211412 211214 211232 2331112"""
CODE128 = WIDTHS.split()


def label_video(code: str, path: Path) -> Path:
    """A one-frame Y4M video of a parcel label's Code 128 bars (code set B), for Chromium's
    fake camera: what a phone held over the label would see."""
    values = [104, *(ord(c) - 32 for c in code)]  # start B, then the characters
    values += [(values[0] + sum(i * v for i, v in enumerate(values[1:], 1))) % 103, 106]
    bars = [n % 2 == 0 for v in values for n, w in enumerate(CODE128[v]) for _ in range(int(w))]
    width, height, scale = 640, 480, 3
    picture = Image.new("L", (width, height), 255)
    left = (width - len(bars) * scale) // 2
    draw = ImageDraw.Draw(picture)
    for i, black in enumerate(bars):
        if black:
            draw.rectangle((left + i * scale, 150, left + (i + 1) * scale - 1, 330), fill=0)
    chroma = bytes([128]) * (width * height // 2)  # grey: no colour in either plane
    header = f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode()
    path.write_bytes(header + b"FRAME\n" + picture.tobytes() + chroma)
    return path


def test_codes_are_read_as_typed_on_a_phone() -> None:
    assert read_code(" ol0123456789 ") == ("parcel", "OL0123456789")
    assert read_code("ＯＬ０１２３４５６７８９") == ("parcel", "OL0123456789")  # a Chinese keyboard
    assert read_code("OL 0123 456 789") == ("parcel", "OL0123456789")
    assert read_code("Bag-2026-07") == ("bag", "Bag-2026-07")
    assert read_code("OL01") == ("bag", "OL01")  # too short for a label: a seal may look so
    assert read_code("袋子") is None and read_code("") is None and read_code("a/b") is None


async def test_only_a_nodes_staff_open_the_station_page(
    app: Any,
    client: httpx.AsyncClient,
    network: Network,
    make_user: Callable[..., Awaitable[Actor]],
) -> None:
    async with signed_in(app, network.station_staff) as browser:
        page = await browser.get("/station", headers=HTML)
        assert page.status_code == 200
        assert "武功镇服务站" in page.text and "Township station" in page.text
        assert 'name="code"' in page.text and 'action="/station/pickup"' in page.text
        assert page.headers["cache-control"] == "no-store"
        node = network.station["id"]
        assert f'href="/delivery/nodes/{node}/manifest"' in page.text
        assert 'href="/station/collection"' in page.text
        for link in (f"/delivery/nodes/{node}/manifest", "/station/collection"):
            assert (await browser.get(link, headers=HTML)).status_code == 200, link
        chinese = await browser.get("/station", headers=HTML | {"Accept-Language": "zh-CN"})
        assert "乡镇服务站" in chinese.text and "用摄像头扫码" in chinese.text
        words = re.search(r'id="station-words">(.*?)</script>', chinese.text, re.DOTALL)
        assert words and json.loads(words.group(1))["pending"] == "等待发送"  # scan.js's words
    for who in (await make_user("buyer"), network.market.merchant):
        async with signed_in(app, who) as browser:
            refused = await browser.get("/station", headers=HTML)
            assert refused.status_code == 403
            posted = await browser.post("/station/scans", data={"code": "OL0000000000"})
            assert posted.status_code == 403
    anonymous = await client.get("/station", headers=HTML)
    assert (
        anonymous.status_code == 303 and anonymous.headers["location"] == "/login?next=%2Fstation"
    )


async def test_a_typed_code_is_recorded_without_javascript(
    app: Any, network: Network, make_user: Callable[..., Awaitable[Actor]]
) -> None:
    (code,) = await shipped(network, await make_user("buyer"))
    async with signed_in(app, network.hub_staff) as browser:
        page = await browser.get("/station", headers=HTML)
        fields = form_fields(page, "/station/scans")
        form = fields | {"code": code.lower(), "status": "picked_up", "shelf": "1", "layer": "1"}
        posted = await browser.post("/station/scans", data=form, headers=HTML)
        assert posted.status_code == 303, posted.text
        assert posted.headers["location"] == f"/station?scan={fields['scan_id']}"
        shown = await browser.get(posted.headers["location"], headers=HTML)
        assert re.search(rf"{code}</b>\s*Picked up\s*· Recorded", shown.text), shown.text
        again = await browser.post("/station/scans", data=form, headers=HTML)  # sent twice
        assert again.headers["location"].endswith("&again=1")
        assert "Already recorded" in (await browser.get(again.headers["location"])).text

        recorded = [e for e in await events(network, code) if e["source"] == "scan"]
        assert [(e["status"], e["node_id"]) for e in recorded] == [("picked_up", network.hub["id"])]

        unknown = fields | {
            "code": "OL0000000001",
            "status": "in_transit",
            "scan_id": "form-x1y2z3",
        }
        refused = await browser.post("/station/scans", data=unknown, headers=HTML)
        assert refused.status_code == 404 and "No parcel OL0000000001." in refused.text
        assert 'value="OL0000000001"' in refused.text  # kept to correct
        broken = fields | {"code": "这不是", "status": "teleported"}
        bad = await browser.post("/station/scans", data=broken, headers=HTML)
        assert bad.status_code == 422
        assert "Type the label (OL and ten digits) or a bag&#39;s seal." in bad.text
        assert "Choose what happened." in bad.text
        assert len([e for e in await events(network, code) if e["source"] == "scan"]) == 1


async def test_shelving_and_pick_up_by_form_keep_the_code_from_the_staff(
    app: Any, network: Network, make_user: Callable[..., Awaitable[Actor]]
) -> None:
    buyer = await make_user("buyer")
    (code,) = await shipped(network, buyer)
    async with signed_in(app, network.point_staff) as browser:
        page = await browser.get("/station", headers=HTML)
        assert "<details open>" in page.text  # a village point hands parcels over
        form = form_fields(page, "/station/scans") | {
            "code": code, "status": "ready_for_pickup", "shelf": "2", "layer": "5",
        }  # fmt: skip
        shelved = await browser.post("/station/scans", data=form, headers=HTML)
        shown = await browser.get(shelved.headers["location"], headers=HTML)
        assert "Shelved: the buyer has been sent the pick-up code" in shown.text
        seen = await network.market.client.get(f"/api/v1/parcels/{code}", headers=buyer.headers)
        pickup_code = seen.json()["pickup_code"]
        assert pickup_code.startswith("2-5-") and pickup_code not in shown.text

        fields = form_fields(shown, "/station/pickup")
        wrong = fields | {"parcel_code": code, "pickup_code": "9-9-0000", "collected_by": ""}
        refused = await browser.post("/station/pickup", data=wrong, headers=HTML)
        assert refused.status_code == 422
        assert "Wrong pick-up code: 4 tries left before the parcel locks." in refused.text
        right = wrong | {"pickup_code": pickup_code, "collected_by": "王大满"}
        collected = await browser.post("/station/pickup", data=right, headers=HTML)
        assert collected.status_code == 303, collected.text
        shown = await browser.get(collected.headers["location"], headers=HTML)
        assert re.search(rf"{code}</b>\s*Collected", shown.text), shown.text
    seen = await network.market.client.get(f"/api/v1/parcels/{code}", headers=buyer.headers)
    assert seen.json()["status"] == "delivered"


async def test_the_offline_queue_records_scans_with_the_times_they_were_made(
    chromium: str,
    network: Network,
    make_user: Callable[..., Awaitable[Actor]],
    start_server: Callable[..., Awaitable[str]],
    database_url: str,
    tmp_path: Path,
) -> None:
    try:
        from playwright.async_api import async_playwright, expect
    except ImportError:
        _unavailable("playwright is not installed; pip install -e '.[dev]'")
    *codes, held_up = await shipped(network, await make_user("buyer"), count=5)
    camera = [
        "--use-fake-ui-for-media-stream",  # the camera is allowed without asking
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={label_video(held_up, tmp_path / 'label.y4m')}",
    ]
    # Arranged in-process first; the server's courier stays off: it would race the fixture's.
    server = await start_server(ORIGINLIVE_SANDBOX_COURIER="false")
    backend = database_url.split("+", 1)[0].split(":", 1)[0]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS + camera)
        try:
            context = await browser.new_context(
                viewport=VIEWPORTS["mobile"], locale="en-US", base_url=server
            )
            page = await context.new_page()
            await page.goto("/login?next=/station")
            await page.get_by_label("Email").fill(network.station_staff.email)
            await page.get_by_label("Password").fill(PASSWORD)
            await page.get_by_role("button", name="Sign in").click()
            await expect(page.get_by_role("heading", name="武功镇服务站")).to_be_visible()
            await expect(page.get_by_label("Arrived here")).to_be_checked()
            code_field = page.get_by_label("Label or bag seal")

            def scan_of(code: str) -> Any:
                return page.locator(f'#queue-list li[data-code="{code}"]')

            await code_field.fill(codes[0])
            await code_field.press("Enter")
            await expect(scan_of(codes[0])).to_have_attribute("data-state", "recorded")
            await expect(scan_of(codes[0]).locator(".outcome")).to_have_text("Recorded")
            await expect(page.locator(f'#parcels li[data-code="{codes[0]}"]')).to_have_attribute(
                "data-status", "at_node"
            )

            await context.set_offline(True)
            typed: dict[str, tuple[dt.datetime, dt.datetime]] = {}
            for code in codes[1:]:
                before = dt.datetime.now(dt.UTC)
                await code_field.fill(code)
                await code_field.press("Enter")
                await expect(scan_of(code)).to_have_attribute("data-state", "pending")
                typed[code] = (before, dt.datetime.now(dt.UTC))
            await expect(page.locator("#queue-state")).to_contain_text("3 waiting to send")
            await expect(page.locator("#queue-state")).to_contain_text("Offline")
            kept = await page.evaluate(
                "Object.keys(localStorage).filter(k => k.startsWith('originlive.scans.'))"
                ".flatMap(k => JSON.parse(localStorage.getItem(k)))"
                ".filter(s => s.state === 'pending').map(s => s.code)"
            )
            assert kept == codes[1:]  # on the phone before anything was sent
            await page.screenshot(
                path=str(SCREENSHOTS / f"{backend}-station-offline.png"), full_page=True
            )
            await asyncio.sleep(2)  # sent well after they were made

            online_at = dt.datetime.now(dt.UTC)
            await context.set_offline(False)
            for code in codes[1:]:
                await expect(scan_of(code)).to_have_attribute("data-state", "recorded")
            await expect(page.locator("#queue-state")).not_to_contain_text("waiting")
            await page.screenshot(
                path=str(SCREENSHOTS / f"{backend}-station-sent.png"), full_page=True
            )

            # The camera, over the label of the last parcel: read once, however long it is held.
            native = await page.evaluate("'BarcodeDetector' in window")
            await page.get_by_role("button", name="Scan with the camera").click()
            await expect(scan_of(held_up)).to_have_attribute("data-state", "recorded")
            await expect(page.locator("#scan-note")).to_have_text(f"Kept: {held_up}")
            await page.get_by_role("button", name="Stop the camera").click()
            await expect(page.locator("#camera")).to_be_hidden()
            assert await scan_of(held_up).count() == 1
            # Without BarcodeDetector (Chromium on Linux) the vendored ZXing reader read it.
            assert native or await page.evaluate("typeof window.ZXingWASM === 'object'")
        finally:
            await browser.close()

    (read,) = [e for e in await events(network, held_up) if e["source"] == "scan"]
    assert read["status"] == "at_node" and read["node_id"] == network.station["id"]
    for code in codes[1:]:
        (event,) = [e for e in await events(network, code) if e["source"] == "scan"]
        happened = dt.datetime.fromisoformat(event["happened_at"])
        before, after = typed[code]
        assert event["status"] == "at_node" and event["node_id"] == network.station["id"]
        assert before - dt.timedelta(seconds=1) <= happened <= after, (happened, typed[code])
        assert dt.datetime.fromisoformat(event["recorded_at"]) >= online_at > happened
        assert event["claimed_at"] is None and event["off_route"] is False


async def test_station_staff_land_on_the_station_page_after_signing_in(
    app: Any, network: Network, make_user: Callable[..., Awaitable[Actor]]
) -> None:
    from tests.accounts.test_pages import login

    buyer = await make_user("buyer")
    for email, going, lands in (
        (network.point_staff.email, "/", "/station"),
        (buyer.email, "/", "/"),
        (network.point_staff.email, "/orders", "/orders"),  # where they were going wins
    ):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as browser:
            landed = await login(browser, email, next_path=going)
            assert (landed.status_code, landed.headers["location"]) == (303, lands), email
