"""Rules of the delivery network: its nodes and links, the route a parcel takes, shipping an
order as parcels, and what each kind of user may see of them."""

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.accounts import service as accounts
from originlive.accounts.models import Role, User
from originlive.batching import OrderWriter
from originlive.catalog.models import Shop
from originlive.catalog.storage import ImageStorage, clean_image
from originlive.db import utcnow
from originlive.errors import Conflict, InvalidInput, NotFound
from originlive.logistics import carriers, schemas, tracking
from originlive.logistics.models import (
    Bag,
    DeliveryNode,
    DeliveryProof,
    NodeKind,
    NodeLink,
    NodeStaff,
    Notification,
    Parcel,
    ParcelItem,
    ParcelStatus,
    ParcelStop,
    TrackingEvent,
)
from originlive.orders.models import Order
from originlive.regions import service as regions

# The network


async def get_node(session: AsyncSession, *, node_id: int) -> DeliveryNode | None:
    """The node, or None."""
    return await session.get(DeliveryNode, node_id)


async def list_nodes(
    session: AsyncSession, *, region_code: str | None = None
) -> Sequence[tuple[DeliveryNode, NodeLink | None]]:
    """Nodes (at the region and below it, if one is given) with the link to their upstream
    node, hubs first."""
    query = select(DeliveryNode, NodeLink).outerjoin(
        NodeLink, NodeLink.downstream_id == DeliveryNode.id
    )
    if region_code is not None:
        region = await regions.get_or_404(session, code=region_code, field="region")
        query = query.where(regions.within(region, DeliveryNode.region_code.expression))
    rows = (await session.execute(query)).all()
    return sorted(((n, link) for n, link in rows), key=lambda r: (r[0].kind.depth, r[0].id))


async def upstream_link(session: AsyncSession, *, node_id: int) -> NodeLink | None:
    """The link from the node that serves this one, or None."""
    return await session.get(NodeLink, node_id)


_NODE_LEVELS = {
    NodeKind.COUNTY_HUB: ("prefecture", "county"),
    NodeKind.TOWNSHIP_STATION: ("county", "township"),
    NodeKind.VILLAGE_POINT: ("township", "village"),
}


async def create_node(session: AsyncSession, *, data: schemas.NodeCreate) -> DeliveryNode:
    """Open a hub, station or point at a region of its level (a hub at a county, or at a
    city without counties; a station at a township; a point at a village or a township)."""
    region = await regions.get_or_404(session, code=data.region_code, field="region_code")
    if region.level.value not in _NODE_LEVELS[data.kind]:
        raise InvalidInput(
            f"A {data.kind.value} is at a {' or a '.join(_NODE_LEVELS[data.kind])}, "
            f"not a {region.level.value}.",
            field="region_code",
        )
    node = DeliveryNode(**data.model_dump(exclude={"upstream_id", "transit_minutes"}))
    session.add(node)
    await session.flush()
    if data.upstream_id is not None:
        await link(
            session, node=node, upstream_id=data.upstream_id, transit_minutes=data.transit_minutes
        )
    return node


async def update_node(
    session: AsyncSession, *, node: DeliveryNode, data: schemas.NodeUpdate
) -> DeliveryNode:
    """Change a node's name, address, hours, phone, home delivery or whether it is open."""
    for field, value in data.model_dump(exclude_unset=True).items():
        setattr(node, field, value)
    await session.flush()
    return node


async def link(
    session: AsyncSession, *, node: DeliveryNode, upstream_id: int, transit_minutes: int
) -> NodeLink:
    """Say which node serves this one (a hub a station, a station a point); replaces the one
    before."""
    upstream = await get_node(session, node_id=upstream_id)
    if upstream is None:
        raise InvalidInput(f"No node {upstream_id}.", field="upstream_id")
    if upstream.kind.depth != node.kind.depth - 1:
        raise InvalidInput(
            f"A {node.kind.value} is served by a node one level up, not a {upstream.kind.value}.",
            field="upstream_id",
        )
    found = await upstream_link(session, node_id=node.id)
    if found is None:
        found = NodeLink(downstream_id=node.id, upstream_id=upstream.id)
        session.add(found)
    found.upstream_id, found.transit_minutes = upstream.id, transit_minutes
    await session.flush()
    return found


