"""Shared pages (web.pagecache): kept for every viewer alike, and never stale past a change.

A room, a product and the home page are rendered once per language for anonymous viewers and
once, with stand-ins for who they are, for signed-in ones. The tests here prove what that must
never cost: a page shows a pin, a price or an end at once when the change is committed in
this process (the cache is told by the commit; these tests keep pages for an hour, so only
that can refresh them; test_pagecache_age.py shows the one-second bound on what it is not
told); and a signed-in viewer sees their own name and form token, never another's.
"""

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from originlive.accounts.deps import SESSION_COOKIE
from originlive.settings import Settings
from tests.accounts.test_pages import csrf_of, login, register
from tests.conftest import Actor
from tests.live.test_api import BASE, on_air
from tests.orders.conftest import Market

HIT = "x-page-cache"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Shared pages kept for an hour: here only a committed change can refresh them."""
    return settings.model_copy(update={"page_cache_seconds": 3600})


def client_of(app: Any, language: str = "en") -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver",
        headers={"Accept-Language": language},
    )


async def twice(client: httpx.AsyncClient, path: str) -> httpx.Response:
    """The page as rendered, then as kept: the second answer must come from the cache."""
    first = await client.get(path)
    assert first.status_code == 200 and HIT not in first.headers
    second = await client.get(path)
    assert second.status_code == 200 and second.headers.get(HIT) == "hit"
    return second


async def test_a_room_shows_a_pin_and_an_end_at_once(market: Market) -> None:
    client = market.client
    live = await on_air(market, pin=False, quantity=5)
    path = f"/live/{live['id']}"
    page = await twice(client, path)
    assert "¥19.90" not in page.text  # nothing pinned yet

    offer_id = live["offer"]["id"]
    pinned = await client.post(
        f"{BASE}/{live['id']}/offers/{offer_id}/pin", headers=market.merchant.headers
    )
    assert pinned.status_code == 200, pinned.text
    page = await client.get(path)
    assert HIT not in page.headers and "¥19.90" in page.text
    assert (await client.get(path)).headers.get(HIT) == "hit"

    ended = await client.post(f"{BASE}/{live['id']}/end", headers=market.merchant.headers)
    assert ended.status_code == 200, ended.text
    page = await client.get(path)
    assert HIT not in page.headers and 'data-status="ended"' in page.text


async def test_a_product_page_shows_a_new_price_at_once(market: Market) -> None:
    client = market.client
    path = f"/products/{market.product_id}"
    page = await twice(client, path)
    assert "¥12.34" not in page.text

    changed = await client.patch(
        f"/api/v1/skus/{market.sku_id}", json={"price_cents": 1234},
        headers=market.merchant.headers,
    )  # fmt: skip
    assert changed.status_code == 200, changed.text
    page = await client.get(path)
    assert HIT not in page.headers and "¥12.34" in page.text
    home = await client.get("/")
    assert HIT not in home.headers


async def test_a_signed_in_viewer_sees_only_their_own_name_and_token(
    market: Market, app: Any
) -> None:
    live = await on_air(market, quantity=5)
    path = f"/live/{live['id']}"
    pages: dict[str, httpx.Response] = {}
    async with client_of(app) as li, client_of(app) as wang:
        for viewer, email, name in (
            (li, "li@example.com", "李梅"),
            (wang, "wang@example.com", "王强<b>"),
        ):
            assert (await register(viewer, email, name=name)).status_code == 303
            assert (await login(viewer, email)).status_code == 303
        pages["李梅"] = await li.get(path)
        pages["王强<b>"] = await wang.get(path)  # the same kept page, with Wang filled in
        assert pages["王强<b>"].headers.get(HIT) == "hit"
        again = await asyncio.gather(
            *(li.get(path) if i % 2 else wang.get(path) for i in range(20))
        )
        for i, page in enumerate(again):
            pages[f"{'李梅' if i % 2 else '王强<b>'}#{i}"] = page

        for who, page in pages.items():
            me, other = ("李梅", "王强") if who.startswith("李梅") else ("王强", "李梅")
            assert me in page.text and other not in page.text, who
            assert "\ue000" not in page.text  # no stand-in left unfilled
            assert page.headers["cache-control"] == "no-store"
            assert 'id="say"' in page.text  # the chat form is the signed-in page's
        assert "王强&lt;b&gt;" in pages["王强<b>"].text  # filled in escaped

        # Each one's form token is their own: signing out with it works for them only.
        wang_token = csrf_of(pages["王强<b>"])
        assert wang_token != csrf_of(pages["李梅"])
        refused = await li.post("/logout", data={"csrf_token": wang_token})
        assert refused.status_code == 403
        signed_out = await wang.post("/logout", data={"csrf_token": wang_token})
        assert signed_out.status_code == 303
        wang.cookies.delete(SESSION_COOKIE)
        anonymous = await wang.get(path)
        assert "王强" not in anonymous.text and "Sign in to chat" in anonymous.text


async def test_languages_are_kept_apart(market: Market, app: Any) -> None:
    path = f"/products/{market.product_id}"
    async with client_of(app, "en") as english, client_of(app, "zh-CN") as chinese:
        en = await twice(english, path)
        zh = await twice(chinese, path)
    assert 'lang="en"' in en.text and "Sign in" in en.text
    assert 'lang="zh-CN"' in zh.text and "登录" in zh.text


async def test_who_manages_a_shop_and_who_follows_it_get_pages_of_their_own(
    market: Market, app: Any
) -> None:
    live = await on_air(market, quantity=5)
    product = f"/products/{market.product_id}"
    async with client_of(app) as buyer, client_of(app) as owner:
        await register(buyer, "buyer@example.com", name="买家")
        await login(buyer, "buyer@example.com")
        # The merchant's own page session: sign in through the page with their account.
        await login(owner, market.merchant.email)
        await twice(buyer, product)
        own = await owner.get(product)
        assert own.status_code == 200 and "merchant" in own.text  # their own header
        assert HIT not in own.headers and HIT not in (await owner.get(product)).headers

        home = await twice(buyer, "/")
        assert "Following" not in home.text
        followed = await buyer.put(
            f"/api/v1/shops/{market.shop_id}/follow",
            headers={"X-CSRF-Token": csrf_of(home)},
        )
        assert followed.status_code == 204, followed.text
        home = await buyer.get("/")
        assert HIT not in home.headers and "Following" in home.text
        assert f'href="/live/{live["id"]}"' in home.text
        # The follower's page is their own: kept for no one, and the others' is still kept.
        async with client_of(app) as other:
            await register(other, "other@example.com", name="路人")
            await login(other, "other@example.com")
            theirs = await other.get("/")
            assert "Following" not in theirs.text and "路人" in theirs.text
            assert (await other.get("/")).headers.get(HIT) == "hit"
        assert HIT not in (await buyer.get("/")).headers


async def test_an_operator_gets_pages_of_their_own(
    market: Market, app: Any, make_operator: Callable[[], Awaitable[Actor]]
) -> None:
    operator = await make_operator()
    path = f"/products/{market.product_id}"
    async with client_of(app) as buyer, client_of(app) as staff:
        await register(buyer, "buyer@example.com", name="买家")
        await login(buyer, "buyer@example.com")
        await twice(buyer, path)
        await login(staff, operator.email)
        for _ in range(2):  # they may manage every shop: never the shared page
            page = await staff.get(path)
            assert page.status_code == 200 and HIT not in page.headers
            assert "Operator" in page.text and "买家" not in page.text
        # Nor any other: what the layout shows them is theirs, and not kept for the others.
        for _ in range(2):
            home = await staff.get("/")
            assert HIT not in home.headers and 'href="/operator/shops"' in home.text
        home = await buyer.get("/")
        assert "买家" in home.text and 'href="/operator/shops"' not in home.text


async def test_htmx_and_bearer_requests_are_not_answered_from_the_cache(
    market: Market, client: httpx.AsyncClient
) -> None:
    path = f"/products/{market.product_id}"
    await twice(client, path)
    assert HIT not in (await client.get(path, headers={"HX-Request": "true"})).headers
    assert HIT not in (await client.get(path, headers=market.merchant.headers)).headers


async def test_pages_that_are_not_shared_are_never_kept(client: httpx.AsyncClient) -> None:
    for _ in range(3):
        got = await client.get("/login")
        assert got.status_code == 200 and HIT not in got.headers
    assert re.search(r'name="csrf_token" value="[^"]+"', got.text)
