"""Buyers following shops: the JSON API, the shop page's button, the home page's mark."""

import asyncio
import re
from collections.abc import Awaitable, Callable

import httpx
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.accounts.models import AccessToken, User
from originlive.catalog.models import ShopFollow
from tests.accounts.test_pages import HTML, csrf_of, login
from tests.catalog.conftest import Catalog, count
from tests.conftest import Actor

MakeUser = Callable[..., Awaitable[Actor]]


async def _followers(client: httpx.AsyncClient, shop_id: int) -> int:
    shop = await client.get(f"/api/v1/shops/{shop_id}")
    assert shop.status_code == 200, shop.text
    return int(shop.json()["followers"])


async def test_follow_and_unfollow_are_idempotent(
    catalog: Catalog, client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    owner, buyer, other = await make_user("owner"), await make_user("buyer"), await make_user()
    older = await catalog.shop(owner, name="斗南春花多肉园")
    shop = await catalog.shop(owner)
    assert await _followers(client, shop["id"]) == 0

    # Taps at once (a double click, two tabs) make one follow, never a conflict error.
    taps = [client.put(f"/api/v1/shops/{shop['id']}/follow", headers=buyer.headers) for _ in "123"]
    assert {r.status_code for r in await asyncio.gather(*taps)} == {204}
    for actor, shop_id in ((other, shop["id"]), (buyer, older["id"])):
        response = await client.put(f"/api/v1/shops/{shop_id}/follow", headers=actor.headers)
        assert response.status_code == 204
    assert await _followers(client, shop["id"]) == 2

    mine = await client.get("/api/v1/me/follows", headers=buyer.headers)
    assert mine.status_code == 200
    assert [s["id"] for s in mine.json()["items"]] == [older["id"], shop["id"]]  # latest first
    assert mine.json()["total"] == 2 and mine.json()["items"][1]["followers"] == 2

    for _ in range(2):
        gone = await client.delete(f"/api/v1/shops/{shop['id']}/follow", headers=buyer.headers)
        assert gone.status_code == 204
    assert await _followers(client, shop["id"]) == 1
    mine = await client.get("/api/v1/me/follows", headers=buyer.headers)
    assert [s["id"] for s in mine.json()["items"]] == [older["id"]]


async def test_only_approved_shops_can_be_followed(
    catalog: Catalog, client: httpx.AsyncClient, make_user: MakeUser, db: AsyncSession
) -> None:
    owner, buyer = await make_user("owner"), await make_user("buyer")
    pending = await catalog.shop(owner, approve=False)
    rejected = await catalog.shop(owner, approve=False)
    operator = await catalog.operator()
    refused = await client.post(
        f"/api/v1/shops/{rejected['id']}/reject", json={"reason": "假冒"}, headers=operator.headers
    )
    assert refused.status_code == 200
    approved = await catalog.shop(owner)

    for shop_id in (pending["id"], rejected["id"], 999_999):
        for actor in (buyer, owner):  # its owner sees a pending shop, but cannot follow it
            answer = await client.put(f"/api/v1/shops/{shop_id}/follow", headers=actor.headers)
            assert answer.status_code == 404, answer.text
            assert answer.headers["content-type"] == "application/problem+json"
    assert (
        await client.put(f"/api/v1/shops/{2**40}/follow", headers=buyer.headers)
    ).status_code == 422
    assert (await client.put("/api/v1/shops/0/follow", headers=buyer.headers)).status_code == 422
    anonymous = await client.put(f"/api/v1/shops/{approved['id']}/follow")
    assert anonymous.status_code == 401
    assert (await client.get("/api/v1/me/follows")).status_code == 401
    assert await count(db, ShopFollow) == 0


async def test_follows_go_with_the_user(
    catalog: Catalog, client: httpx.AsyncClient, make_user: MakeUser, db: AsyncSession
) -> None:
    owner, buyer = await make_user("owner"), await make_user("buyer")
    shop = await catalog.shop(owner)
    assert (
        await client.put(f"/api/v1/shops/{shop['id']}/follow", headers=buyer.headers)
    ).status_code == 204
    await db.execute(delete(AccessToken).where(AccessToken.user_id == buyer.id))
    await db.execute(delete(User).where(User.id == buyer.id))  # ON DELETE CASCADE
    await db.commit()
    assert await count(db, ShopFollow) == 0
    assert await _followers(client, shop["id"]) == 0


_FOLLOWERS = re.compile(r'id="followers">(\d+) followers?<')


async def test_the_follow_button_on_the_shop_page(
    catalog: Catalog, client: httpx.AsyncClient, make_user: MakeUser, db: AsyncSession
) -> None:
    owner = await make_user("owner")
    shop = await catalog.shop(owner)
    path = f"/shops/{shop['id']}"

    # Anonymous visitors see the count and a way to sign in first.
    page = await client.get(path)
    assert _FOLLOWERS.search(page.text).group(1) == "0"  # type: ignore[union-attr]
    assert 'href="/login?next=%2Fshops%2F' in page.text and "csrf_token" not in page.text
    anonymous = await client.post(f"{path}/follow")
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == f"/login?next=%2Fshops%2F{shop['id']}"

    # Signed in with a cookie: a plain form, its CSRF token, back to the shop page.
    await client.post("/api/v1/auth/register", json={"email": "li@example.com",
                      "password": "correct horse battery", "display_name": "李梅"})  # fmt: skip
    assert (await login(client, "li@example.com", next_path=path)).status_code == 303
    page = await client.get(path)
    assert f'action="{path}/follow"' in page.text and "htmx.min.js" in page.text
    forged = await client.post(f"{path}/follow", data={"csrf_token": "forged"}, headers=HTML)
    assert forged.status_code == 403 and await count(db, ShopFollow) == 0
    followed = await client.post(f"{path}/follow", data={"csrf_token": csrf_of(page)})
    assert followed.status_code == 303 and followed.headers["location"] == path
    page = await client.get(path)
    assert _FOLLOWERS.search(page.text).group(1) == "1"  # type: ignore[union-attr]
    assert "✓ Following" in page.text and f'action="{path}/unfollow"' in page.text

    # With htmx the answer is the box itself, swapped in place.
    token = csrf_of(page)
    swapped = await client.post(
        f"{path}/unfollow", data={"csrf_token": token}, headers={"HX-Request": "true"}
    )
    assert swapped.status_code == 200 and swapped.text.lstrip().startswith('<div class="follow"')
    assert _FOLLOWERS.search(swapped.text).group(1) == "0"  # type: ignore[union-attr]
    assert f'action="{path}/follow"' in swapped.text and "<html" not in swapped.text
    again = await client.post(f"{path}/unfollow", data={"csrf_token": token})
    assert again.status_code == 303 and await count(db, ShopFollow) == 0

    # A shop that does not sell has no button, and cannot be followed.
    pending = await catalog.shop(owner, approve=False)
    assert (await client.get(f"/shops/{pending['id']}")).status_code == 404
    hidden = await client.post(
        f"/shops/{pending['id']}/follow", data={"csrf_token": token}, headers=HTML
    )
    assert hidden.status_code == 404 and await count(db, ShopFollow) == 0


async def test_followed_shops_sessions_come_first_on_the_home_page(
    catalog: Catalog, client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    owner, buyer = await make_user("owner"), await make_user("buyer")
    for name in ("斗南春花多肉园", "武功猕猴桃合作社"):  # the newer session is listed first
        shop = await catalog.shop(owner, name=name)
        made = await client.post(
            "/api/v1/live-sessions",
            json={"shop_id": shop["id"], "title": f"{name} 开播"},
            headers=owner.headers,
        )
        assert made.status_code == 201, made.text
    first = await client.get("/", headers=buyer.headers)
    assert first.text.index("武功猕猴桃合作社 开播") < first.text.index("斗南春花多肉园 开播")
    assert "badge following" not in first.text

    older = (await client.get("/api/v1/shops", params={"limit": 1, "offset": 1})).json()
    assert older["items"][0]["name"] == "斗南春花多肉园"
    followed = await client.put(
        f"/api/v1/shops/{older['items'][0]['id']}/follow", headers=buyer.headers
    )
    assert followed.status_code == 204
    home = await client.get("/", headers=buyer.headers)
    assert home.text.index("斗南春花多肉园 开播") < home.text.index("武功猕猴桃合作社 开播")
    assert home.text.count("badge following") == 1
    assert "badge following" not in (await client.get("/")).text
