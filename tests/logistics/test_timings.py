"""Delivery times from tracking events alone, whatever order they came in."""

import datetime as dt
import random
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from originlive.logistics.models import ParcelStatus as S
from originlive.logistics.timings import Stop, parcel_timings, timings
from tests.conftest import Actor
from tests.logistics.conftest import Network, scan_id

T0 = dt.datetime(2026, 12, 7, 8, 0, tzinfo=dt.UTC)


def at(minutes: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


JOURNEY = [
    Stop(S.PENDING, 1, at(0)),
    Stop(S.PICKED_UP, 1, at(30)),
    Stop(S.IN_TRANSIT, 1, at(90)),
    Stop(S.AT_NODE, 2, at(210)),
    Stop(S.IN_TRANSIT, 2, at(240)),
    Stop(S.AT_NODE, 3, at(300)),
    Stop(S.READY_FOR_PICKUP, 3, at(310)),
    Stop(S.DELIVERED, 3, at(1000)),
]


def test_a_journeys_figures_whatever_order_its_events_came_in() -> None:
    shuffled = JOURNEY.copy()
    random.Random(7).shuffle(shuffled)
    for events in (JOURNEY, shuffled, list(reversed(JOURNEY))):
        figures = timings(events)
        assert figures.hub_to_village == dt.timedelta(minutes=280)
        assert figures.arrival_to_pickup == dt.timedelta(minutes=690)
        assert figures.at_node == {
            1: dt.timedelta(minutes=60),
            2: dt.timedelta(minutes=30),
            3: dt.timedelta(minutes=700),
        }


def test_what_the_events_do_not_say_is_not_made_up() -> None:
    on_its_way = timings(JOURNEY[:4])
    assert on_its_way.hub_to_village is None and on_its_way.arrival_to_pickup is None
    assert timings([]).at_node == {}


async def test_a_regions_parcels_figures_from_the_database(
    network: Network, make_user: Callable[..., Awaitable[Actor]], db: AsyncSession
) -> None:
    client = network.market.client
    buyer = await make_user("buyer")
    (parcel,) = await network.ship(await network.paid_order(buyer))
    code = parcel["code"]
    for who, status in (
        (network.hub_staff, "picked_up"),
        (network.point_staff, "at_node"),
        (network.point_staff, "ready_for_pickup"),
    ):
        assert (await network.scan(who, code, status)).status_code == 201
    pickup_code = (await client.get(f"/api/v1/parcels/{code}", headers=buyer.headers)).json()[
        "pickup_code"
    ]
    collected = await client.post(
        f"/api/v1/parcels/{code}/pickup",
        json={"scan_id": scan_id(), "pickup_code": pickup_code},
        headers=network.point_staff.headers,
    )
    assert collected.status_code == 200
    now = dt.datetime.now(dt.UTC)
    day = {"since": now - dt.timedelta(days=1), "until": now + dt.timedelta(days=1)}
    found = await parcel_timings(db, region_code="610431", **day)
    figures = found[parcel["id"]]
    assert figures.hub_to_village is not None and figures.arrival_to_pickup is not None
    assert set(figures.at_node) == {network.hub["id"], network.point["id"]}
    assert await parcel_timings(db, region_code="530102", **day) == {}
