"""Route manifests and pick lists: a live session's paid orders and parcels, and a node's.

What a shop packs and what travels, grouped as people sort it by hand: a pick list a shop
(each SKU with its units and orders), the orders still to pack by county, township and
village, and for each hub and station the parcels passing it, by the node they go to next.

Everything is read in a handful of queries (``read_session``, ``read_node``: rows, never a
query an order) and grouped by the pure functions below over plain rows, in one pass each,
so that 50,000 orders are a matter of a second or two. Buyers' names and phones are masked
(王*满, 138****0000): manifests are printed and lie on a station's counter, and station
staff see no buyer's contact anywhere else.
"""

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain, islice
from typing import Any, TypeVarTuple

from sqlalchemy import Row, Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.catalog.models import Product, Shop, Sku
from originlive.db import utcnow
from originlive.logistics.models import (
    Bag,
    DeliveryNode,
    NodeKind,
    Parcel,
    ParcelStatus,
    ParcelStop,
)
from originlive.orders.models import PAID_IN, FlashOffer, Order, OrderItem, OrderStatus
from originlive.regions.models import Region, RegionLevel

# Codes looked up per statement: far below SQLite's and asyncpg's limits on parameters.
CHUNK = 1000
FINAL = (ParcelStatus.DELIVERED, ParcelStatus.RETURNED)
Ts = TypeVarTuple("Ts")


# Masking


def mask_phone(phone: str) -> str:
    """138****0000: the first three and last four digits of a mobile number; of a shorter
    number, the last two."""
    if len(phone) >= 8:
        return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]
    return "*" * max(0, len(phone) - 2) + phone[-2:]


def mask_name(name: str) -> str:
    """王*满, 欧**满, 王*: the first and the last character of a name, the rest starred."""
    if len(name) <= 1:
        return "*"
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


# The rows read


@dataclass(frozen=True, slots=True)
class Place:
    """A region with the codes from its province down to it."""

    code: str
    name: str
    level: RegionLevel
    path: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class OrderRow:
    """An order as a manifest shows it; name and phone already masked."""

    id: int
    shop_id: int
    status: OrderStatus
    name: str
    phone: str
    region_code: str
    detail: str


@dataclass(frozen=True, slots=True)
class LineRow:
    """Units of one SKU in an order."""

    order_id: int
    sku_id: int
    title: str  # the product's
    sku_name: str
    quantity: int


@dataclass(frozen=True, slots=True)
class ParcelRow:
    """A parcel in our network with its route, first node first."""

    id: int
    code: str
    order_id: int
    region_code: str  # the buyer's
    destination_id: int | None
    weight_grams: int | None
    status: ParcelStatus
    node_id: int | None  # where it was last seen
    bag_seal: str | None
    route: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class NodeRow:
    id: int
    kind: NodeKind
    name: str


# Pick lists


@dataclass(frozen=True, slots=True)
class Pick:
    """One SKU to pack: how many units, for how many orders."""

    sku_id: int
    title: str
    sku_name: str
    units: int
    orders: int


@dataclass(frozen=True, slots=True)
class PickList:
    shop_id: int
    shop_name: str
    picks: list[Pick]
    units: int
    orders: int


def pick_lists(
    orders: Iterable[OrderRow], lines: Iterable[LineRow], shop_names: Mapping[int, str]
) -> list[PickList]:
    """What each shop packs for these orders: each SKU's units and orders, by title."""
    shop_of = {o.id: o.shop_id for o in orders}
    units: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    counted: dict[int, dict[int, set[int]]] = defaultdict(lambda: defaultdict(set))
    names: dict[int, tuple[str, str]] = {}
    for line in lines:
        shop = shop_of.get(line.order_id)
        if shop is None:
            continue
        units[shop][line.sku_id] += line.quantity
        counted[shop][line.sku_id].add(line.order_id)
        names[line.sku_id] = (line.title, line.sku_name)
    lists = []
    for shop in sorted(units, key=lambda s: (shop_names.get(s, ""), s)):
        picks = sorted(
            (
                Pick(sku, *names[sku], units=n, orders=len(counted[shop][sku]))
                for sku, n in units[shop].items()
            ),
            key=lambda p: (p.title, p.sku_name, p.sku_id),
        )
        orders_of_shop = set(chain.from_iterable(counted[shop].values()))
        total = sum(p.units for p in picks)
        name = shop_names.get(shop, "")
        lists.append(PickList(shop, name, picks, total, len(orders_of_shop)))
    return lists


