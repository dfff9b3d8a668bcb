"""The Redis gate (``ORIGINLIVE_REDIS_URL``): it decides presses, the database stays the judge.

Every test of ``test_api`` runs again here with the gate in front (``test_api_gated``); these
are the gate's own: that Redis really refuses without the database, that replays survive a sold
out offer and a Redis that lost everything, that released units come back, and that the
reconciler corrects whatever drifted.
"""

import time
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select, update

from originlive.db import utcnow
from originlive.orders import service, stock
from originlive.orders.gate import STALE_MS, RedisGate
from originlive.orders.models import Order, OrderStatus
from originlive.settings import Settings
from tests.orders.conftest import Market, units

pytestmark = pytest.mark.redis
STOCK = 100


@pytest.fixture
def settings(settings: Settings, redis_url: str) -> Settings:
    return settings.model_copy(update={"redis_url": redis_url})


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


def key(offer: dict, part: str = "") -> str:
    return f"originlive:offer:{offer['id']}{part}"


async def test_the_gate_refuses_without_the_database(app, market: Market, make_user, redis, db):
    offer = await market.offer(quantity=3, per_buyer_limit=2)
    alice, bob, carol = [await make_user(n) for n in ("alice", "bob", "carol")]
    line = [{"offer_id": offer["id"], "quantity": 1}]
    assert (await market.order(alice, line)).status_code == 201
    assert await redis.hget(key(offer), "remaining") == "2"
    assert (await market.order(bob, line)).status_code == 201
    # Redis says none are left while the database still has one: the gate's word is final.
    await redis.hset(key(offer), "remaining", 0)
    refused = await market.order(carol, line)
    assert refused.status_code == 409 and refused.json()["type"] == "/problems/sold-out"
    assert await db.scalar(select(func.count()).select_from(Order)) == 2
    # The reconciler sets Redis from the database, and the unit sells.
    assert await app.state.gate.reconcile() == {offer["id"]: (0, 1, 0, 0)}
    assert (await market.order(carol, line)).status_code == 201
    held = await redis.hgetall(key(offer, ":buyers"))
    assert held == {str(a.id): "1" for a in (alice, bob, carol)}
    assert await redis.hlen(key(offer, ":pending")) == 0  # every reservation settled
    assert await redis.hget(key(offer), "remaining") == "0"
    assert await units(db, market.sku_id) == {"shelf": STOCK - 3, "offered": 0, "held": 3}


async def test_the_gate_counts_each_buyer(market: Market, make_user, redis) -> None:
    offer = await market.offer(quantity=10, per_buyer_limit=2)
    buyer = await make_user("buyer")
    line = {"offer_id": offer["id"], "quantity": 1}
    assert (await market.order(buyer, [line])).status_code == 201
    twice = await market.order(buyer, [line | {"quantity": 2}])
    assert twice.status_code == 409 and twice.json()["type"] == "/problems/over-limit"
    assert await redis.hget(key(offer, ":buyers"), str(buyer.id)) == "1"
    assert await redis.hget(key(offer), "remaining") == "9"


async def test_replays_survive_sold_out_and_a_redis_that_forgot(market: Market, make_user, redis):
    offer = await market.offer(quantity=2, per_buyer_limit=2)
    alice, bob = await make_user("alice"), await make_user("bob")
    line = [{"offer_id": offer["id"], "quantity": 1}]
    first = await market.order(alice, line, key="press-1")
    assert (await market.order(bob, line)).status_code == 201
    again = await market.order(alice, line, key="press-1")  # sold out now: still a replay
    assert again.status_code == 201 and again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    await redis.flushdb()  # Redis restarted empty: the next press loads the offer again
    after = await market.order(alice, line, key="press-1")
    assert after.status_code == 201 and after.json()["id"] == first.json()["id"]
    sold_out = await market.order(alice, line, key="press-2")
    assert sold_out.status_code == 409 and sold_out.json()["type"] == "/problems/sold-out"
    assert await redis.hget(key(offer), "remaining") == "0"
    assert await redis.hget(key(offer, ":buyers"), str(alice.id)) == "1"


