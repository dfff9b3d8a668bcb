"""Only what is on sale sells: an approved shop's active product, from an offer still open.

The rule is ``stock.on_sale``; the order path asks it as SQL (``OFFER_ON_SALE``,
``SKU_ON_SALE``), checked here to answer alike. A rejected shop or a hidden product sells
nothing more by any path (the fast path in front of FastAPI, the FastAPI route, the buy page;
``test_on_sale_gated`` runs them again behind the Redis gate), and its open offers end with
their units back on the shelf.
"""

import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Connection, insert, update
from sqlalchemy.ext.asyncio import AsyncSession

from originlive import rawsql
from originlive.catalog.models import Product, ProductStatus, Shop, ShopStatus
from originlive.db import utcnow
from originlive.orders import service, stock
from originlive.orders.models import FlashOffer, OfferStatus, Order, OrderStatus
from tests.conftest import Actor
from tests.orders.conftest import ADDRESS, Market, new_key, units

MakeUser = Callable[..., Awaitable[Actor]]
PATHS = ["fast", "route"]


async def place(market: Market, buyer: Actor, item: dict[str, Any], path: str) -> httpx.Response:
    """Place an order of one line: by the fast path (a declared body and a known token), or
    by the FastAPI route (a chunked body, which the fast path leaves to it)."""
    if path == "fast":
        return await market.order(buyer, [item])
    body = json.dumps({"items": [item], "address": ADDRESS}).encode()

    async def chunked() -> AsyncIterator[bytes]:
        yield body

    headers = buyer.headers | {"Idempotency-Key": new_key(), "Content-Type": "application/json"}
    return await market.client.post("/api/v1/orders", content=chunked(), headers=headers)


async def set_status(db: AsyncSession, model: type[Any], row_id: int, status: Any) -> None:
    """Change a shop's or product's state behind the platform's back, as a crash right after
    the commit that changed it would leave things: nothing else has happened yet."""
    await db.execute(update(model).where(model.id == row_id).values(status=status))
    await db.commit()


def refused_as(response: httpx.Response, slug: str) -> bool:
    return response.status_code == 409 and response.json()["type"] == f"/problems/{slug}"


# The rule and its SQL forms


async def test_the_sql_forms_of_the_rule_answer_as_the_rule(app: Any, market: Market) -> None:
    now = utcnow()
    ends = [None, now - timedelta(minutes=1), now + timedelta(minutes=1)]
    combos = list(itertools.product(list(OfferStatus), ends))

    def arrange(conn: Connection) -> list[int]:
        fields = {"shop_id": market.shop_id, "sku_id": market.sku_id, "title": "t",
                  "price_cents": 1, "currency": "CNY", "quantity": 1, "remaining": 1,
                  "per_buyer_limit": 1, "created_at": now}  # fmt: skip
        made = insert(FlashOffer).returning(FlashOffer.id)
        return [
            conn.execute(made.values(**fields, status=status, ends_at=ends_at)).scalar_one()
            for status, ends_at in combos
        ]

    def judge(conn: Connection, product: ProductStatus, shop: ShopStatus) -> dict[int, bool]:
        conn.execute(update(Product).where(Product.id == market.product_id).values(status=product))
        conn.execute(update(Shop).where(Shop.id == market.shop_id).values(status=shop))
        params = stock.sale_params(rawsql.db_time(conn, now))
        offers = rawsql.execute(
            conn, f"SELECT id, {stock.OFFER_ON_SALE} FROM flash_offers", **params
        ).fetchall()
        plain = rawsql.execute(
            conn,
            "SELECT count(*) FROM skus JOIN products ON products.id = skus.product_id"
            f" JOIN shops ON shops.id = products.shop_id WHERE {stock.SKU_ON_SALE}",
            **params,
        ).fetchone()[0]
        return {**{int(i): bool(v) for i, v in offers}, 0: bool(plain)}

    writer = app.state.order_writer
    ids = await writer.run(arrange)
    for product, shop in itertools.product(list(ProductStatus), list(ShopStatus)):
        answers = await writer.run(judge, product=product, shop=shop)
        rule = {"product_status": product, "shop_status": shop, "now": now}
        assert answers[0] == stock.on_sale(offer_status=None, ends_at=None, **rule)
        for offer_id, (status, ends_at) in zip(ids, combos, strict=True):
            expected = stock.on_sale(offer_status=status, ends_at=ends_at, **rule)
            assert answers[offer_id] == expected, (product, shop, status, ends_at)


