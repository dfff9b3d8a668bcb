"""Offers and orders over HTTP: reservation, idempotency, limits, cancel, expiry, shipping."""

from datetime import timedelta

from sqlalchemy import func, select, update

from originlive.db import utcnow
from originlive.orders import placing, service, stock
from originlive.orders.models import FlashOffer, Order, OrderEvent
from tests.orders.conftest import ADDRESS, Market, new_key, units

STOCK = 100  # tests.catalog.conftest.PRODUCT's SKU
# Times a client may not send: the calendar's edges (no UTC time), and outside 2000 to 2999.
TIMES_PAST_THE_WINDOW = (
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00+14:00",
    "1999-12-31T23:59:59Z",
    "3000-01-01T00:00:00+08:00",
)


async def test_offer_moves_units_from_the_shelf_and_back(market: Market, db) -> None:
    offer = await market.offer(quantity=30)
    assert offer["remaining"] == 30 and offer["status"] == "active"
    assert await units(db, market.sku_id) == {"shelf": STOCK - 30, "offered": 30, "held": 0}
    ended = await market.client.post(
        f"/api/v1/offers/{offer['id']}/end", headers=market.merchant.headers
    )
    assert ended.status_code == 200 and ended.json()["status"] == "ended"
    assert await units(db, market.sku_id) == {"shelf": STOCK, "offered": 0, "held": 0}
    # Ending twice gives nothing back twice.
    await market.client.post(f"/api/v1/offers/{offer['id']}/end", headers=market.merchant.headers)
    assert (await units(db, market.sku_id))["shelf"] == STOCK


async def test_offer_cannot_take_more_than_the_shelf(market: Market, db) -> None:
    response = await market.client.post(
        "/api/v1/offers",
        json={"sku_id": market.sku_id, "price_cents": 100, "quantity": STOCK + 1},
        headers=market.merchant.headers,
    )
    assert response.status_code == 409
    assert await units(db, market.sku_id) == {"shelf": STOCK, "offered": 0, "held": 0}


async def test_order_from_an_offer(market: Market, make_user, db) -> None:
    offer = await market.offer(price_cents=1990)
    buyer = await make_user("buyer")
    response = await market.order(buyer, [{"offer_id": offer["id"], "quantity": 2}])
    assert response.status_code == 201, response.text
    order = response.json()
    assert order["status"] == "pending_payment"
    assert order["items_cents"] == 3980 and order["shipping_cents"] == 0
    assert order["total_cents"] == 3980 and order["currency"] == "CNY"
    assert [(e["from_status"], e["to_status"]) for e in order["events"]] == [
        (None, "pending_payment")
    ]
    expires = order["expires_at"]
    assert expires > order["created_at"]
    assert await units(db, market.sku_id) == {"shelf": STOCK - 10, "offered": 8, "held": 2}
    assert (await market.client.get(f"/api/v1/offers/{offer['id']}")).json()["remaining"] == 8


async def test_order_of_a_plain_sku(market: Market, make_user, db) -> None:
    buyer = await make_user("buyer")
    response = await market.order(buyer, [{"sku_id": market.sku_id, "quantity": 3}])
    assert response.status_code == 201, response.text
    assert response.json()["total_cents"] == 3 * 3990
    assert await units(db, market.sku_id) == {"shelf": STOCK - 3, "offered": 0, "held": 3}
    too_many = await market.order(buyer, [{"sku_id": market.sku_id, "quantity": STOCK}])
    assert too_many.status_code == 409 and too_many.json()["type"] == "/problems/sold-out"


async def test_idempotency_key(market: Market, make_user, db) -> None:
    offer = await market.offer()
    buyer = await make_user("buyer")
    items = [{"offer_id": offer["id"], "quantity": 1}]
    first = await market.order(buyer, items, key="same")
    again = await market.order(buyer, items, key="same")
    assert again.status_code == 201 and again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    other = await market.order(buyer, [{"offer_id": offer["id"], "quantity": 2}], key="same")
    assert other.status_code == 422
    assert other.json()["type"] == "/problems/idempotency-key-reused"
    # The key is per buyer: another buyer may use the same one.
    someone = await make_user("buyer")
    assert (await market.order(someone, items, key="same")).json()["id"] != first.json()["id"]
    assert await db.scalar(select(func.count()).select_from(Order)) == 2
    assert (await units(db, market.sku_id))["held"] == 2