# Changes of staff made by this process: caches of who works where (``logistics.fastpath``)
# forget what they knew when it moves.
_staff_changes = 0


def staff_changes() -> int:
    """How many changes of staff this process has made (see ``add_staff``)."""
    return _staff_changes


async def add_staff(session: AsyncSession, *, node: DeliveryNode, email: str) -> User:
    """Make an account staff of a node (one node an account): it gets the station role."""
    global _staff_changes
    _staff_changes += 1
    user = await accounts.get_by_email(session, email=email)
    if user is None:
        raise InvalidInput(f"No account with e-mail {email}.", field="email")
    staff = await session.get(NodeStaff, user.id)
    if staff is None:
        session.add(NodeStaff(user_id=user.id, node_id=node.id))
    else:
        staff.node_id = node.id
    await accounts.grant_role(session, user=user, role=Role.STATION)
    await session.flush()
    _staff_changes += 1  # again: a cache may have read the old node meanwhile
    return user


async def remove_staff(session: AsyncSession, *, node: DeliveryNode, user_id: int) -> User:
    """Take an account off a node's staff; it loses the station role (an account works at one
    node), and its scans are refused from then on."""
    global _staff_changes
    staff = await session.get(NodeStaff, user_id)
    user = await accounts.get(session, user_id=user_id)
    if staff is None or staff.node_id != node.id or user is None:
        raise NotFound(f"Account {user_id} is not on the staff of node {node.id}.")
    _staff_changes += 1
    await session.delete(staff)
    user.role_rows[:] = [r for r in user.role_rows if r.role is not Role.STATION]
    await session.flush()
    _staff_changes += 1  # again: a cache may have read the old node meanwhile
    return user


async def staff_node(session: AsyncSession, *, user: User) -> DeliveryNode | None:
    """The node whose staff the user is, or None."""
    return await session.scalar(
        select(DeliveryNode)
        .join(NodeStaff, NodeStaff.node_id == DeliveryNode.id)
        .where(NodeStaff.user_id == user.id)
    )


# Routes


@dataclass(frozen=True, slots=True)
class Node:
    """What the route chooser needs of a node."""

    id: int
    kind: NodeKind
    region_code: str
    upstream_id: int | None


def choose_route(
    nodes: Sequence[Node], *, shop_path: Sequence[str], buyer_path: Sequence[str]
) -> list[int]:
    """The nodes a parcel passes, first to last: from the hub nearest the shop up its region
    tree, down the links to the node that serves the buyer: the deepest node at the buyer's
    region, or at the nearest region above it that has one. Paths run province first.

    Raises ``Conflict`` where no node serves the buyer: the shop must use a carrier.
    """
    by_region: dict[str, list[Node]] = {}
    for node in nodes:
        by_region.setdefault(node.region_code, []).append(node)
    by_id = {node.id: node for node in nodes}
    destination = next(
        (
            max(by_region[code], key=lambda n: (n.kind.depth, -n.id))
            for code in reversed(buyer_path)
            if code in by_region
        ),
        None,
    )
    if destination is None:
        raise Conflict("No delivery node serves the buyer's region: send it with a carrier.")
    chain = [destination]
    while (up := chain[-1].upstream_id) is not None and up in by_id and len(chain) < 3:
        chain.append(by_id[up])
    route = [n.id for n in reversed(chain)]
    hubs = (
        [n for n in by_region.get(code, ()) if n.kind is NodeKind.COUNTY_HUB]
        for code in reversed(shop_path)
    )
    origin = next((min(found, key=lambda n: n.id) for found in hubs if found), None)
    if origin is not None and origin.id != route[0]:
        route.insert(0, origin.id)
    return route


async def route_for(session: AsyncSession, *, shop_region: str, buyer_region: str) -> list[int]:
    """``choose_route`` over the open nodes."""
    shop = await regions.get_or_404(session, code=shop_region)
    buyer = await regions.get_or_404(session, code=buyer_region)
    rows = await session.execute(
        select(DeliveryNode.id, DeliveryNode.kind, DeliveryNode.region_code, NodeLink.upstream_id)
        .outerjoin(NodeLink, NodeLink.downstream_id == DeliveryNode.id)
        .where(DeliveryNode.active.is_(True))
    )
    nodes = [Node(*row) for row in rows.all()]
    return choose_route(
        nodes,
        shop_path=[c for c in shop.path.split("/") if c],
        buyer_path=[c for c in buyer.path.split("/") if c],
    )