# Orders by destination


@dataclass(frozen=True, slots=True)
class Packed:
    """An order to pack, with what goes in it: (title, SKU, units) a line."""

    id: int
    name: str
    phone: str
    detail: str
    items: tuple[tuple[str, str, int], ...]
    units: int


@dataclass(slots=True)
class Village:
    code: str | None  # None: the address names no village
    name: str
    orders: list[Packed] = field(default_factory=list)


@dataclass(slots=True)
class Township:
    code: str | None  # None: the address names no township
    name: str
    villages: list[Village] = field(default_factory=list)
    orders: int = 0
    units: int = 0


@dataclass(slots=True)
class County:
    code: str
    name: str  # from the province down: 陕西省 咸阳市 武功县
    townships: list[Township] = field(default_factory=list)
    orders: int = 0
    units: int = 0


def levels(code: str, places: Mapping[str, Place]) -> tuple[Place, Place | None, Place | None]:
    """The county (or the city without counties, or the region itself above a county), the
    township and the village of a region code."""
    place = places[code]
    found = {places[c].level: places[c] for c in place.path if c in places}
    township = found.get(RegionLevel.TOWNSHIP)
    county = found.get(RegionLevel.COUNTY)
    if county is None:  # a city without counties (Dongguan) holds its towns itself
        county = found.get(RegionLevel.PREFECTURE) if township is not None else None
    return county or place, township, found.get(RegionLevel.VILLAGE)


def full_name(place: Place, places: Mapping[str, Place]) -> str:
    """The names from the province down to the place: 陕西省 咸阳市 武功县."""
    return " ".join(places[c].name for c in place.path if c in places)


def by_destination(
    orders: Iterable[OrderRow], lines: Iterable[LineRow], places: Mapping[str, Place]
) -> list[County]:
    """The orders by county, township and village (each by code), with what is in each."""
    items: dict[int, list[tuple[str, str, int]]] = defaultdict(list)
    for line in lines:
        items[line.order_id].append((line.title, line.sku_name, line.quantity))
    tree: dict[str, County] = {}
    townships: dict[tuple[str, str | None], Township] = {}
    villages: dict[tuple[str, str | None, str | None], Village] = {}
    resolved: dict[str, tuple[Place, Place | None, Place | None]] = {}
    for order in sorted(orders, key=lambda o: o.id):
        found = resolved.get(order.region_code)
        if found is None:  # thousands of orders go to one village
            found = resolved[order.region_code] = levels(order.region_code, places)
        county, township, village = found
        c = tree.get(county.code)
        if c is None:
            c = tree[county.code] = County(county.code, full_name(county, places))
        t_code = township.code if township else None
        t = townships.get((county.code, t_code))
        if t is None:
            t = townships[county.code, t_code] = Township(t_code, township.name if township else "")
            c.townships.append(t)
        v_code = village.code if village else None
        v = villages.get((county.code, t_code, v_code))
        if v is None:
            v = villages[county.code, t_code, v_code] = Village(
                v_code, village.name if village else ""
            )
            t.villages.append(v)
        lines_of = tuple(sorted(items.get(order.id, ())))
        units = sum(q for _t, _s, q in lines_of)
        v.orders.append(Packed(order.id, order.name, order.phone, order.detail, lines_of, units))
        t.orders += 1
        c.orders += 1
        t.units += units
        c.units += units
    for c in tree.values():
        c.townships.sort(key=lambda t: (t.code is not None, t.code or ""))
        for t in c.townships:
            t.villages.sort(key=lambda v: (v.code is not None, v.code or ""))
    return [tree[code] for code in sorted(tree)]