async def test_sold_out_and_buyer_limit(market: Market, make_user, db) -> None:
    offer = await market.offer(quantity=3, per_buyer_limit=2)
    alice, bob = await make_user("alice"), await make_user("bob")
    line = {"offer_id": offer["id"], "quantity": 1}
    assert (await market.order(alice, [line])).status_code == 201
    assert (await market.order(alice, [line])).status_code == 201
    over = await market.order(alice, [line])
    assert over.status_code == 409 and over.json()["type"] == "/problems/over-limit"
    too_many = await market.order(bob, [{"offer_id": offer["id"], "quantity": 3}])
    assert too_many.status_code == 409
    assert (await market.order(bob, [line])).status_code == 201
    sold_out = await market.order(bob, [line])
    assert sold_out.status_code == 409 and sold_out.json()["type"] == "/problems/sold-out"
    assert await units(db, market.sku_id) == {"shelf": STOCK - 3, "offered": 0, "held": 3}


async def test_cancel_gives_units_back_once(market: Market, make_user, db) -> None:
    offer = await market.offer(quantity=5, per_buyer_limit=2)
    buyer = await make_user("buyer")
    order = (await market.order(buyer, [{"offer_id": offer["id"], "quantity": 2}])).json()
    url = f"/api/v1/orders/{order['id']}/cancel"
    cancelled = await market.client.post(url, json={"reason": "下错了"}, headers=buyer.headers)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["events"][-1]["note"] == "下错了"
    again = await market.client.post(url, headers=buyer.headers)
    assert again.status_code == 409
    assert await units(db, market.sku_id) == {"shelf": STOCK - 5, "offered": 5, "held": 0}
    # The buyer's limit counts only orders that hold units.
    assert (
        await market.order(buyer, [{"offer_id": offer["id"], "quantity": 2}])
    ).status_code == 201


async def test_expiry_returns_units_once(app, market: Market, make_user, db) -> None:
    offer = await market.offer(quantity=5)
    buyer = await make_user("buyer")
    order = (await market.order(buyer, [{"offer_id": offer["id"], "quantity": 1}])).json()
    writer = app.state.order_writer
    assert await writer.run(stock.expire_due, now=utcnow()) == []  # not yet due
    later = utcnow() + timedelta(hours=1)
    assert await writer.run(stock.expire_due, now=later) == [order["id"]]
    assert await writer.run(stock.expire_due, now=later) == []
    fresh = (await market.client.get(f"/api/v1/orders/{order['id']}", headers=buyer.headers)).json()
    assert fresh["status"] == "expired"
    assert await units(db, market.sku_id) == {"shelf": STOCK - 5, "offered": 5, "held": 0}
    cancel = await market.client.post(f"/api/v1/orders/{order['id']}/cancel", headers=buyer.headers)
    assert cancel.status_code == 409


async def test_units_of_an_ended_offer_go_back_to_the_shelf(app, market: Market, make_user, db):
    offer = await market.offer(quantity=5)
    buyer = await make_user("buyer")
    order = (await market.order(buyer, [{"offer_id": offer["id"], "quantity": 1}])).json()
    await market.client.post(f"/api/v1/offers/{offer['id']}/end", headers=market.merchant.headers)
    assert await units(db, market.sku_id) == {"shelf": STOCK - 1, "offered": 0, "held": 1}
    ordered = await market.order(buyer, [{"offer_id": offer["id"], "quantity": 1}])
    assert ordered.status_code == 409 and ordered.json()["type"] == "/problems/offer-ended"
    await market.client.post(f"/api/v1/orders/{order['id']}/cancel", headers=buyer.headers)
    assert await units(db, market.sku_id) == {"shelf": STOCK, "offered": 0, "held": 0}


async def test_offer_ends_on_time(app, market: Market, db) -> None:
    ends = (utcnow() + timedelta(minutes=5)).isoformat()
    offer = await market.offer(quantity=4, ends_at=ends)
    writer = app.state.order_writer
    assert await writer.run(stock.end_due_offers, now=utcnow()) == []
    later = utcnow() + timedelta(minutes=6)
    assert await writer.run(stock.end_due_offers, now=later) == [offer["id"]]
    assert await units(db, market.sku_id) == {"shelf": STOCK, "offered": 0, "held": 0}


async def test_an_end_past_the_window_is_a_422_naming_it(market: Market, db, caplog) -> None:
    # The calendar's edges overflowed in the column (astimezone) inside the order writer.
    body = {"sku_id": market.sku_id, "price_cents": 1990, "quantity": 1}
    for ends_at in (*TIMES_PAST_THE_WINDOW, "2026-12-01T20:00:00"):
        response = await market.client.post(
            "/api/v1/offers", json=body | {"ends_at": ends_at}, headers=market.merchant.headers
        )
        assert response.status_code == 422, (ends_at, response.text)
        assert [e["field"] for e in response.json()["errors"]] == ["ends_at"], ends_at
    assert await units(db, market.sku_id) == {"shelf": STOCK, "offered": 0, "held": 0}
    assert "job failed" not in caplog.text


