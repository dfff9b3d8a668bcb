"""What the delivery pages read beyond ``logistics.service``: the network as a tree, with its
regions' names and staff counts; a node's staff; nodes by id; the scans flagged for operators.

Reading only: every change goes through ``service`` (and ``tracking``), as the JSON API's do.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.accounts.models import User
from originlive.logistics import schemas, service
from originlive.logistics.models import (
    FLAGGED,
    DeliveryNode,
    NodeKind,
    NodeLink,
    NodeStaff,
    Parcel,
    ParcelStatus,
    TrackingEvent,
)
from originlive.orders.models import Order
from originlive.regions.models import Region


@dataclass
class Branch:
    """A node of the tree, with what the page shows of it and the nodes it serves."""

    node: DeliveryNode
    link: NodeLink | None
    region_name: str
    staff: int
    # Set when the node serving it is not in the tree shown (a region filter left it out).
    upstream_name: str | None = None
    children: list["Branch"] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Tree:
    """The network (at a region and below it): hubs with their stations and points, nodes
    whose upstream node lies outside the region, and stations and points linked to none."""

    roots: list[Branch]
    unlinked: list[Branch]
    count: int


async def tree(session: AsyncSession, *, region_code: str | None = None) -> Tree:
    """The network as a tree; ``InvalidInput`` (field ``region``) for an unknown region."""
    rows = await service.list_nodes(session, region_code=region_code)
    nodes = [node for node, _ in rows]
    names = await region_names(session, (n.region_code for n in nodes))
    staff = await staff_counts(session, (n.id for n in nodes))
    branches = {
        node.id: Branch(node, link, names.get(node.region_code, node.region_code), staff[node.id])
        for node, link in rows
    }
    links = [b.link for b in branches.values() if b.link is not None]
    outside = await by_id(session, {k.upstream_id for k in links if k.upstream_id not in branches})
    roots: list[Branch] = []
    unlinked: list[Branch] = []
    for branch in branches.values():  # hubs first, then stations, then points, by id
        if branch.link is None:
            (roots if branch.node.kind is NodeKind.COUNTY_HUB else unlinked).append(branch)
        elif branch.link.upstream_id in branches:
            branches[branch.link.upstream_id].children.append(branch)
        else:
            branch.upstream_name = outside[branch.link.upstream_id].name
            roots.append(branch)
    return Tree(roots, unlinked, len(branches))


async def region_names(session: AsyncSession, codes: Iterable[str]) -> dict[str, str]:
    """The regions' names by code, in one query."""
    wanted = set(codes)
    if not wanted:
        return {}
    rows = await session.execute(select(Region.code, Region.name).where(Region.code.in_(wanted)))
    return {str(code): str(name) for code, name in rows}


async def staff_counts(session: AsyncSession, node_ids: Iterable[int]) -> dict[int, int]:
    """How many accounts work at each node (0 for none), in one query."""
    ids = set(node_ids)
    counts = dict.fromkeys(ids, 0)
    if ids:
        query = (
            select(NodeStaff.node_id, func.count())
            .where(NodeStaff.node_id.in_(ids))
            .group_by(NodeStaff.node_id)
        )
        counts |= {int(node): int(n) for node, n in await session.execute(query)}
    return counts


async def staff_of(session: AsyncSession, *, node_id: int) -> Sequence[User]:
    """The accounts working at the node, by name."""
    rows = await session.scalars(
        select(User)
        .join(NodeStaff, NodeStaff.user_id == User.id)
        .where(NodeStaff.node_id == node_id)
        .order_by(User.display_name, User.id)
    )
    return rows.all()


async def by_id(session: AsyncSession, node_ids: Iterable[int]) -> dict[int, DeliveryNode]:
    """The nodes with these ids, in one query."""
    ids = set(node_ids)
    if not ids:
        return {}
    rows = await session.scalars(select(DeliveryNode).where(DeliveryNode.id.in_(ids)))
    return {node.id: node for node in rows}


async def upstream_choices(
    session: AsyncSession, *, kinds: Iterable[NodeKind]
) -> Sequence[DeliveryNode]:
    """The nodes of these kinds, to choose a node's upstream from: hubs first, then by name."""
    wanted = list(kinds)
    if not wanted:
        return []
    rows = await session.scalars(select(DeliveryNode).where(DeliveryNode.kind.in_(wanted)))
    return sorted(rows, key=lambda n: (n.kind.depth, n.name, n.id))