# Node manifests


@dataclass(frozen=True, slots=True)
class ManifestRow:
    """A parcel on a node's manifest."""

    code: str
    order_id: int
    name: str
    phone: str
    destination: str  # the point (or station) it is collected at
    place: str  # the buyer's village, township or county
    weight_grams: int | None
    bag_seal: str | None
    status: ParcelStatus


@dataclass(slots=True)
class Group:
    """The parcels a node sends on to one next node (None: collected or delivered here)."""

    next_id: int | None
    next_name: str
    rows: list[ManifestRow] = field(default_factory=list)
    weight_grams: int = 0
    unweighed: int = 0  # parcels without a weight


@dataclass(slots=True)
class NodeManifest:
    node: NodeRow
    groups: list[Group] = field(default_factory=list)
    parcels: int = 0
    weight_grams: int = 0
    unweighed: int = 0


def still_to_pass(parcel: ParcelRow, node_id: int) -> bool:
    """Whether the parcel is still to reach the node, or is there: not delivered or returned,
    last seen at the node or before it on its route, and not sent on from it."""
    if parcel.status in FINAL or node_id not in parcel.route:
        return False
    here = parcel.route.index(node_id)
    if parcel.node_id is None or parcel.node_id not in parcel.route:
        return True  # never scanned, or scanned off its route: it may still come
    seen = parcel.route.index(parcel.node_id)
    if seen == here:
        last = here == len(parcel.route) - 1
        return last or parcel.status is not ParcelStatus.IN_TRANSIT
    return seen < here


def node_manifests(
    parcels: Iterable[ParcelRow],
    orders: Mapping[int, OrderRow],
    nodes: Mapping[int, NodeRow],
    places: Mapping[str, Place],
    *,
    node_ids: Collection[int],
) -> list[NodeManifest]:
    """For each of the nodes, the parcels whose route passes it, by the node each goes to
    next (the last group: those collected or delivered there), each group by destination,
    with counts and weights. Nodes hubs first, then by name."""
    manifests = {n: NodeManifest(nodes[n]) for n in node_ids if n in nodes}
    groups: dict[tuple[int, int | None], Group] = {}
    for parcel in parcels:
        order = orders.get(parcel.order_id)
        if order is None:
            continue
        row: ManifestRow | None = None
        for i, node_id in enumerate(parcel.route):
            manifest = manifests.get(node_id)
            if manifest is None:
                continue
            if row is None:
                destination = nodes.get(parcel.destination_id or 0)
                place = places.get(parcel.region_code)
                row = ManifestRow(
                    parcel.code,
                    parcel.order_id,
                    order.name,
                    order.phone,
                    destination.name if destination else "",
                    place.name if place else "",
                    parcel.weight_grams,
                    parcel.bag_seal,
                    parcel.status,
                )
            next_id = parcel.route[i + 1] if i + 1 < len(parcel.route) else None
            group = groups.get((node_id, next_id))
            if group is None:
                after = nodes.get(next_id) if next_id is not None else None
                group = groups[node_id, next_id] = Group(next_id, after.name if after else "")
                manifest.groups.append(group)
            group.rows.append(row)
            manifest.parcels += 1
            if parcel.weight_grams is None:
                group.unweighed += 1
                manifest.unweighed += 1
            else:
                group.weight_grams += parcel.weight_grams
                manifest.weight_grams += parcel.weight_grams
    for manifest in manifests.values():
        manifest.groups.sort(key=lambda g: (g.next_id is None, g.next_name, g.next_id or 0))
        for group in manifest.groups:
            group.rows.sort(key=lambda r: (r.destination, r.place, r.order_id, r.code))
    return sorted(manifests.values(), key=lambda m: (m.node.kind.depth, m.node.name, m.node.id))


