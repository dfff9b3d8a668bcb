"""Orders test set-up: a shop with a SKU on sale, and helpers to open offers and place orders."""

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.catalog.models import Sku
from originlive.orders.models import FlashOffer, OrderItem
from tests.catalog.conftest import Catalog
from tests.conftest import Actor

ADDRESS = {
    "name": "王小满",
    "phone": "13800000000",
    "region_code": "610431",
    "detail": "武功镇 徐杨村 3组 12号",
}
_keys = itertools.count(1)


def new_key() -> str:
    return f"key-{next(_keys)}"


@dataclass
class Market:
    """A merchant with an approved shop and one product of one SKU, over the API."""

    client: httpx.AsyncClient
    merchant: Actor
    shop_id: int
    product_id: int
    sku_id: int

    async def offer(self, **fields: Any) -> dict[str, Any]:
        body = {"sku_id": self.sku_id, "price_cents": 1990, "quantity": 10, "per_buyer_limit": 2}
        response = await self.client.post(
            "/api/v1/offers", json=body | fields, headers=self.merchant.headers
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def order(
        self, buyer: Actor, items: list[dict[str, Any]], *, key: str | None = None, **fields: Any
    ) -> httpx.Response:
        headers = buyer.headers | {"Idempotency-Key": key or new_key()}
        body = {"items": items, "address": ADDRESS} | fields
        return await self.client.post("/api/v1/orders", json=body, headers=headers)


@pytest.fixture
async def market(
    client: httpx.AsyncClient,
    make_user: Callable[..., Awaitable[Actor]],
    make_operator: Callable[[], Awaitable[Actor]],
) -> Market:
    catalog = Catalog(client, make_operator)
    merchant = await make_user("merchant")
    shop = await catalog.shop(merchant)
    product = await catalog.product(merchant, shop["id"])
    return Market(client, merchant, shop["id"], product["id"], product["skus"][0]["id"])


async def units(db: AsyncSession, sku_id: int) -> dict[str, int]:
    """Where the SKU's units are: on the shelf, on offer, in orders that hold them."""
    from originlive.orders.models import HOLDING, Order

    db.expire_all()
    shelf = await db.scalar(select(Sku.stock).where(Sku.id == sku_id))
    offered = await db.scalar(
        select(func.coalesce(func.sum(FlashOffer.remaining), 0)).where(FlashOffer.sku_id == sku_id)
    )
    held = await db.scalar(
        select(func.coalesce(func.sum(OrderItem.quantity), 0))
        .join(Order, Order.id == OrderItem.order_id)
        .where(OrderItem.sku_id == sku_id, Order.status.in_(HOLDING))
    )
    return {"shelf": int(shelf or 0), "offered": int(offered or 0), "held": int(held or 0)}
