"""The console's orders, in-process: the shop's orders by state, shipping a paid order with its
waybill, refunding all or part; bad input and wrong states are shown and change nothing;
nobody else's orders are reachable."""

from collections.abc import Awaitable, Callable

from tests.accounts.test_pages import HTML
from tests.conftest import Actor
from tests.orders.conftest import Market
from tests.payments.test_api import checkout, choose, deliver, order_of


async def _paid(app: object, market: Market, buyer: Actor, quantity: int = 2) -> dict:
    order, payment = await checkout(market, buyer, quantity=quantity)
    await choose(market.client, payment, "succeed")
    assert await deliver(app) == 1
    return order


async def test_the_shop_ships_a_paid_order_with_its_waybill(
    app: object, market: Market, make_user: Callable[..., Awaitable[Actor]]
) -> None:
    buyer = await make_user("buyer")
    order = await _paid(app, market, buyer)
    client, merchant = market.client, market.merchant
    to_ship = await client.get(
        f"/console/shops/{market.shop_id}/orders?status=paid", headers=merchant.headers
    )
    assert to_ship.status_code == 200
    assert f'id="order-{order["id"]}"' in to_ship.text and "王小满" in to_ship.text

    refused = await client.post(
        f"/console/orders/{order['id']}/ship",
        data={"carrier": "中国邮政", "tracking_number": "no spaces!"},
        headers=merchant.headers,
    )
    assert refused.status_code == 422 and "Enter the waybill number" in refused.text
    assert (await order_of(market, buyer, order["id"]))["status"] == "paid"

    shipped = await client.post(
        f"/console/orders/{order['id']}/ship",
        data={"carrier": "中国邮政", "tracking_number": "EMS-1234567890"},
        headers=merchant.headers,
    )
    assert shipped.status_code == 303
    seen = await order_of(market, buyer, order["id"])
    assert seen["status"] == "shipped"
    assert seen["events"][-1]["note"] == "中国邮政 EMS-1234567890"
    # Twice is refused: it is no longer paid.
    again = await client.post(
        f"/console/orders/{order['id']}/ship",
        data={"carrier": "顺丰", "tracking_number": "SF1"},
        headers=merchant.headers,
    )
    assert again.status_code in (409, 422)
    assert len((await order_of(market, buyer, order["id"]))["events"]) == len(seen["events"])
    listed = await client.get(
        f"/console/shops/{market.shop_id}/orders?status=shipped", headers=merchant.headers
    )
    assert "EMS-1234567890" in listed.text


async def test_the_shop_refunds_part_then_the_rest(
    app: object, market: Market, make_user: Callable[..., Awaitable[Actor]]
) -> None:
    buyer = await make_user("buyer")
    order = await _paid(app, market, buyer)  # 2 × ¥19.90 = ¥39.80
    client, merchant = market.client, market.merchant
    url = f"/console/orders/{order['id']}/refund"
    for amount, reason, status, text in [
        ("0", "破损", 422, "Enter an amount in yuan"),
        ("abc", "破损", 422, "Enter an amount in yuan"),
        ("10", "", 422, "Say why"),
        ("40.00", "破损", 422, "At most ¥39.80 is left to refund."),
    ]:
        refused = await client.post(
            url, data={"amount": amount, "reason": reason}, headers=merchant.headers
        )
        assert refused.status_code == status and text in refused.text, (amount, refused.text)
    assert (await order_of(market, buyer, order["id"]))["refunded_cents"] == 0

    part = await client.post(
        url, data={"amount": "9.90", "reason": "一个破损"}, headers=merchant.headers
    )
    assert part.status_code == 303
    assert (await order_of(market, buyer, order["id"]))["refunded_cents"] == 990
    rest = await client.post(
        url, data={"amount": "29.90", "reason": "全部退"}, headers=merchant.headers
    )
    assert rest.status_code == 303
    done = await order_of(market, buyer, order["id"])
    assert done["status"] == "refunded" and done["refunded_cents"] == 3980


async def test_only_the_shop_reaches_its_orders(
    app: object, market: Market, make_user: Callable[..., Awaitable[Actor]]
) -> None:
    buyer, stranger = await make_user("buyer"), await make_user("stranger")
    order = await _paid(app, market, buyer)
    client = market.client
    listed = await client.get(
        f"/console/shops/{market.shop_id}/orders", headers=stranger.headers | HTML
    )
    assert listed.status_code == 403  # the shop is public; its orders are not
    for who in (stranger, buyer):
        shipped = await client.post(
            f"/console/orders/{order['id']}/ship",
            data={"carrier": "顺丰", "tracking_number": "SF123456"},
            headers=who.headers | HTML,
        )
        assert shipped.status_code == 404
    assert (await order_of(market, buyer, order["id"]))["status"] == "paid"


async def test_the_ship_api(
    app: object, market: Market, make_user: Callable[..., Awaitable[Actor]]
) -> None:
    buyer = await make_user("buyer")
    order = await _paid(app, market, buyer, quantity=1)
    url = f"/api/v1/orders/{order['id']}/ship"
    body = {"carrier": "中国邮政", "tracking_number": "9876543210"}
    assert (await market.client.post(url, json=body, headers=buyer.headers)).status_code == 404
    bad = await market.client.post(
        url, json=body | {"tracking_number": ""}, headers=market.merchant.headers
    )
    assert bad.status_code == 422
    shipped = await market.client.post(url, json=body, headers=market.merchant.headers)
    assert shipped.status_code == 200 and shipped.json()["status"] == "shipped"
    again = await market.client.post(url, json=body, headers=market.merchant.headers)
    assert again.status_code == 409