async def served_by(session: AsyncSession, *, node_id: int) -> Sequence[tuple[DeliveryNode, int]]:
    """The nodes this one serves, with the usual minutes to each."""
    rows = await session.execute(
        select(DeliveryNode, NodeLink.transit_minutes)
        .join(NodeLink, NodeLink.downstream_id == DeliveryNode.id)
        .where(NodeLink.upstream_id == node_id)
        .order_by(DeliveryNode.id)
    )
    return [(node, int(minutes)) for node, minutes in rows.all()]


@dataclass(frozen=True, slots=True)
class Flagged:
    """A scan for operators to look at: made off the parcel's route, or with a phone's time
    that was not believed (``claimed_at``)."""

    event_id: int
    parcel_code: str
    status: ParcelStatus
    node_name: str | None
    happened_at: datetime
    recorded_at: datetime
    claimed_at: datetime | None
    off_route: bool
    source: str
    reason: str | None


_FLAGGED = text(FLAGGED)  # as the partial index ix_tracking_events_flagged says it


async def flagged_scans(
    session: AsyncSession, *, limit: int, offset: int
) -> tuple[list[Flagged], int]:
    """Scans off their parcel's route or with an unbelieved clock, newest recorded first,
    and how many there are."""
    total = await session.scalar(select(func.count()).select_from(TrackingEvent).where(_FLAGGED))
    rows = await session.execute(
        select(TrackingEvent, Parcel.code, DeliveryNode.name)
        .join(Parcel, Parcel.id == TrackingEvent.parcel_id)
        .outerjoin(DeliveryNode, DeliveryNode.id == TrackingEvent.node_id)
        .where(_FLAGGED)
        .order_by(TrackingEvent.id.desc())  # ids grow as events are recorded
        .limit(limit)
        .offset(offset)
    )
    found = []
    for event, code, node_name in rows.all():
        found.append(
            Flagged(
                event_id=event.id,
                parcel_code=code,
                status=event.status,
                node_name=node_name,
                happened_at=event.happened_at,
                recorded_at=event.recorded_at,
                claimed_at=event.claimed_at,
                off_route=event.off_route,
                source=event.source,
                reason=event.reason,
            )
        )
    return found, total or 0


async def parcel_codes(session: AsyncSession, parcel_ids: Iterable[int | None]) -> dict[int, str]:
    """The parcels' labels by id, in one query."""
    ids = {i for i in parcel_ids if i is not None}
    if not ids:
        return {}
    rows = await session.execute(select(Parcel.id, Parcel.code).where(Parcel.id.in_(ids)))
    return {int(i): str(code) for i, code in rows}


@dataclass(frozen=True, slots=True)
class Shown:
    """A parcel as the page shows it: its lines' titles, its route's nodes, and where the
    buyer collects it (``point``, with ``pickup_code``, for the buyer only)."""

    parcel: schemas.Parcel
    lines: list[tuple[str, int]]
    route: list[DeliveryNode]
    events: list[schemas.TrackingEvent]  # newest first, as one reads a parcel's news
    pickup_code: str | None
    point: DeliveryNode | None


async def shown_parcels(session: AsyncSession, *, order: Order, as_buyer: bool) -> list[Shown]:
    """An order's parcels as its pages show them (the parcels page, the buyer's order page):
    the pick-up code, with the point, only when ``as_buyer`` and the parcel waits there."""
    parcels = await service.parcel_views(
        session, await service.order_parcels(session, order_id=order.id)
    )
    nodes = await by_id(
        session, {n for p in parcels for n in (*p.route, p.destination_id) if n is not None}
    )
    titles = {item.id: item.title for item in order.items}
    shown = []
    for parcel in parcels:
        waiting = as_buyer and parcel.status is ParcelStatus.READY_FOR_PICKUP
        point = nodes.get(parcel.destination_id) if parcel.destination_id else None
        shown.append(
            Shown(
                parcel=parcel.model_copy(update={"pickup_code": None}),  # shown apart, if at all
                lines=[(titles.get(ln.order_item_id, ""), ln.quantity) for ln in parcel.items],
                route=[nodes[n] for n in parcel.route if n in nodes],
                events=list(reversed(parcel.events)),
                pickup_code=parcel.pickup_code if waiting else None,
                point=point if waiting else None,
            )
        )
    return shown