# A rejected shop


@pytest.mark.parametrize("path", PATHS)
async def test_a_rejected_shop_sells_nothing_more_and_its_offers_end(
    market: Market,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    make_operator: Callable[[], Awaitable[Actor]],
    db: AsyncSession,
    path: str,
) -> None:
    buyer, late = await make_user("buyer"), await make_user("late")
    offer = await market.offer(quantity=10)
    pending = await place(market, buyer, {"offer_id": offer["id"], "quantity": 2}, path)
    assert pending.status_code == 201, pending.text
    pay = f"/api/v1/orders/{pending.json()['id']}/payments"
    opened = await client.post(pay, json={"provider": "sandbox"}, headers=buyer.headers)
    assert opened.status_code == 201

    operator = await make_operator()
    rejected = await client.post(
        f"/api/v1/shops/{market.shop_id}/reject",
        json={"reason": "假冒产地"},
        headers=operator.headers,
    )
    assert rejected.status_code == 200, rejected.text

    from_offer = await place(market, late, {"offer_id": offer["id"], "quantity": 1}, path)
    assert refused_as(from_offer, "offer-ended"), from_offer.text
    from_shelf = await place(market, late, {"sku_id": market.sku_id, "quantity": 1}, path)
    assert from_shelf.status_code == 422, from_shelf.text
    seen = await client.get(f"/api/v1/offers/{offer['id']}", headers=operator.headers)
    assert (seen.json()["status"], seen.json()["remaining"]) == ("ended", 0)
    # The offer's units and the unpaid order's are all back on the shelf.
    assert await units(db, market.sku_id) == {"shelf": 100, "offered": 0, "held": 0}
    order = await client.get(f"/api/v1/orders/{pending.json()['id']}", headers=buyer.headers)
    assert order.json()["status"] == "cancelled"
    assert order.json()["events"][-1]["note"] == stock.SHOP_STOPPED
    again = await client.post(pay, json={"provider": "sandbox"}, headers=buyer.headers)
    assert again.status_code == 409
    mine = await client.get("/api/v1/orders", headers=late.headers)
    assert mine.json()["total"] == 0


@pytest.mark.parametrize("path", PATHS)
async def test_the_order_path_itself_refuses_a_stopped_shop_before_the_sweep(
    app: Any, market: Market, make_user: MakeUser, db: AsyncSession, path: str
) -> None:
    """The rule is asked by the order path itself, not only by what the rejection sets off:
    were the process to die between the two, the shop would still sell nothing."""
    buyer = await make_user("buyer")
    offer = await market.offer(quantity=10)
    first = await place(market, buyer, {"offer_id": offer["id"], "quantity": 1}, path)
    assert first.status_code == 201  # (and the gate, if any, has the offer loaded)
    await set_status(db, Shop, market.shop_id, ShopStatus.REJECTED)

    refused = await place(market, buyer, {"offer_id": offer["id"], "quantity": 1}, path)
    assert refused_as(refused, "offer-ended"), refused.text
    plain = await place(market, buyer, {"sku_id": market.sku_id, "quantity": 1}, path)
    assert plain.status_code == 422, plain.text
    assert await units(db, market.sku_id) == {"shelf": 90, "offered": 9, "held": 1}

    # The sweep, which runs every few seconds, catches up: the offer ends, the unpaid
    # order is cancelled, every unit is back on the shelf.
    _expired, ended = await service.sweep(app.state.order_writer, app.state.gate)
    assert ended == [offer["id"]]
    assert await units(db, market.sku_id) == {"shelf": 100, "offered": 0, "held": 0}
    db.expire_all()
    order = await db.get(Order, first.json()["id"])
    assert order is not None and order.status == OrderStatus.CANCELLED


