"""The live room's page and the home page's live sessions, in-process (no JavaScript)."""

import httpx

from tests.live.test_api import on_air
from tests.orders.conftest import Market


async def test_the_room_page_without_javascript_and_the_home_page_lists_it(
    market: Market, client: httpx.AsyncClient
) -> None:
    live = await on_air(market, title="多肉大棚直播")

    page = await client.get(f"/live/{live['id']}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "多肉大棚直播" in html and "¥19.90" in html and 'id="offer-left">30<' in html
    assert f'data-playback="/media/hls/{live["id"]}/index.m3u8"' in html
    assert "Sign in to chat" in html and 'id="say"' not in html  # anonymous: no chat form
    assert '<script src="/static/vendor' not in html  # hls.js only where HLS is not native

    home = await client.get("/")
    assert f'href="/live/{live["id"]}"' in home.text and "多肉大棚直播" in home.text


async def test_no_such_room_is_a_404_page(client: httpx.AsyncClient) -> None:
    got = await client.get("/live/999999", headers={"Accept": "text/html"})
    assert got.status_code == 404
