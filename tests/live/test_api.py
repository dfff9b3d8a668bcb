"""The live-session routes in-process, on SQLite and PostgreSQL: who may do what, the feed,
reminders, offers and pins, moderation's rules, bad input, and the replay."""

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.accounts.models import AuditEntry
from originlive.live.models import LiveSession
from tests.conftest import Actor
from tests.orders.conftest import Market, units
from tests.orders.test_api import TIMES_PAST_THE_WINDOW

MakeUser = Callable[..., Awaitable[Actor]]
BASE = "/api/v1/live-sessions"


async def schedule(market: Market, **fields: Any) -> dict[str, Any]:
    body = {"shop_id": market.shop_id, "title": "猕猴桃开园直播"} | fields
    response = await market.client.post(BASE, json=body, headers=market.merchant.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def on_air(
    market: Market, *, price_cents: int = 1990, quantity: int = 30, pin: bool = True, **fields: Any
) -> dict[str, Any]:
    """A session of the market's shop, started, with an offer of its SKU (``"offer"``)."""
    live = await schedule(market, **fields)
    headers = market.merchant.headers
    started = await market.client.post(f"{BASE}/{live['id']}/start", headers=headers)
    assert started.status_code == 200, started.text
    offer = await market.client.post(
        f"{BASE}/{live['id']}/offers",
        json={"sku_id": market.sku_id, "price_cents": price_cents, "quantity": quantity,
              "per_buyer_limit": 2, "pin": pin},
        headers=headers,
    )  # fmt: skip
    assert offer.status_code == 201, offer.text
    return live | {"offer": offer.json()}


async def test_a_session_is_scheduled_started_and_ended_by_who_runs_it(
    market: Market, make_user: MakeUser, db: AsyncSession
) -> None:
    client, headers = market.client, market.merchant.headers
    live = await schedule(
        market, scheduled_at="2026-12-01T20:00:00+08:00", cover_url="/media/c.jpg"
    )
    assert live["status"] == "scheduled"
    assert live["stream_key"].startswith("live_") and len(live["stream_key"]) > 30
    assert live["ingest_url"].startswith("rtmp://") and live["ingest_url"].endswith("/live")
    assert live["playback_url"].endswith(f"/media/hls/{live['id']}/index.m3u8")
    assert live["room_url"] == f"/ws/live/{live['id']}"
    assert live["region_code"] == "610431" and live["offers"] == []

    stranger = await make_user("stranger")
    public = (await client.get(f"{BASE}/{live['id']}", headers=stranger.headers)).json()
    assert "stream_key" not in public and "ingest_url" not in public
    for action in ("start", "end", "stream-key"):
        response = await client.post(f"{BASE}/{live['id']}/{action}", headers=stranger.headers)
        assert response.status_code == 403, action
    assert (await client.post(f"{BASE}/{live['id']}/start")).status_code == 401

    rotated = (await client.post(f"{BASE}/{live['id']}/stream-key", headers=headers)).json()
    assert rotated["stream_key"] != live["stream_key"]
    started = (await client.post(f"{BASE}/{live['id']}/start", headers=headers)).json()
    assert started["status"] == "live" and started["started_at"] is not None
    again = await client.post(f"{BASE}/{live['id']}/start", headers=headers)
    assert again.status_code == 409
    ended = (await client.post(f"{BASE}/{live['id']}/end", headers=headers)).json()
    assert ended["status"] == "ended" and ended["ended_at"] >= ended["started_at"]
    assert (await client.post(f"{BASE}/{live['id']}/end", headers=headers)).status_code == 409


async def test_bad_input_is_refused_and_writes_nothing(
    market: Market, make_user: MakeUser, db: AsyncSession
) -> None:
    client, headers = market.client, market.merchant.headers
    other = await make_user("other")
    bad = [
        ({"shop_id": market.shop_id, "title": ""}, headers),
        ({"shop_id": market.shop_id, "title": "x" * 121}, headers),
        (
            {"shop_id": market.shop_id, "title": "ok", "scheduled_at": "2026-12-01T20:00:00"},
            headers,
        ),
        ({"shop_id": market.shop_id, "title": "ok", "cover_url": "javascript:alert(1)"}, headers),
        ({"shop_id": market.shop_id, "title": "ok", "extra": 1}, headers),
        ({"shop_id": 2**31, "title": "ok"}, headers),
        ({"shop_id": market.shop_id, "title": "ok"}, other.headers),  # not their shop
    ]
    for body, who in bad:
        response = await client.post(BASE, json=body, headers=who)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["status"] == 422
    assert await db.scalar(select(func.count()).select_from(LiveSession)) == 0
    assert (await client.get(f"{BASE}/99999")).status_code == 404
    assert (await client.get(f"{BASE}/0")).status_code == 422


async def test_times_past_the_window_are_a_422_naming_the_field(
    market: Market, db: AsyncSession
) -> None:
    client, headers = market.client, market.merchant.headers
    live = await schedule(market, scheduled_at="2026-12-01T20:00:00+08:00")
    offer = {"sku_id": market.sku_id, "price_cents": 1990, "quantity": 1}
    for when in TIMES_PAST_THE_WINDOW:
        for method, url, field, body in [
            ("POST", BASE, "scheduled_at", {"shop_id": market.shop_id, "title": "边界"}),
            ("PATCH", f"{BASE}/{live['id']}", "scheduled_at", {}),
            ("POST", f"{BASE}/{live['id']}/offers", "ends_at", offer),
        ]:
            body = body | {field: when}
            response = await client.request(method, url, json=body, headers=headers)
            assert response.status_code == 422, (field, when, response.text)
            assert [e["field"] for e in response.json()["errors"]] == [field], (field, when)
    assert await db.scalar(select(func.count()).select_from(LiveSession)) == 1
    kept = (await client.get(f"{BASE}/{live['id']}")).json()
    assert kept["scheduled_at"].startswith("2026-12-01T12:00") and kept["offers"] == []


async def test_the_feed_lists_live_then_upcoming_by_region(
    market: Market, make_user: MakeUser
) -> None:
    client, headers = market.client, market.merchant.headers
    later = await schedule(market, title="下周", scheduled_at="2026-12-08T20:00:00+08:00")
    sooner = await schedule(market, title="明天", scheduled_at="2026-12-02T20:00:00+08:00")
    earlier = await schedule(market, title="先开播", scheduled_at="2026-11-01T20:00:00+08:00")
    now = await schedule(market, title="正在直播")
    done = await schedule(market, title="已结束")
    await client.post(f"{BASE}/{earlier['id']}/start", headers=headers)
    await client.post(f"{BASE}/{now['id']}/start", headers=headers)
    await client.post(f"{BASE}/{done['id']}/end", headers=headers)

    feed = (await client.get(BASE)).json()  # live ones newest first, then the soonest
    assert [s["title"] for s in feed["items"]] == ["正在直播", "先开播", "明天", "下周"]
    assert feed["total"] == 4
    live_only = (await client.get(BASE, params={"status": "live"})).json()
    assert [s["id"] for s in live_only["items"]] == [now["id"], earlier["id"]]
    ended = (await client.get(BASE, params={"status": "ended"})).json()
    assert [s["id"] for s in ended["items"]] == [done["id"]]
    for region, count in (("610000", 4), ("610400", 4), ("610431", 4), ("530000", 0)):
        found = (await client.get(BASE, params={"region": region})).json()
        assert found["total"] == count, region
    assert (await client.get(BASE, params={"region": "999999"})).status_code == 422
    assert (await client.get(BASE, params={"status": "nope"})).status_code == 422
    assert {later["id"], sooner["id"]} <= {s["id"] for s in feed["items"]}


async def test_a_pending_shops_sessions_are_hidden(
    market: Market, make_user: MakeUser, make_operator: Callable[[], Awaitable[Actor]]
) -> None:
    client = market.client
    owner = await make_user("newcomer")
    shop = await client.post(
        "/api/v1/shops", json={"name": "新店", "region_code": "610431"}, headers=owner.headers
    )
    live = await client.post(
        BASE, json={"shop_id": shop.json()["id"], "title": "试播"}, headers=owner.headers
    )
    assert live.status_code == 201
    session_id = live.json()["id"]
    assert (await client.get(f"{BASE}/{session_id}")).status_code == 404
    assert (await client.get(f"{BASE}/{session_id}", headers=owner.headers)).status_code == 200
    assert (await client.get(BASE)).json()["total"] == 0
    start = await client.post(f"{BASE}/{session_id}/start", headers=owner.headers)
    assert start.status_code == 403  # goes live once approved
    operator = await make_operator()
    seen = await client.get(f"{BASE}/{session_id}", headers=operator.headers)
    assert "stream_key" in seen.json()


async def test_reminders(market: Market, make_user: MakeUser) -> None:
    client = market.client
    buyer = await make_user("buyer")
    live = await schedule(market, scheduled_at="2026-12-01T20:00:00+08:00")
    for _ in range(2):  # asking twice is asking once
        response = await client.put(f"{BASE}/{live['id']}/reminder", headers=buyer.headers)
        assert response.status_code == 204
    assert (await client.get(f"{BASE}/{live['id']}")).json()["reminders"] == 1
    mine = (await client.get("/api/v1/me/reminders", headers=buyer.headers)).json()
    assert [(r["session_id"], r["status"]) for r in mine] == [(live["id"], "scheduled")]
    await client.post(f"{BASE}/{live['id']}/start", headers=market.merchant.headers)
    mine = (await client.get("/api/v1/me/reminders", headers=buyer.headers)).json()
    assert mine[0]["status"] == "live"
    await client.delete(f"{BASE}/{live['id']}/reminder", headers=buyer.headers)
    assert (await client.get("/api/v1/me/reminders", headers=buyer.headers)).json() == []
    assert (await client.put(f"{BASE}/{live['id']}/reminder")).status_code == 401


async def test_offers_and_pins_of_a_session(
    market: Market, make_user: MakeUser, db: AsyncSession
) -> None:
    client, headers = market.client, market.merchant.headers
    live = await schedule(market)
    body = {"sku_id": market.sku_id, "price_cents": 1990, "quantity": 10, "per_buyer_limit": 2}
    offer = await client.post(
        f"{BASE}/{live['id']}/offers", json=body | {"pin": True}, headers=headers
    )
    assert offer.status_code == 201, offer.text
    assert offer.json()["live_session_id"] == live["id"]
    seen = (await client.get(f"{BASE}/{live['id']}")).json()
    assert seen["pinned_offer"]["id"] == offer.json()["id"]
    assert [o["id"] for o in seen["offers"]] == [offer.json()["id"]]

    # An offer on its own is not this session's to pin; a stranger pins nothing.
    alone = await market.offer()
    pin = await client.post(f"{BASE}/{live['id']}/offers/{alone['id']}/pin", headers=headers)
    assert pin.status_code == 404
    stranger = await make_user("stranger")
    pin = await client.post(
        f"{BASE}/{live['id']}/offers/{offer.json()['id']}/pin", headers=stranger.headers
    )
    assert pin.status_code == 403
    other_shop_sku = {**body, "sku_id": 2**31 - 1}
    response = await client.post(
        f"{BASE}/{live['id']}/offers", json=other_shop_sku, headers=headers
    )
    assert response.status_code == 422

    assert (await client.post(f"{BASE}/{live['id']}/unpin", headers=headers)).status_code == 204
    assert (await client.get(f"{BASE}/{live['id']}")).json()["pinned_offer"] is None

    # Ending the session ends its offers: the units go back to the SKU.
    before = await units(db, market.sku_id)
    await client.post(f"{BASE}/{live['id']}/start", headers=headers)
    await client.post(f"{BASE}/{live['id']}/end", headers=headers)
    after = await units(db, market.sku_id)
    assert after["shelf"] == before["shelf"] + 10
    ended = (await client.get(f"/api/v1/offers/{offer.json()['id']}")).json()
    assert ended["status"] == "ended"


async def test_moderation_rules_and_the_audit_of_operators(
    market: Market,
    make_user: MakeUser,
    make_operator: Callable[[], Awaitable[Actor]],
    db: AsyncSession,
) -> None:
    client, headers = market.client, market.merchant.headers
    live = await schedule(market)
    buyer, stranger = await make_user("buyer"), await make_user("stranger")
    url = f"{BASE}/{live['id']}"
    anchor_id = live["anchor_id"]
    assert (
        await client.post(f"{url}/bans", json={"user_id": anchor_id}, headers=headers)
    ).status_code == 422
    assert (
        await client.post(f"{url}/bans", json={"user_id": 99999}, headers=headers)
    ).status_code == 422
    assert (
        await client.post(f"{url}/mutes", json={"user_id": buyer.id, "minutes": 0}, headers=headers)
    ).status_code == 422
    forbidden = await client.post(
        f"{url}/bans", json={"user_id": buyer.id}, headers=stranger.headers
    )
    assert forbidden.status_code == 403

    muted = await client.post(
        f"{url}/mutes", json={"user_id": buyer.id, "minutes": 10}, headers=headers
    )
    assert muted.status_code == 201 and muted.json()["until"] is not None
    operator = await make_operator()
    banned = await client.post(f"{url}/bans", json={"user_id": buyer.id}, headers=operator.headers)
    assert banned.status_code == 201 and banned.json()["until"] is None
    listed = (await client.get(f"{url}/sanctions", headers=headers)).json()
    assert sorted(s["kind"] for s in listed) == ["ban", "mute"]
    assert (await client.delete(f"{url}/bans/{buyer.id}", headers=headers)).status_code == 204
    assert (await client.delete(f"{url}/bans/{buyer.id}", headers=headers)).status_code == 404
    audited = await db.scalars(
        select(AuditEntry.action).where(AuditEntry.target_type == "live_session")
    )
    assert list(audited) == ["live.ban"]  # the operator's act; the merchant's own are not


async def test_the_replay_waits_for_the_end(market: Market, make_user: MakeUser) -> None:
    client, headers = market.client, market.merchant.headers
    live = await schedule(market)
    await client.post(f"{BASE}/{live['id']}/start", headers=headers)
    assert (await client.get(f"{BASE}/{live['id']}/replay")).status_code == 404
    assert (await client.get(f"{BASE}/{live['id']}/replay", headers=headers)).status_code == 200
    await client.post(f"{BASE}/{live['id']}/end", headers=headers)
    replay = (await client.get(f"{BASE}/{live['id']}/replay")).json()
    assert replay["session_id"] == live["id"] and replay["events"] == []


async def test_a_session_cannot_be_changed_after_it_ends(market: Market) -> None:
    client: httpx.AsyncClient = market.client
    headers = market.merchant.headers
    live = await schedule(market)
    patched = await client.patch(f"{BASE}/{live['id']}", json={"title": "新标题"}, headers=headers)
    assert patched.json()["title"] == "新标题"
    for bad in ({"title": None}, {"scheduled_at": "2026-12-01T20:00:00"}, {"title": ""}):
        refused = await client.patch(f"{BASE}/{live['id']}", json=bad, headers=headers)
        assert refused.status_code == 422, bad
    assert (await client.get(f"{BASE}/{live['id']}")).json()["title"] == "新标题"
    await client.post(f"{BASE}/{live['id']}/end", headers=headers)
    for call in (
        client.patch(f"{BASE}/{live['id']}", json={"title": "太晚了"}, headers=headers),
        client.post(f"{BASE}/{live['id']}/stream-key", headers=headers),
    ):
        assert (await call).status_code == 409


async def test_a_title_with_what_cannot_be_seen_is_refused(
    market: Market, db: AsyncSession
) -> None:
    client, headers = market.client, market.merchant.headers
    for field, value in [
        ("title", "猕猴桃开园直播\u200b"),
        ("title", "\u202e播直园开"),
        ("title", "开园\u2066直播\u2069"),
        ("title", "\ufeff开园直播"),
        ("title", "开园\u0085直播"),
        ("title", "开园\u009b直播"),
        ("title", "开\u00ad园"),
        ("title", "\u200b\u2060"),
        ("description", "好\u202e评"),
    ]:
        body = {"shop_id": market.shop_id, "title": "开园直播", field: value}
        response = await client.post(BASE, json=body, headers=headers)
        assert response.status_code == 422, (value, response.text)
        assert [e["field"] for e in response.json()["errors"]] == [field]
    assert await db.scalar(select(func.count()).select_from(LiveSession)) == 0
    live = await schedule(
        market, title="ＬＩＶＥ　开园直播", description="\ufeff树上熟，\u200b现摘"
    )
    assert (live["title"], live["description"]) == ("LIVE 开园直播", "树上熟，现摘")
    renamed = await client.patch(
        f"{BASE}/{live['id']}", json={"title": "开园\u202e"}, headers=headers
    )
    assert renamed.status_code == 422, renamed.text
