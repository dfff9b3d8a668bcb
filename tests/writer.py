"""Running a synchronous test body on a connection like the order writer's, and what the
state machines that do so start from."""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, insert, select
from sqlalchemy.ext.asyncio import create_async_engine

from originlive.accounts.models import User
from originlive.batching import _sqlite_thread_engine
from originlive.catalog.models import Product, Shop, ShopStatus, Sku
from originlive.orders.models import Order, OrderEvent, OrderItem, OrderStatus
from originlive.payments.models import Payment, PaymentEvent, PaymentStatus


async def on_writer_connection(database_url: str, run: Callable[[Connection], None]) -> None:
    """``run(connection)`` as the order writer runs its rules: on SQLite a synchronous
    connection of its own (in a thread), on PostgreSQL asyncpg's driven through run_sync."""
    if database_url.startswith("sqlite"):
        engine = _sqlite_thread_engine(database_url, writer=True)
        try:
            with engine.connect() as connection:
                await asyncio.to_thread(run, connection)
        finally:
            engine.dispose()
        return
    async_engine = create_async_engine(database_url)
    try:
        async with async_engine.connect() as connection:
            await connection.run_sync(run)
    finally:
        await async_engine.dispose()


@dataclass(frozen=True)
class Seeded:
    merchant: int
    buyers: list[int]
    shop: int
    sku: int


def shop_with_a_sku(
    conn: Connection, *, at: datetime, buyers: int, price_cents: int, stock: int
) -> Seeded:
    """An approved kiwi shop in Wugong with one SKU, its merchant and ``buyers`` buyers, written
    straight in (the state machines' start)."""
    merchant, *buyer_ids = conn.execute(
        insert(User).returning(User.id),
        [
            {"email": f"m{i}@example.com", "password_hash": "x", "display_name": f"u{i}"}
            for i in range(1 + buyers)
        ],
    ).scalars()
    shop = conn.execute(
        insert(Shop)
        .values(
            owner_id=merchant,
            name="果园",
            description="",
            region_code="610431",
            status=ShopStatus.APPROVED,
            created_at=at,
            updated_at=at,
        )
        .returning(Shop.id)
    ).scalar_one()
    product = conn.execute(
        insert(Product)
        .values(
            shop_id=shop,
            title="猕猴桃",
            description="",
            category="水果",
            origin_region_code="610431",
            search_text="",
            created_at=at,
            updated_at=at,
        )
        .returning(Product.id)
    ).scalar_one()
    sku = conn.execute(
        insert(Sku)
        .values(
            product_id=product,
            name="5斤",
            price_cents=price_cents,
            currency="CNY",
            stock=stock,
            created_at=at,
            updated_at=at,
        )
        .returning(Sku.id)
    ).scalar_one()
    return Seeded(merchant, buyer_ids, shop, sku)


def completed_orders(
    conn: Connection, seeded: Seeded, *, count: int, at: datetime, price_cents: int = 1990
) -> list[int]:
    """``count`` orders of the seeded SKU, paid, received and completed at ``at``, written
    straight in with their payments and events (for settlement runs at volume). Each has one
    to three lines; the second and third are sold by a buyer acting as anchor at 10 % and 5 %,
    so a capture has three to five legs. Returns the orders' ids."""
    start = (conn.execute(select(func.max(Order.id))).scalar() or 0) + 1
    ids = list(range(start, start + count))
    anchors = seeded.buyers
    orders, items, payments, events, paid = [], [], [], [], []
    for n, order_id in enumerate(ids):
        lines = 1 + n % 3
        buyer = seeded.buyers[n % len(seeded.buyers)]
        orders.append(
            {
                "id": order_id,
                "buyer_id": buyer,
                "shop_id": seeded.shop,
                "status": OrderStatus.COMPLETED,
                "currency": "CNY",
                "items_cents": price_cents * lines,
                "shipping_cents": 0,
                "total_cents": price_cents * lines,
                "refunded_cents": 0,
                "ship_name": "买家",
                "ship_phone": "13800000000",
                "ship_region_code": "610431",
                "ship_detail": "徐杨村",
                "idempotency_key": f"seed-{order_id}",
                "request_hash": "0" * 64,
                "created_at": at,
                "expires_at": at,
                "updated_at": at,
            }
        )
        for line in range(lines):
            sold_by = {"anchor_id": None, "commission_bp": None}
            if line:
                sold_by = {"anchor_id": anchors[line % len(anchors)], "commission_bp": 1000 // line}
            items.append(
                {
                    "order_id": order_id,
                    "sku_id": seeded.sku,
                    "offer_id": None,
                    "title": "猕猴桃 5斤",
                    "unit_price_cents": price_cents,
                    "quantity": 1,
                    "live_session_id": None,
                    "plan_id": None,
                    **sold_by,
                }
            )
        payments.append(
            {
                "id": order_id,
                "order_id": order_id,
                "provider": "sandbox",
                "status": PaymentStatus.SUCCEEDED,
                "amount_cents": price_cents * lines,
                "currency": "CNY",
                "refunded_cents": 0,
                "checkout_token": f"seed-{order_id}",
                "created_at": at,
                "updated_at": at,
            }
        )
        paid.append(
            {
                "payment_id": order_id,
                "from_status": PaymentStatus.PENDING,
                "to_status": PaymentStatus.SUCCEEDED,
                "note": None,
                "created_at": at,
            }
        )
        for from_, to in ((None, OrderStatus.PAID), (OrderStatus.PAID, OrderStatus.COMPLETED)):
            events.append(
                {
                    "order_id": order_id,
                    "from_status": from_,
                    "to_status": to,
                    "actor_id": None,
                    "note": None,
                    "created_at": at,
                }
            )
    conn.execute(insert(Order), orders)
    conn.execute(insert(OrderItem), items)
    conn.execute(insert(Payment), payments)
    conn.execute(insert(PaymentEvent), paid)
    conn.execute(insert(OrderEvent), events)
    if conn.dialect.name == "postgresql":  # ids given: move the sequences past them
        for table in ("orders", "payments"):
            conn.exec_driver_sql(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                f" (SELECT max(id) FROM {table}))"
            )
    return ids
