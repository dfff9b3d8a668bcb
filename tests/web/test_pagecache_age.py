"""Shared pages are kept one second at most by default: a change the cache is not told of
(plain SQL, another process's commit) still shows within a second."""

import asyncio

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.catalog.models import Sku
from tests.orders.conftest import Market
from tests.web.test_pagecache import twice


async def test_a_change_behind_the_apps_back_shows_within_a_second(
    market: Market, client: httpx.AsyncClient, db: AsyncSession
) -> None:
    path = f"/products/{market.product_id}"
    await twice(client, path)
    await db.execute(update(Sku).where(Sku.id == market.sku_id).values(price_cents=4321))
    await db.commit()
    assert "¥43.21" not in (await client.get(path)).text  # kept: the cache was not told
    await asyncio.sleep(1.05)  # ORIGINLIVE_PAGE_CACHE_SECONDS, one second by default
    assert "¥43.21" in (await client.get(path)).text
