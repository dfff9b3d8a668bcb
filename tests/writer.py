"""Running a synchronous test body on a connection like the order writer's, and what the
state machines that do so start from."""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, insert
from sqlalchemy.ext.asyncio import create_async_engine

from originlive.accounts.models import User
from originlive.batching import _sqlite_thread_engine
from originlive.catalog.models import Product, Shop, ShopStatus, Sku


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