# Shipping


async def ship(
    session: AsyncSession,
    writer: OrderWriter,
    *,
    order: Order,
    actor: User,
    data: schemas.ShipmentCreate,
) -> list[int]:
    """The shop has packed a paid order: it becomes shipped, as one parcel or several, each
    routed through the network to the buyer's point, or handed to the carrier named."""
    ordered = {item.id: item.quantity for item in order.items}
    plans = data.parcels or [
        schemas.ParcelPlan(
            items=[schemas.ParcelLine(order_item_id=i, quantity=q) for i, q in ordered.items()]
        )
    ]
    packed: dict[int, int] = {}
    for plan in plans:
        for line in plan.items:
            if line.order_item_id not in ordered:
                raise InvalidInput(
                    f"Order {order.id} has no line {line.order_item_id}.", field="parcels"
                )
            packed[line.order_item_id] = packed.get(line.order_item_id, 0) + line.quantity
    if packed != ordered:
        raise InvalidInput("The parcels must hold every unit of the order, once.", field="parcels")
    route: list[int] = []
    carrier = carriers.carrier_for(data.carrier) if data.carrier is not None else None
    waybills: list[str | None] = [None] * len(plans)
    if carrier is None:
        shop = await session.get(Shop, order.shop_id)
        assert shop is not None
        route = await route_for(
            session, shop_region=shop.region_code, buyer_region=order.ship_region_code
        )
    else:  # each parcel booked with the carrier: the sandbox issues waybills, manual ones not
        waybills = [
            await carrier.book(
                carriers.Booking(
                    order_id=order.id,
                    region_code=order.ship_region_code,
                    weight_grams=plan.weight_grams,
                    waybill=data.tracking_number,
                )
            )
            for plan in plans
        ]
    parcels = [
        tracking.NewParcel(
            items=[(line.order_item_id, line.quantity) for line in plan.items],
            route=route,
            carrier=carrier.name if carrier else None,
            carrier_tracking=waybill,
            weight_grams=plan.weight_grams,
        )
        for plan, waybill in zip(plans, waybills, strict=True)
    ]
    booked = " ".join(dict.fromkeys(w for w in waybills if w))
    note = f"{carrier.name} {booked}" if carrier else f"{len(parcels)} parcel(s)"
    return await writer.run(
        tracking.ship,
        order_id=order.id,
        shop_id=order.shop_id,
        region_code=order.ship_region_code,
        parcels=parcels,
        actor_id=actor.id,
        now=utcnow(),
        note=note,
    )


# Reading


async def get_parcel(session: AsyncSession, *, code: str) -> Parcel | None:
    """The parcel with that label, or None."""
    return await session.scalar(select(Parcel).where(Parcel.code == code))


async def passes(session: AsyncSession, *, parcel_id: int, node_id: int) -> bool:
    """Whether the parcel's route passes the node, or it was scanned there."""
    stop = exists().where(ParcelStop.parcel_id == parcel_id, ParcelStop.node_id == node_id)
    seen = exists().where(TrackingEvent.parcel_id == parcel_id, TrackingEvent.node_id == node_id)
    return bool(await session.scalar(select(or_(stop, seen))))


async def order_parcels(session: AsyncSession, *, order_id: int) -> Sequence[Parcel]:
    """An order's parcels, first made first."""
    return (
        await session.scalars(select(Parcel).where(Parcel.order_id == order_id).order_by(Parcel.id))
    ).all()


async def node_parcels(
    session: AsyncSession, *, node_id: int, limit: int, offset: int
) -> tuple[Sequence[Parcel], int]:
    """Parcels whose route passes the node, latest news first."""
    passing = select(ParcelStop.parcel_id).where(ParcelStop.node_id == node_id)
    query = select(Parcel).where(Parcel.id.in_(passing))
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(
        query.order_by(Parcel.status_at.desc(), Parcel.id.desc()).limit(limit).offset(offset)
    )
    return rows.all(), total or 0