# A session's manifest


@dataclass(frozen=True, slots=True)
class Counts:
    """A session's paid orders: all, to pack, shipped, with a refund asked, and parcels."""

    paid: int
    to_pack: int
    shipped: int
    refund_requested: int
    parcels: int


@dataclass(frozen=True, slots=True)
class SessionManifest:
    session_id: int
    title: str
    shop_name: str
    made_at: datetime
    counts: Counts
    pick_lists: list[PickList]
    to_pack: list[County]
    manifests: list[NodeManifest]


def session_manifest(
    *,
    session_id: int,
    title: str,
    shop_name: str,
    orders: Sequence[OrderRow],
    lines: Sequence[LineRow],
    parcels: Sequence[ParcelRow],
    nodes: Mapping[int, NodeRow],
    places: Mapping[str, Place],
    shop_names: Mapping[int, str],
    made_at: datetime,
) -> SessionManifest:
    """The session's pick lists and orders to pack (those paid and not yet shipped), and the
    manifest of every hub and station its parcels pass."""
    to_pack = [o for o in orders if o.status is OrderStatus.PAID]
    packing = {o.id for o in to_pack}
    packed_lines = [line for line in lines if line.order_id in packing]
    passed = {n for p in parcels for n in p.route}
    hubs_and_stations = {n for n in passed if n in nodes and nodes[n].kind.depth < 2}
    refund = sum(o.status is OrderStatus.REFUND_REQUESTED for o in orders)
    counts = Counts(
        paid=len(orders),
        to_pack=len(to_pack),
        shipped=len(orders) - len(to_pack) - refund,
        refund_requested=refund,
        parcels=len(parcels),
    )
    return SessionManifest(
        session_id=session_id,
        title=title,
        shop_name=shop_name,
        made_at=made_at,
        counts=counts,
        pick_lists=pick_lists(to_pack, packed_lines, shop_names),
        to_pack=by_destination(to_pack, packed_lines, places),
        manifests=node_manifests(
            parcels, {o.id: o for o in orders}, nodes, places, node_ids=hubs_and_stations
        ),
    )


# Reading


async def _rows(session: AsyncSession, statement: Select[*Ts]) -> Sequence[Row[*Ts]]:
    """The statement's rows as plain tuples: on the session's connection, not through the
    ORM's loading, which took a quarter of a 50,000-order manifest's time."""
    connection = await session.connection()
    rows: Sequence[Row[*Ts]] = (await connection.execute(statement)).all()
    return rows


def _chunks(values: Iterable[Any], size: int = CHUNK) -> Iterable[list[Any]]:
    it = iter(values)
    while chunk := list(islice(it, size)):
        yield chunk


async def read_places(session: AsyncSession, *, codes: Iterable[str]) -> dict[str, Place]:
    """The regions and every region above them."""
    places: dict[str, Place] = {}

    async def fetch(wanted: Iterable[str]) -> None:
        for chunk in _chunks(sorted(set(wanted) - places.keys())):
            rows = await _rows(
                session,
                select(Region.code, Region.name, Region.level, Region.path).where(
                    Region.code.in_(chunk)
                ),
            )
            for code, name, level, path in rows:
                places[code] = Place(code, name, level, tuple(c for c in path.split("/") if c))

    await fetch(codes)
    await fetch(chain.from_iterable(p.path for p in list(places.values())))
    return places


async def read_nodes(session: AsyncSession) -> dict[int, NodeRow]:
    """Every node of the network (a county's has tens; a province's, thousands)."""
    rows = await _rows(session, select(DeliveryNode.id, DeliveryNode.kind, DeliveryNode.name))
    return {i: NodeRow(i, kind, name) for i, kind, name in rows}


