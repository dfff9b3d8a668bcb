"""The middleware in front of every response: nosniff."""

from collections.abc import Awaitable, Callable

import httpx

from tests.catalog.conftest import Catalog
from tests.conftest import Actor
from tests.orders.conftest import Market


async def test_every_response_says_nosniff(
    client: httpx.AsyncClient,
    make_user: Callable[..., Awaitable[Actor]],
    make_operator: Callable[[], Awaitable[Actor]],
) -> None:
    catalog = Catalog(client, make_operator)
    merchant, buyer = await make_user("merchant"), await make_user("buyer")
    shop = await catalog.shop(merchant)
    product = await catalog.product(merchant, shop["id"])
    market = Market(client, merchant, shop["id"], product["id"], product["skus"][0]["id"])
    offer = await market.offer()
    # A bearer order is answered by the fast path, in front of FastAPI and its middleware.
    order = await market.order(buyer, [{"offer_id": offer["id"], "quantity": 1}])
    assert order.status_code == 201, order.text
    responses = [
        order,
        await client.get("/healthz"),
        await client.get("/"),
        await client.get("/static/site.css"),
        await client.get("/api/v1/products/3000000000"),
        await client.get("/media/ab/cd/missing.jpg"),
    ]
    for response in responses:
        assert response.headers["x-content-type-options"] == "nosniff", response.url
