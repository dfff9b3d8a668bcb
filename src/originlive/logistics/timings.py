"""How long parcels take, from their tracking events alone: the delivery-time figures the
county centre asks for (hub to village, arrival to pick-up, time at each node).

Events are taken as they happened (``happened_at``), whatever order they arrived in, and a
parcel's figures are those its events imply, like its state (``tracking.state_of``): a late
scan that fills a gap changes the figures it belongs to, and nothing else.
"""

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.logistics.models import Parcel, ParcelStatus, TrackingEvent
from originlive.regions import service as regions

# What says the network has the parcel, and what says it has reached the buyer's point.
_TAKEN = (ParcelStatus.PICKED_UP, ParcelStatus.AT_NODE, ParcelStatus.IN_TRANSIT)
_ARRIVED = (ParcelStatus.READY_FOR_PICKUP, ParcelStatus.OUT_FOR_DELIVERY)


@dataclass(frozen=True, slots=True)
class Stop:
    """A tracking event as the figures need it."""

    status: ParcelStatus
    node_id: int | None
    happened_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Timings:
    """A parcel's figures; None where its events do not (yet) say."""

    # From the first time the network had it to its arrival at the buyer's point (shelved,
    # or out for delivery from there).
    hub_to_village: dt.timedelta | None
    # From that arrival to its delivery (collected with its code, or at the door).
    arrival_to_pickup: dt.timedelta | None
    # Per node: from the first event there to the last (it left when it was last seen there).
    at_node: dict[int, dt.timedelta] = field(default_factory=dict)


def timings(events: Iterable[Stop]) -> Timings:
    """A parcel's figures from its events."""
    ordered = sorted(events, key=lambda e: e.happened_at)

    def first(statuses: Sequence[ParcelStatus]) -> dt.datetime | None:
        return next((e.happened_at for e in ordered if e.status in statuses), None)

    taken, arrived = first(_TAKEN), first(_ARRIVED)
    delivered = first((ParcelStatus.DELIVERED,))
    spans: dict[int, tuple[dt.datetime, dt.datetime]] = {}
    for event in ordered:
        if event.node_id is None or event.status is ParcelStatus.PENDING:
            continue
        start, _ = spans.get(event.node_id, (event.happened_at, event.happened_at))
        spans[event.node_id] = (start, event.happened_at)
    return Timings(
        hub_to_village=arrived - taken if taken and arrived and arrived >= taken else None,
        arrival_to_pickup=delivered - arrived
        if arrived and delivered and delivered >= arrived
        else None,
        at_node={node: end - start for node, (start, end) in spans.items()},
    )


async def parcel_timings(
    session: AsyncSession, *, region_code: str, since: dt.datetime, until: dt.datetime
) -> dict[int, Timings]:
    """The figures of the parcels made in ``[since, until)`` for buyers at the region and
    below it, by parcel id (outside carriers' parcels included: their events are mapped to
    the same statuses)."""
    region = await regions.get_or_404(session, code=region_code, field="region")
    parcels = (
        select(Parcel.id)
        .where(
            regions.within(region, Parcel.region_code.expression),
            Parcel.created_at >= since,
            Parcel.created_at < until,
        )
        .scalar_subquery()
    )
    rows = await session.execute(
        select(
            TrackingEvent.parcel_id,
            TrackingEvent.status,
            TrackingEvent.node_id,
            TrackingEvent.happened_at,
        ).where(TrackingEvent.parcel_id.in_(parcels))
    )
    events: dict[int, list[Stop]] = {}
    for parcel_id, status, node_id, happened_at in rows.all():
        events.setdefault(parcel_id, []).append(Stop(status, node_id, happened_at))
    return {parcel_id: timings(stops) for parcel_id, stops in events.items()}
