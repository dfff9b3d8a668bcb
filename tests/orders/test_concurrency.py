"""Invariants 1 to 3 under fire: hundreds of buyers at once, over real HTTP, at a real server."""

import asyncio
import collections
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from originlive.orders.models import HOLDING, FlashOffer, OfferPurchase, Order, OrderItem
from tests.conftest import PASSWORD
from tests.crowd import Request, crowd, make_buyers, merchant_with_sku
from tests.orders.conftest import ADDRESS

BUYERS = 300
QUANTITY = 50
LIMIT = 2


async def open_offer(
    api: httpx.AsyncClient, quantity: int = QUANTITY, limit: int = LIMIT
) -> dict[str, Any]:
    """A merchant, an approved shop, a SKU and an offer of ``quantity`` of its units."""
    headers, sku_id = await merchant_with_sku(api, stock=quantity + 50, password=PASSWORD)
    offer = await api.post(
        "/api/v1/offers",
        json={"sku_id": sku_id, "price_cents": 990, "quantity": quantity, "per_buyer_limit": limit},
        headers=headers,
    )
    assert offer.status_code == 201, offer.text
    return dict(offer.json())


def press(token: str, key: str, offer_id: int) -> Request:
    """A buyer's order of one unit of the offer."""
    return Request(
        "POST",
        "/api/v1/orders",
        {"Authorization": f"Bearer {token}", "Idempotency-Key": key},
        {"items": [{"offer_id": offer_id, "quantity": 1}], "address": ADDRESS},
    )


async def wait_for_orders(database_url: str, at_least: int) -> None:
    """Return once the database holds that many orders (or after about four seconds)."""
    engine = create_async_engine(database_url)
    try:
        for _ in range(200):
            async with engine.connect() as conn:
                if await conn.scalar(select(func.count()).select_from(Order)) >= at_least:
                    return
            await asyncio.sleep(0.02)
    finally:
        await engine.dispose()


async def burst(
    url: str | list[str], tokens: list[str], offer_id: int
) -> list[tuple[int, int, Any]]:
    """Every buyer sends three orders of one unit at once, then retries the first with its key."""
    requests = [
        (buyer, press(tokens[buyer], f"b{buyer}-{attempt % 3}", offer_id))
        for attempt in range(4)
        for buyer in range(len(tokens))
    ]
    answers = await crowd(url, [r for _, r in requests])
    assert all(answers), "the server stopped answering"
    return [(b, a.status, a.body) for (b, _), a in zip(requests, answers, strict=True) if a]