async def test_shipping_fee_by_destination(market: Market, make_user) -> None:
    url = f"/api/v1/shops/{market.shop_id}/shipping-rates"
    rates = {
        "rates": [
            {"region_code": None, "fee_cents": 1200},
            {"region_code": "610000", "fee_cents": 600},
            {"region_code": "610431", "fee_cents": 0},
        ]
    }
    put = await market.client.put(url, json=rates, headers=market.merchant.headers)
    assert put.status_code == 200, put.text
    assert (await market.client.get(url)).json() == rates
    buyer = await make_user("buyer")
    line = [{"sku_id": market.sku_id, "quantity": 1}]
    fees = {}
    for code in ("610431", "610400", "530000"):
        address = ADDRESS | {"region_code": code}
        fees[code] = (await market.order(buyer, line, address=address)).json()["shipping_cents"]
    assert fees == {"610431": 0, "610400": 600, "530000": 1200}
    other = await make_user("other")
    assert (await market.client.put(url, json=rates, headers=other.headers)).status_code == 403


async def test_who_may_do_what(market: Market, make_user, make_operator, db) -> None:
    offer = await market.offer()
    buyer, stranger = await make_user("buyer"), await make_user("stranger")
    order = (await market.order(buyer, [{"offer_id": offer["id"], "quantity": 1}])).json()
    url = f"/api/v1/orders/{order['id']}"
    assert (await market.client.get(url)).status_code == 401
    assert (await market.client.get(url, headers=stranger.headers)).status_code == 404
    assert (await market.client.get(url, headers=market.merchant.headers)).status_code == 200
    operator = await make_operator()
    assert (await market.client.get(url, headers=operator.headers)).status_code == 200
    mine = (await market.client.get("/api/v1/orders", headers=buyer.headers)).json()
    assert [o["id"] for o in mine["items"]] == [order["id"]]
    assert (await market.client.get("/api/v1/orders", headers=stranger.headers)).json()[
        "total"
    ] == 0
    shop_orders = f"/api/v1/shops/{market.shop_id}/orders"
    assert (await market.client.get(shop_orders, headers=stranger.headers)).status_code == 403
    assert (await market.client.get(shop_orders, headers=market.merchant.headers)).json()[
        "total"
    ] == 1
    cancel = await market.client.post(f"{url}/cancel", headers=stranger.headers)
    assert cancel.status_code == 404
    # Another merchant can neither sell my SKU nor end my offer.
    body = {"sku_id": market.sku_id, "price_cents": 1, "quantity": 1}
    sell = await market.client.post("/api/v1/offers", json=body, headers=stranger.headers)
    assert sell.status_code == 422
    end = await market.client.post(f"/api/v1/offers/{offer['id']}/end", headers=stranger.headers)
    assert end.status_code == 403
    anonymous = await market.client.post(
        "/api/v1/orders",
        json={"items": [{"offer_id": offer["id"]}], "address": ADDRESS},
        headers={"Idempotency-Key": new_key()},
    )
    assert anonymous.status_code == 401
    # The operator's cancel is in the audit log.
    assert (await market.client.post(f"{url}/cancel", headers=operator.headers)).status_code == 200


async def test_bad_orders_write_nothing(market: Market, make_user, db) -> None:
    offer = await market.offer()
    buyer = await make_user("buyer")
    headers = buyer.headers | {"Idempotency-Key": new_key()}
    line = {"offer_id": offer["id"], "quantity": 1}
    bad = [
        {"items": [], "address": ADDRESS},
        {"items": [{"offer_id": offer["id"], "quantity": 0}], "address": ADDRESS},
        {"items": [{"offer_id": offer["id"], "quantity": -1}], "address": ADDRESS},
        {"items": [{"offer_id": offer["id"], "quantity": "1"}], "address": ADDRESS},
        {"items": [{"offer_id": offer["id"], "sku_id": market.sku_id}], "address": ADDRESS},
        {"items": [line, line], "address": ADDRESS},
        {"items": [{"offer_id": 2**40}], "address": ADDRESS},
        {"items": [{"offer_id": 999999}], "address": ADDRESS},
        {"items": [line], "address": ADDRESS | {"region_code": "999999"}},
        {"items": [line], "address": ADDRESS | {"phone": "call me"}},
        {"items": [line], "address": {"name": "x"}},
        {"items": [line], "address": ADDRESS, "coupon": "FREE"},
    ]
    for body in bad:
        response = await market.client.post("/api/v1/orders", json=body, headers=headers)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["status"] == 422
    no_key = await market.client.post(
        "/api/v1/orders", json={"items": [line], "address": ADDRESS}, headers=buyer.headers
    )
    assert no_key.status_code == 422
    malformed = await market.client.post(
        "/api/v1/orders", content=b"{items", headers=headers | {"Content-Type": "application/json"}
    )
    assert malformed.status_code == 400
    huge = {"items": [line], "address": ADDRESS | {"detail": "x" * (2 << 20)}}
    too_large = await market.client.post("/api/v1/orders", json=huge, headers=headers)
    assert too_large.status_code == 413
    assert await db.scalar(select(func.count()).select_from(Order)) == 0
    assert await db.scalar(select(func.count()).select_from(OrderEvent)) == 0
    assert await units(db, market.sku_id) == {"shelf": STOCK - 10, "offered": 10, "held": 0}