async def test_released_units_come_back_to_the_gate(app, market: Market, make_user, redis, db):
    offer = await market.offer(quantity=3, per_buyer_limit=3)
    buyer = await make_user("buyer")
    line = [{"offer_id": offer["id"], "quantity": 2}]
    order = (await market.order(buyer, line)).json()
    url = f"/api/v1/orders/{order['id']}/cancel"
    assert (await market.client.post(url, headers=buyer.headers)).status_code == 200
    assert await redis.hget(key(offer), "remaining") == "3"
    assert await redis.hget(key(offer, ":buyers"), str(buyer.id)) == "0"
    # Expiry by the sweeper gives back the same way.
    order = (await market.order(buyer, line)).json()
    assert await redis.hget(key(offer), "remaining") == "1"
    await db.execute(
        update(Order).where(Order.id == order["id"]).values(expires_at=utcnow() - timedelta(1))
    )
    await db.commit()
    expired, _ended = await service.sweep(app.state.order_writer, app.state.gate)
    assert expired == [order["id"]]
    assert await redis.hget(key(offer), "remaining") == "3"
    assert await units(db, market.sku_id) == {"shelf": STOCK - 3, "offered": 3, "held": 0}


async def test_an_ended_offer_is_refused_by_the_gate(market: Market, make_user, redis) -> None:
    offer = await market.offer(quantity=3)
    buyer = await make_user("buyer")
    line = [{"offer_id": offer["id"], "quantity": 1}]
    assert (await market.order(buyer, line)).status_code == 201
    url = f"/api/v1/offers/{offer['id']}/end"
    assert (await market.client.post(url, headers=market.merchant.headers)).status_code == 200
    assert await redis.hget(key(offer), "active") == "0"
    assert await redis.ttl(key(offer)) > 0  # forgotten a day later
    ended = await market.order(buyer, line)
    assert ended.status_code == 409 and ended.json()["type"] == "/problems/offer-ended"


async def test_reconciler_drops_reservations_of_dead_processes(
    app, market: Market, make_user, redis
) -> None:
    offer = await market.offer(quantity=5)
    gate: RedisGate = app.state.gate
    assert await gate.reconcile() == {}  # nothing known yet: nothing to do
    buyer = 424242
    await market.order(await make_user("buyer"), [{"offer_id": offer["id"], "quantity": 1}])
    # A process took two units and died before the database answered, long ago, and another
    # took one a moment ago and is still waiting for the database.
    old = int(time.time() * 1000) - STALE_MS - 1000
    await redis.hset(key(offer, ":pending"), "dead", f"{buyer}:2:{old}")
    await redis.hset(key(offer, ":pending"), "alive", f"{buyer + 1}:1:{int(time.time() * 1000)}")
    await redis.hincrby(key(offer), "remaining", -3)
    await redis.hset(key(offer, ":buyers"), mapping={buyer: 2, buyer + 1: 1})
    changed = await gate.reconcile()
    # The database has 4 left; the live reservation still holds one of them.
    assert changed == {offer["id"]: (1, 3, 1, 0)}
    assert await redis.hkeys(key(offer, ":pending")) == ["alive"]
    assert await redis.hget(key(offer, ":buyers"), str(buyer)) == "0"


async def test_reconciler_repairs_counts_of_releases_redis_never_heard_of(
    app, market: Market, make_user, redis
) -> None:
    offer = await market.offer(quantity=5, per_buyer_limit=2)
    buyer = await make_user("buyer")
    line = [{"offer_id": offer["id"], "quantity": 2}]
    order = (await market.order(buyer, line)).json()
    # The order is cancelled in the database, and its process dies before telling Redis.
    await app.state.order_writer.run(
        stock.release, order_id=order["id"], to=OrderStatus.CANCELLED, actor_id=None, now=utcnow()
    )
    refused = await market.order(buyer, line)
    assert refused.status_code == 409 and refused.json()["type"] == "/problems/over-limit"
    assert await app.state.gate.reconcile() == {offer["id"]: (3, 5, 0, 1)}
    assert await redis.hget(key(offer, ":buyers"), str(buyer.id)) == "0"
    assert (await market.order(buyer, line)).status_code == 201
