"""Delivery test set-up: a county's network (a hub, a station, a point that delivers home,
a village without a point), its staff, and paid orders to ship through it."""

import datetime as dt
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.regions import service as regions
from originlive.regions.models import Region
from tests.conftest import Actor
from tests.orders.conftest import ADDRESS, Market, market  # noqa: F401 (a fixture)
from tests.payments.test_api import choose, deliver

COUNTY = "610431"  # 武功县, where the market's shop is
TOWNSHIP = "610431102"  # 武功镇
VILLAGE = "610431102200"  # 武塔村: has a point
OTHER_VILLAGE = "610431102201"  # 积山村: no point of its own; its station serves it
_scans = itertools.count(1)


def scan_id() -> str:
    return f"scan-{next(_scans):08d}"


def now(minutes: float = 0) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)).isoformat()


async def ensure_region(db: AsyncSession, code: str, name: str, parent: str) -> None:
    """The township or village, added as an operator would where the shipped data lacks it."""
    if await regions.get(db, code=code) is None:
        await regions.create(db, code=code, name=name, parent_code=parent)
        await db.commit()
    assert isinstance(await db.get(Region, code), Region)


@dataclass
class Network:
    app: Any
    market: Market
    operator: Actor
    hub: dict[str, Any]
    station: dict[str, Any]
    point: dict[str, Any]
    hub_staff: Actor
    station_staff: Actor
    point_staff: Actor
    offer: dict[str, Any] | None = None

    async def paid_order(
        self, buyer: Actor, *, region_code: str = VILLAGE, quantity: int = 1
    ) -> dict[str, Any]:
        """A paid order of the market's SKU to the region."""
        client = self.market.client
        if self.offer is None:
            self.offer = await self.market.offer(quantity=50, per_buyer_limit=10)
        offer = self.offer
        address = ADDRESS | {"region_code": region_code}
        placed = await self.market.order(
            buyer, [{"offer_id": offer["id"], "quantity": quantity}], address=address
        )
        assert placed.status_code == 201, placed.text
        order = placed.json()
        payment = await client.post(
            f"/api/v1/orders/{order['id']}/payments",
            json={"provider": "sandbox"},
            headers=buyer.headers,
        )
        assert payment.status_code == 201, payment.text
        await choose(client, payment.json(), "succeed")
        assert await deliver(self.app) == 1
        return dict(order)

    async def ship(self, order: dict[str, Any], **body: Any) -> list[dict[str, Any]]:
        client = self.market.client
        shipped = await client.post(
            f"/api/v1/orders/{order['id']}/ship", json=body, headers=self.market.merchant.headers
        )
        assert shipped.status_code == 200, shipped.text
        parcels = await client.get(
            f"/api/v1/orders/{order['id']}/parcels", headers=self.market.merchant.headers
        )
        return list(parcels.json())

    async def scan(self, who: Actor, code: str, status: str, **fields: Any) -> Any:
        body = {"scan_id": scan_id(), "parcel_code": code, "status": status, "happened_at": now()}
        return await self.market.client.post(
            "/api/v1/scans", json=body | fields, headers=who.headers
        )


async def _node(client: Any, operator: Actor, **body: Any) -> dict[str, Any]:
    made = await client.post("/api/v1/delivery-nodes", json=body, headers=operator.headers)
    assert made.status_code == 201, made.text
    return dict(made.json())


@pytest.fixture
async def network(
    app: Any,
    market: Market,  # noqa: F811
    db: AsyncSession,
    make_user: Callable[..., Awaitable[Actor]],
    make_operator: Callable[[], Awaitable[Actor]],
) -> Network:
    await ensure_region(db, TOWNSHIP, "武功镇", COUNTY)
    await ensure_region(db, VILLAGE, "武塔村委会", TOWNSHIP)
    await ensure_region(db, OTHER_VILLAGE, "积山村委会", TOWNSHIP)
    client = market.client
    operator = await make_operator()
    hub = await _node(
        client, operator, kind="county_hub", region_code=COUNTY, name="武功县物流中心"
    )
    station = await _node(
        client,
        operator,
        kind="township_station",
        region_code=TOWNSHIP,
        name="武功镇服务站",
        upstream_id=hub["id"],
        transit_minutes=120,
    )
    point = await _node(
        client,
        operator,
        kind="village_point",
        region_code=VILLAGE,
        name="武塔村服务点",
        upstream_id=station["id"],
        transit_minutes=60,
        home_delivery=True,
    )
    staff = []
    for node, name in ((hub, "hub"), (station, "station"), (point, "point")):
        actor = await make_user(f"{name}-staff")
        added = await client.post(
            f"/api/v1/delivery-nodes/{node['id']}/staff",
            json={"email": actor.email},
            headers=operator.headers,
        )
        assert added.status_code == 204, added.text
        staff.append(actor)
    return Network(app, market, operator, hub, station, point, *staff)