async def test_sweeper_expires_and_ends(app, market: Market, make_user, db) -> None:
    offer = await market.offer(quantity=6, per_buyer_limit=3)
    buyer = await make_user("buyer")
    orders = [
        (await market.order(buyer, [{"offer_id": offer["id"], "quantity": 1}])).json()
        for _ in range(3)
    ]
    assert await service.sweep(app.state.order_writer, app.state.gate) == ([], [])
    past = utcnow() - timedelta(seconds=1)
    await db.execute(update(Order).where(Order.id != orders[2]["id"]).values(expires_at=past))
    await db.execute(update(FlashOffer).values(ends_at=past))
    await db.commit()
    expired, ended = await service.sweep(app.state.order_writer, app.state.gate)
    assert sorted(expired) == sorted(o["id"] for o in orders[:2]) and ended == [offer["id"]]
    assert await units(db, market.sku_id) == {"shelf": STOCK - 1, "offered": 0, "held": 1}


async def test_shop_lists_its_offers(market: Market) -> None:
    first = await market.offer(quantity=5)
    second = await market.offer(quantity=7)
    await market.client.post(f"/api/v1/offers/{first['id']}/end", headers=market.merchant.headers)
    url = f"/api/v1/shops/{market.shop_id}/offers"
    everything = (await market.client.get(url)).json()
    assert [o["id"] for o in everything] == [second["id"], first["id"]]
    active = (await market.client.get(url, params={"status": "active"})).json()
    assert [(o["id"], o["remaining"]) for o in active] == [(second["id"], 7)]
    assert (await market.client.get(url, params={"status": "sold"})).status_code == 422
    assert (await market.client.get("/api/v1/shops/999999/offers")).status_code == 404


class _BrokenPlacer:
    """A placer whose database has gone away mid-sale."""

    async def place(self, cmd: placing.PlaceOrder) -> placing.Placed:
        raise RuntimeError("the database went away")

    async def close(self) -> None:
        return None


async def test_an_error_of_ours_is_a_500_problem(app, market: Market, make_user, db) -> None:
    # The flash-order route answers before FastAPI's error middleware: its own 500, with
    # the problem body and no details, and nothing written.
    offer = await market.offer(quantity=5)
    buyer = await make_user("buyer")
    working, app.state.order_placer = app.state.order_placer, _BrokenPlacer()
    try:
        response = await market.order(buyer, [{"offer_id": offer["id"], "quantity": 1}])
    finally:
        app.state.order_placer = working
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("internal-error")
    assert "database" not in response.text
    assert await db.scalar(select(func.count()).select_from(Order)) == 0
    # The gate, if any, gave the reservation back: the offer still sells all five.
    for _ in range(2):
        assert (await market.order(buyer, [{"offer_id": offer["id"], "quantity": 1}])).is_success


async def test_an_address_with_what_cannot_be_seen_is_refused(
    market: Market, make_user, db
) -> None:
    offer = await market.offer()
    buyer = await make_user("buyer")
    line = {"offer_id": offer["id"], "quantity": 1}
    for field, value in [
        ("name", "王小满\u200b"),
        ("name", "\u202e满小王"),
        ("name", "王\u2066小满\u2069"),
        ("name", "\ufeff王小满"),
        ("name", "王小满\u0085"),
        ("name", "王\u009b小满"),
        ("name", "王小\u00ad满"),
        ("name", "\u200b"),
        ("detail", "徐杨村\u202e组5"),
    ]:
        response = await market.order(buyer, [line], address=ADDRESS | {field: value})
        assert response.status_code == 422, (value, response.text)
        assert [e["field"] for e in response.json()["errors"]] == [f"address.{field}"]
    assert await db.scalar(select(func.count()).select_from(Order)) == 0
    folded = await market.order(buyer, [line], address=ADDRESS | {"name": "  王　小满  "})
    assert folded.status_code == 201, folded.text
    assert folded.json()["address"]["name"] == "王 小满"