async def test_a_pending_or_rejected_shop_sells_from_the_buy_page_no_more(
    market: Market, client: httpx.AsyncClient, make_user: MakeUser, db: AsyncSession
) -> None:
    buyer = await make_user("buyer")
    offer = await market.offer(quantity=10)
    await set_status(db, Shop, market.shop_id, ShopStatus.REJECTED)
    form = {"key": "form-key-stopped1", "quantity": "1"} | ADDRESS
    bought = await client.post(f"/offers/{offer['id']}/buy", data=form, headers=buyer.headers)
    assert bought.status_code in (404, 409), bought.text
    assert (await client.get("/api/v1/orders", headers=buyer.headers)).json()["total"] == 0


# A hidden product


@pytest.mark.parametrize("path", PATHS)
async def test_hiding_a_product_ends_its_offers(
    market: Market, client: httpx.AsyncClient, make_user: MakeUser, db: AsyncSession, path: str
) -> None:
    buyer = await make_user("buyer")
    offer = await market.offer(quantity=10)
    kept = await place(market, buyer, {"offer_id": offer["id"], "quantity": 2}, path)
    assert kept.status_code == 201

    hidden = await client.patch(
        f"/api/v1/products/{market.product_id}",
        json={"status": "hidden"},
        headers=market.merchant.headers,
    )
    assert hidden.status_code == 200, hidden.text
    refused = await place(market, buyer, {"offer_id": offer["id"], "quantity": 1}, path)
    assert refused_as(refused, "offer-ended"), refused.text
    plain = await place(market, buyer, {"sku_id": market.sku_id, "quantity": 1}, path)
    assert plain.status_code == 422, plain.text
    # The offer's 8 units are back on the shelf; the order already placed keeps its 2 (the
    # shop chose to stop selling, not to break what it sold).
    assert await units(db, market.sku_id) == {"shelf": 98, "offered": 0, "held": 2}
    order = await client.get(f"/api/v1/orders/{kept.json()['id']}", headers=buyer.headers)
    assert order.json()["status"] == "pending_payment"


@pytest.mark.parametrize("path", PATHS)
async def test_a_product_hidden_behind_the_platforms_back_sells_nothing(
    market: Market, make_user: MakeUser, db: AsyncSession, path: str
) -> None:
    buyer = await make_user("buyer")
    offer = await market.offer(quantity=10)
    await set_status(db, Product, market.product_id, ProductStatus.HIDDEN)
    refused = await place(market, buyer, {"offer_id": offer["id"], "quantity": 1}, path)
    assert refused_as(refused, "offer-ended"), refused.text
    assert await units(db, market.sku_id) == {"shelf": 90, "offered": 10, "held": 0}


async def test_no_offer_opens_on_a_hidden_product_or_a_stopped_shop(
    market: Market, client: httpx.AsyncClient, db: AsyncSession
) -> None:
    body = {"sku_id": market.sku_id, "price_cents": 990, "quantity": 5, "per_buyer_limit": 1}
    await set_status(db, Product, market.product_id, ProductStatus.HIDDEN)
    hidden = await client.post("/api/v1/offers", json=body, headers=market.merchant.headers)
    assert hidden.status_code == 409, hidden.text
    await set_status(db, Shop, market.shop_id, ShopStatus.REJECTED)
    stopped = await client.post("/api/v1/offers", json=body, headers=market.merchant.headers)
    assert stopped.status_code == 403, stopped.text
    assert await units(db, market.sku_id) == {"shelf": 100, "offered": 0, "held": 0}
