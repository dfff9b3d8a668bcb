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


async def test_the_buy_form_says_why_an_order_is_refused_and_places_nothing(
    market: Market, client: httpx.AsyncClient, make_user: Callable[..., Awaitable[Actor]]
) -> None:
    buyer, rival = await make_user("buyer"), await make_user("rival")
    offer = await market.offer(quantity=2, per_buyer_limit=2)
    url = f"/offers/{offer['id']}/buy"
    form = {"key": "form-key-000001", "quantity": "1"} | ADDRESS
    nowhere = await client.post(url, data=form | {"region_code": "999999"}, headers=buyer.headers)
    assert nowhere.status_code == 422 and "No place has this code" in nowhere.text
    assert "王小满" in nowhere.text  # what was typed stays

    took_all = await market.order(rival, [{"offer_id": offer["id"], "quantity": 2}])
    assert took_all.status_code == 201
    chinese = {"Cookie": "lang=zh_CN"}
    sold_out = await client.post(
        url, data=form | {"key": "form-key-000002"}, headers=buyer.headers | chinese
    )
    assert sold_out.status_code == 409 and "已售罄" in sold_out.text, sold_out.text
    mine = await client.get("/api/v1/orders", headers=buyer.headers)
    assert mine.json()["total"] == 0


async def test_a_quantity_int_would_refuse_is_asked_again(
    market: Market, client: httpx.AsyncClient, make_user: Callable[..., Awaitable[Actor]]
) -> None:
    buyer = await make_user("buyer")
    offer = await market.offer(quantity=2, per_buyer_limit=2)
    form = {"key": "form-key-000003"} | ADDRESS
    # "²" and "³" pass str.isdigit(), which int() refuses; "１" and "١" int() reads.
    for quantity in ("²", "³", "¹", "１", "١", "+1", "1_0", "1.0"):
        refused = await client.post(
            f"/offers/{offer['id']}/buy", data=form | {"quantity": quantity}, headers=buyer.headers
        )
        assert refused.status_code == 422 and "Choose how many" in refused.text, quantity
    mine = await client.get("/api/v1/orders", headers=buyer.headers)
    assert mine.json()["total"] == 0
