"""The buyer's order pages, in-process: the list with statuses, one order, nobody else's."""

from collections.abc import Awaitable, Callable

import httpx

from tests.conftest import Actor
from tests.live.conftest import ADDRESS
from tests.orders.conftest import Market


async def test_my_orders_and_one_order(
    market: Market, client: httpx.AsyncClient, make_user: Callable[..., Awaitable[Actor]]
) -> None:
    buyer, stranger = await make_user("buyer"), await make_user("stranger")
    placed = await client.post(
        "/api/v1/orders",
        json={"items": [{"sku_id": market.sku_id, "quantity": 2}], "address": ADDRESS},
        headers=buyer.headers | {"Idempotency-Key": "page-test-1"},
    )
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["id"]

    mine = await client.get("/orders", headers=buyer.headers)
    assert mine.status_code == 200
    assert f'href="/orders/{order_id}"' in mine.text and "Awaiting payment" in mine.text
    one = await client.get(f"/orders/{order_id}", headers=buyer.headers)
    assert one.status_code == 200 and 'id="order-status">Awaiting payment<' in one.text

    theirs = await client.get(
        f"/orders/{order_id}", headers=stranger.headers | {"Accept": "text/html"}
    )
    assert theirs.status_code == 404
    assert "No orders yet." in (await client.get("/orders", headers=stranger.headers)).text
    anonymous = await client.get("/orders")
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")