async def _orders(session: AsyncSession, ids: Select[Any]) -> list[OrderRow]:
    rows = await _rows(
        session,
        select(
            Order.id,
            Order.shop_id,
            Order.status,
            Order.ship_name,
            Order.ship_phone,
            Order.ship_region_code,
            Order.ship_detail,
        ).where(Order.id.in_(ids)),
    )
    return [
        OrderRow(i, shop, status, mask_name(name), mask_phone(phone), region, detail)
        for i, shop, status, name, phone, region, detail in rows
    ]


async def _parcels(session: AsyncSession, ids: Select[Any]) -> list[ParcelRow]:
    routes: dict[int, list[int]] = defaultdict(list)
    stops = await _rows(
        session,
        select(ParcelStop.parcel_id, ParcelStop.node_id)
        .where(ParcelStop.parcel_id.in_(ids))
        .order_by(ParcelStop.parcel_id, ParcelStop.seq),
    )
    for parcel_id, node_id in stops:
        routes[parcel_id].append(node_id)
    rows = await _rows(
        session,
        select(
            Parcel.id,
            Parcel.code,
            Parcel.order_id,
            Parcel.region_code,
            Parcel.destination_id,
            Parcel.weight_grams,
            Parcel.status,
            Parcel.node_id,
            Bag.seal,
        )
        .outerjoin(Bag, Bag.id == Parcel.bag_id)
        .where(Parcel.id.in_(ids)),
    )
    return [ParcelRow(*row, route=tuple(routes.get(row[0], ()))) for row in rows]


async def read_session(
    session: AsyncSession, *, session_id: int, title: str, shop_name: str
) -> SessionManifest:
    """The manifest of a live session's paid orders: those with a line of one of its offers
    and the money in (paid, shipped, delivered, completed, a refund asked)."""
    offers = select(FlashOffer.id).where(FlashOffer.live_session_id == session_id)
    ordered = select(OrderItem.order_id).where(OrderItem.offer_id.in_(offers))
    paid = select(Order.id).where(Order.id.in_(ordered), Order.status.in_(PAID_IN))
    orders = await _orders(session, paid)
    line_rows = await _rows(
        session,
        select(OrderItem.order_id, OrderItem.sku_id, Product.title, Sku.name, OrderItem.quantity)
        .join(Sku, Sku.id == OrderItem.sku_id)
        .join(Product, Product.id == Sku.product_id)
        .where(OrderItem.order_id.in_(paid)),
    )
    lines = [LineRow(*row) for row in line_rows]
    in_network = select(Parcel.id).where(Parcel.order_id.in_(paid), Parcel.carrier.is_(None))
    parcels = await _parcels(session, in_network)
    shop_rows = await _rows(
        session, select(Shop.id, Shop.name).where(Shop.id.in_({o.shop_id for o in orders}))
    )
    return session_manifest(
        session_id=session_id,
        title=title,
        shop_name=shop_name,
        orders=orders,
        lines=lines,
        parcels=parcels,
        nodes=await read_nodes(session),
        places=await read_places(session, codes={o.region_code for o in orders}),
        shop_names={i: name for i, name in shop_rows},
        made_at=utcnow(),
    )


async def read_node(session: AsyncSession, *, node_id: int) -> NodeManifest:
    """The parcels still to reach the node or waiting there (``still_to_pass``), by the node
    each goes to next."""
    passing = select(ParcelStop.parcel_id).where(ParcelStop.node_id == node_id)
    open_ = select(Parcel.id).where(
        Parcel.id.in_(passing), Parcel.status.not_in(FINAL), Parcel.carrier.is_(None)
    )
    parcels = [p for p in await _parcels(session, open_) if still_to_pass(p, node_id)]
    orders = await _orders(session, select(Parcel.order_id).where(Parcel.id.in_(open_)))
    nodes = await read_nodes(session)
    places = await read_places(session, codes={p.region_code for p in parcels})
    (manifest,) = node_manifests(
        parcels, {o.id: o for o in orders}, nodes, places, node_ids=[node_id]
    )
    return manifest