async def timeline(
    session: AsyncSession, *, parcel_ids: Sequence[int]
) -> dict[int, list[schemas.TrackingEvent]]:
    """Each parcel's events in the order they happened, with their nodes' names."""
    rows = await session.execute(
        select(TrackingEvent, DeliveryNode.name)
        .outerjoin(DeliveryNode, DeliveryNode.id == TrackingEvent.node_id)
        .where(TrackingEvent.parcel_id.in_(parcel_ids))
        .order_by(TrackingEvent.happened_at, TrackingEvent.id)
    )
    found: dict[int, list[schemas.TrackingEvent]] = {i: [] for i in parcel_ids}
    for event, node_name in rows.all():
        shown = schemas.TrackingEvent.model_validate(event)
        found[event.parcel_id].append(shown.model_copy(update={"node_name": node_name}))
    return found


async def parcel_views(session: AsyncSession, parcels: Sequence[Parcel]) -> list[schemas.Parcel]:
    """Parcels as the API shows them: lines, route and events."""
    ids = [p.id for p in parcels]
    events = await timeline(session, parcel_ids=ids)
    lines: dict[int, list[schemas.ParcelLine]] = {i: [] for i in ids}
    for item in await session.scalars(select(ParcelItem).where(ParcelItem.parcel_id.in_(ids))):
        lines[item.parcel_id].append(schemas.ParcelLine.model_validate(item))
    stops: dict[int, list[int]] = {i: [] for i in ids}
    for stop in await session.scalars(
        select(ParcelStop).where(ParcelStop.parcel_id.in_(ids)).order_by(ParcelStop.seq)
    ):
        stops[stop.parcel_id].append(stop.node_id)
    return [
        schemas.Parcel.model_validate(p).model_copy(
            update={"items": lines[p.id], "route": stops[p.id], "events": events[p.id]}
        )
        for p in parcels
    ]


async def notifications(
    session: AsyncSession, *, limit: int, offset: int
) -> Sequence[Notification]:
    """What the notifier sent, newest first (the sandbox's record, for operators)."""
    rows = await session.scalars(
        select(Notification).order_by(Notification.id.desc()).limit(limit).offset(offset)
    )
    return rows.all()


async def count_notifications(session: AsyncSession) -> int:
    """How many messages the notifier sent."""
    return await session.scalar(select(func.count()).select_from(Notification)) or 0


async def get_bag(session: AsyncSession, *, seal: str) -> Bag | None:
    """The bag with that seal, or None."""
    return await session.scalar(select(Bag).where(Bag.seal == seal))


async def bag_parcels(session: AsyncSession, *, bag_id: int) -> list[str]:
    """The labels of the parcels in the bag now."""
    rows = await session.scalars(
        select(Parcel.code).where(Parcel.bag_id == bag_id).order_by(Parcel.id)
    )
    return list(rows)


async def proof_of(session: AsyncSession, *, parcel_id: int) -> DeliveryProof | None:
    """The photo taken when the parcel was delivered, or None."""
    return await session.get(DeliveryProof, parcel_id)


async def add_proof(
    session: AsyncSession,
    *,
    parcel: Parcel,
    node: DeliveryNode,
    actor: User,
    storage: ImageStorage,
    data: bytes,
) -> DeliveryProof:
    """Keep a photo as proof that a delivered parcel reached its buyer: by the staff of the
    point that delivered it, once (the pick-up code was the proof it was theirs)."""
    if parcel.destination_id != node.id:
        raise NotFound(f"No parcel {parcel.code} delivered here.")
    if parcel.status is not ParcelStatus.DELIVERED:
        raise Conflict(f"Parcel {parcel.code} is {parcel.status.value}, not delivered.")
    if await proof_of(session, parcel_id=parcel.id) is not None:
        raise Conflict(f"Parcel {parcel.code} has its proof already.")
    clean = await clean_image(data)  # decoded and re-encoded: no metadata, no surprises
    key = await storage.save(clean.data, content_type=clean.content_type)
    proof = DeliveryProof(
        parcel_id=parcel.id, photo_key=key, content_type=clean.content_type, actor_id=actor.id
    )
    session.add(proof)
    try:
        await session.flush()
    except BaseException:  # no row, no file
        await storage.delete(key)
        raise
    return proof
