"""PostgreSQL's batched placing where batches of two processes meet: on one key, on one unit."""

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from originlive.db import utcnow
from originlive.orders import bulk, placing
from tests.orders.conftest import Market

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def _cmd(buyer_id: int, offer_id: int, quantity: int) -> placing.PlaceOrder:
    address = placing.Address("买家", "13800000000", "610431", "徐杨村")
    line = placing.Line(offer_id, None, quantity)
    return placing.PlaceOrder(
        buyer_id, "same-key", (line,), address, utcnow(), timedelta(minutes=15)
    )


@pytest.mark.parametrize("same_body", [True, False])
async def test_a_key_taken_by_another_batch_meanwhile(
    database_url: str, market: Market, make_user, same_body: bool
) -> None:
    offer = await market.offer(quantity=10, per_buyer_limit=3)
    buyer = await make_user("buyer")
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as first, engine.connect() as second:
            await first.begin()
            # The first batch claims the key and holds its transaction open...
            placed = await first.run_sync(
                lambda c: bulk.place_many(c, [_cmd(buyer.id, offer["id"], 1)])
            )
            assert isinstance(placed[0], placing.Placed)
            await second.begin()
            # ...while the second, with the same key, waits on it at its own claim.
            later = _cmd(buyer.id, offer["id"], 1 if same_body else 2)
            waiting = asyncio.create_task(second.run_sync(lambda c: bulk.place_many(c, [later])))
            await asyncio.sleep(0.3)
            assert not waiting.done()
            await first.commit()
            answer = (await waiting)[0]
            await second.commit()
    finally:
        await engine.dispose()
    if same_body:
        assert isinstance(answer, placing.Placed) and answer.replayed
        assert answer.order["id"] == placed[0].order["id"]
    else:
        assert isinstance(answer, placing.IdempotencyMismatch)
    left = (await market.client.get(f"/api/v1/offers/{offer['id']}")).json()["remaining"]
    assert left == 9  # one order, one unit


async def test_an_unlocked_batch_whose_units_went_meanwhile_is_contended(
    database_url: str, market: Market, make_user
) -> None:
    # Two processes' unlocked batches decide on the same figures (one unit left); the second
    # finds it gone when it writes, rolls back, and decides again with the rows locked.
    offer = await market.offer(quantity=1, per_buyer_limit=1)
    first_buyer, second_buyer = await make_user("buyer"), await make_user("buyer")
    first_cmd = _cmd(first_buyer.id, offer["id"], 1)
    second_cmd = _cmd(second_buyer.id, offer["id"], 1)
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as first, engine.connect() as second:
            await first.begin()
            placed = await first.run_sync(bulk.place_many, [first_cmd], locked=False)
            assert isinstance(placed[0], placing.Placed)
            await second.begin()
            waiting = asyncio.create_task(
                second.run_sync(bulk.place_many, [second_cmd], locked=False)
            )
            await asyncio.sleep(0.3)
            assert not waiting.done()  # its write waits for the offer's row
            await first.commit()
            with pytest.raises(bulk.Contended):
                await waiting
            await second.rollback()
            await second.begin()
            again = await second.run_sync(bulk.place_many, [second_cmd], locked=True)
            await second.commit()
    finally:
        await engine.dispose()
    assert isinstance(again[0], placing.SoldOut)
    left = (await market.client.get(f"/api/v1/offers/{offer['id']}")).json()["remaining"]
    assert left == 0