async def check_books(database_url: str, offer_id: int, limit: int = LIMIT) -> None:
    """Units reserved plus sold never pass units put on sale, and every counter agrees."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            offer = (await conn.execute(select(FlashOffer).where(FlashOffer.id == offer_id))).one()
            held = await conn.scalar(
                select(func.coalesce(func.sum(OrderItem.quantity), 0))
                .join(Order, Order.id == OrderItem.order_id)
                .where(OrderItem.offer_id == offer_id, Order.status.in_(HOLDING))
            )
            assert offer.remaining >= 0
            assert held + offer.remaining == offer.quantity
            counted = await conn.scalar(
                select(func.coalesce(func.sum(OfferPurchase.quantity), 0)).where(
                    OfferPurchase.offer_id == offer_id
                )
            )
            assert counted == held
            per_buyer = await conn.execute(
                select(Order.buyer_id, func.sum(OrderItem.quantity))
                .join(OrderItem, OrderItem.order_id == Order.id)
                .where(OrderItem.offer_id == offer_id, Order.status.in_(HOLDING))
                .group_by(Order.buyer_id)
            )
            assert all(n <= limit for _, n in per_buyer)
    finally:
        await engine.dispose()


@pytest.mark.parametrize("processes", [1, 2])
async def test_crowd_never_oversells(start_server, database_url: str, processes: int) -> None:
    # Two processes on one database: SQLite's writers take turns at the file lock, and
    # PostgreSQL's transactions at the offer's row; neither may sell a unit twice.
    urls = [await start_server() for _ in range(processes)]
    await sell_out(urls, database_url)


@pytest.mark.redis
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_crowd_through_the_redis_gate(start_server, database_url: str, redis_url: str):
    # Two processes share the gate in Redis; PostgreSQL records what it lets through.
    urls = [await start_server(ORIGINLIVE_REDIS_URL=redis_url) for _ in range(2)]
    await sell_out(urls, database_url)


async def sell_out(urls: list[str], database_url: str) -> None:
    """The crowd at these servers buys the whole offer, within limits, replays answered alike."""
    url = urls[0]
    async with httpx.AsyncClient(base_url=url) as api:
        offer = await open_offer(api)
    tokens = await make_buyers(database_url, BUYERS, password=PASSWORD)
    results = await burst(urls, tokens, offer["id"])

    statuses = collections.Counter(status for _, status, _ in results)
    assert set(statuses) <= {201, 409}, statuses
    orders = {body["id"]: buyer for buyer, status, body in results if status == 201}
    assert len(orders) == QUANTITY  # demand (3 per buyer) far exceeds the offer: all sold
    by_buyer = collections.Counter(orders.values())
    assert max(by_buyer.values()) <= LIMIT
    # The fourth attempt reused the first one's key: same answer, never a second order.
    first = {(b, s, body.get("id")) for b, s, body in results[:BUYERS]}
    replay = {(b, s, body.get("id")) for b, s, body in results[3 * BUYERS :]}
    winners = {(b, i) for b, s, i in first if s == 201}
    assert winners <= {(b, i) for b, s, i in replay if s == 201}
    async with httpx.AsyncClient(base_url=url) as api:
        left = (await api.get(f"/api/v1/offers/{offer['id']}")).json()["remaining"]
    assert left == 0
    await check_books(database_url, offer["id"])


@pytest.mark.parametrize("gate", ["database", "redis"])
async def test_kill_mid_burst_loses_no_acknowledged_order(
    farm, database_url: str, gate: str, request: pytest.FixtureRequest
) -> None:
    env = {"ORIGINLIVE_REDIS_URL": request.getfixturevalue("redis_url")} if gate == "redis" else {}
    url = await farm.start(**env)
    # Most presses are orders, so that the burst lasts and the kill lands in its middle.
    limit = 10
    quantity = BUYERS * limit * 5 // 6
    async with httpx.AsyncClient(base_url=url) as api:
        offer = await open_offer(api, quantity, limit)
    tokens = await make_buyers(database_url, BUYERS, password=PASSWORD)
    requests = [
        press(tokens[b], f"k{b}-{a}", offer["id"]) for a in range(limit) for b in range(BUYERS)
    ]
    burst = asyncio.create_task(crowd(url, requests, retries=0))
    await wait_for_orders(database_url, quantity // 5)  # until the burst is well under way
    await asyncio.sleep(0.05)  # and the first answers are out
    farm.kill(url)  # SIGKILL in the middle of the burst
    answers = await burst
    acknowledged = {a.body["id"] for a in answers if a is not None and a.status == 201}
    assert acknowledged, "the kill came before any order"
    assert any(a is None for a in answers), "the burst ended before the kill"

    url = await farm.start(port=int(url.rsplit(":", 1)[1]), **env)  # the same database
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            stored = set((await conn.scalars(select(Order.id))).all())
    finally:
        await engine.dispose()
    assert acknowledged <= stored  # every 201 survived the kill (invariant 6)
    await check_books(database_url, offer["id"], limit)
    # The restarted server goes on selling what is left, and no more.
    retry = await crowd(url, requests)
    sold = sum(1 for a in retry if a and a.status == 201 and a.body["id"] not in stored)
    assert len(stored) + sold <= quantity
    await check_books(database_url, offer["id"], limit)


@pytest.mark.redis
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_redis_lost_mid_burst(farm, database_url: str, own_redis) -> None:
    # Redis dies in the middle of the burst and comes back empty (it keeps nothing on disk).
    # Meanwhile buyers get 503s, never a wrong answer; afterwards the gate reloads from the
    # database and the offer sells out exactly, across two processes.
    env = {"ORIGINLIVE_REDIS_URL": own_redis.url, "ORIGINLIVE_RECONCILE_INTERVAL_SECONDS": "0.5"}
    urls = [await farm.start(**env) for _ in range(2)]
    quantity = BUYERS * LIMIT * 2 // 3  # most presses are orders: the burst lasts
    async with httpx.AsyncClient(base_url=urls[0]) as api:
        offer = await open_offer(api, quantity)
    tokens = await make_buyers(database_url, BUYERS, password=PASSWORD)
    requests = [press(tokens[b], f"r{b}-{a}", offer["id"]) for a in range(3) for b in range(BUYERS)]
    burst = asyncio.create_task(crowd(urls, requests, retries=0))
    await wait_for_orders(database_url, quantity // 5)
    own_redis.kill()
    await asyncio.sleep(0.5)
    own_redis.start()
    first = await burst
    assert all(first), "the servers stopped answering"
    statuses = collections.Counter(a.status for a in first if a)
    assert set(statuses) <= {201, 409, 503}
    assert statuses[503], "the burst ended before Redis went away"
    await check_books(database_url, offer["id"])
    # Buyers press again with the same keys: the first answers replay, the rest sell out.
    second = await crowd(urls, requests)
    assert {a.status for a in second if a} <= {201, 409}
    for a, b in zip(first, second, strict=True):
        if a and a.status == 201:
            assert b and b.status == 201 and b.body["id"] == a.body["id"]
    sold = {a.body["id"] for a in second if a and a.status == 201}
    assert len(sold) == quantity
    await check_books(database_url, offer["id"])
