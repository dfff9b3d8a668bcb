"""Selection library test set-up: a shop with a product on sale (the orders' market), a
second product, anchors, and helpers to offer plans, join them and ask for samples."""

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.accounts.models import Role, UserRole
from originlive.affiliates.models import (
    CommissionPlan,
    CommissionPlanAnchor,
    CommissionPlanProduct,
    PlanMembership,
    SampleRequest,
)
from originlive.orders.models import Order
from originlive.settings import Settings
from tests.catalog.conftest import PRODUCT
from tests.conftest import Actor
from tests.orders.conftest import ADDRESS, Market, market  # noqa: F401 (a fixture)

MakeActor = Callable[..., Awaitable[Actor]]
TABLES = (
    CommissionPlan,
    CommissionPlanProduct,
    CommissionPlanAnchor,
    PlanMembership,
    SampleRequest,
    Order,
)
_keys = itertools.count(1)


def new_key() -> str:
    return f"sample-{next(_keys)}"


async def rows(db: AsyncSession) -> dict[str, int]:
    """How many rows each of the library's tables (and orders) has."""
    db.expire_all()
    return {
        model.__tablename__: int(await db.scalar(select(func.count()).select_from(model)) or 0)
        for model in TABLES
    }


@dataclass
class Library:
    """The market's shop offering plans to anchors, over the API."""

    client: httpx.AsyncClient
    market: Market
    db: AsyncSession
    make_user: MakeActor
    database_url: str
    other_product_id: int = 0

    @property
    def merchant(self) -> Actor:
        return self.market.merchant

    async def anchor(self, name: str = "anchor") -> Actor:
        """A user with the anchor role (as running a session of their own would give)."""
        actor = await self.make_user(name)
        self.db.add(UserRole(user_id=actor.id, role=Role.ANCHOR))
        await self.db.commit()
        return actor

    async def offer(self, **fields: Any) -> httpx.Response:
        body = {"name": "春季好物", "rate_bp": 1000} | fields
        return await self.client.post(
            f"/api/v1/affiliates/shops/{self.market.shop_id}/plans",
            json=body,
            headers=self.merchant.headers,
        )

    async def plan(self, **fields: Any) -> dict[str, Any]:
        made = await self.offer(**fields)
        assert made.status_code == 201, made.text
        return dict(made.json())

    async def join(self, anchor: Actor, plan_id: int) -> httpx.Response:
        return await self.client.post(
            f"/api/v1/affiliates/plans/{plan_id}/join", headers=anchor.headers
        )

    async def ask(
        self, anchor: Actor, plan_id: int, *, key: str | None = None, **fields: Any
    ) -> httpx.Response:
        headers = anchor.headers | ({"Idempotency-Key": key} if key else {})
        body = {"plan_id": plan_id, "sku_id": self.market.sku_id, "address": ADDRESS} | fields
        return await self.client.post("/api/v1/affiliates/samples", json=body, headers=headers)


@pytest.fixture
async def library(
    client: httpx.AsyncClient,
    market: Market,  # noqa: F811
    db: AsyncSession,
    make_user: MakeActor,
    settings: Settings,
) -> Library:
    other = await client.post(
        f"/api/v1/shops/{market.shop_id}/products",
        json=PRODUCT | {"title": "眉县猕猴桃 10斤装"},
        headers=market.merchant.headers,
    )
    assert other.status_code == 201, other.text
    url = settings.resolved_database_url
    return Library(client, market, db, make_user, url, other.json()["id"])
