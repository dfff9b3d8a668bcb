"""What happens to parcels, written through the order writer (one transaction a call, batched
with others on SQLite): shipping an order as parcels, scans, bags, shelving and pick-up.

These run on a plain connection (``batching.Runner.run``), as ``orders.stock`` does: a
station's phone sends a scan a second, twenty stations at once, and each scan must be one
short transaction. The rule of a parcel's state is one pure function, :func:`state_of`;
what is kept on the parcel row is what it gives for the parcel's events (invariant 11).
"""

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, func, insert, select, update

from originlive import rawsql
from originlive.errors import Conflict, InvalidInput, NotFound, OriginliveError
from originlive.logistics.models import (
    Bag,
    DeliveryNode,
    Notification,
    Parcel,
    ParcelItem,
    ParcelStatus,
    ParcelStop,
    TrackingEvent,
)
from originlive.orders import stock
from originlive.orders.models import Order, OrderStatus

# A phone's clock may be a little ahead of ours; more than this and its time is not believed.
CLOCK_SLACK = timedelta(minutes=5)
PICKUP_TRIES = 5  # wrong codes in a row before the parcel is locked
PICKUP_LOCK = timedelta(minutes=15)
# What a station may say of a parcel by scanning it. ``pending`` is ours (shipped); delivery
# at a point is by pick-up code (``pickup``); shelving gives the code (``ready_for_pickup``).
SCANNABLE = frozenset(ParcelStatus) - {ParcelStatus.PENDING}


class Locked(OriginliveError):
    """Too many wrong pick-up codes: the parcel is locked for a while."""

    status = 423
    title = "Locked"
    slug = "locked"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


@dataclass(frozen=True, slots=True)
class Event:
    """What ``state_of`` needs of a tracking event."""

    status: ParcelStatus
    happened_at: datetime
    id: int


def state_of(events: Iterable[Event]) -> Event | None:
    """The event that says where a parcel is: the latest to happen (the latest recorded of
    those that happened at the same moment) but that a final one (delivered, returned), once
    there is one, stays: a scan that happened before it and arrived late changes nothing."""
    latest: Event | None = None
    final: Event | None = None
    for event in events:
        key = (event.happened_at, event.id)
        if latest is None or key > (latest.happened_at, latest.id):
            latest = event
        if event.status.final and (final is None or key > (final.happened_at, final.id)):
            final = event
    return final or latest


# Shipping


@dataclass(frozen=True, slots=True)
class NewParcel:
    """A parcel to make when an order ships: its lines, and its route or carrier."""

    items: Sequence[tuple[int, int]]  # (order item id, units)
    route: Sequence[int]  # node ids, the shop's hub first; empty with a carrier
    carrier: str | None = None
    carrier_tracking: str | None = None
    weight_grams: int | None = None


def new_code() -> str:
    """A parcel's label: OL and ten random digits (not its id: a code is not guessable)."""
    return f"OL{secrets.randbelow(10**10):010d}"


def ship(
    conn: Connection,
    *,
    order_id: int,
    shop_id: int,
    region_code: str,
    parcels: Sequence[NewParcel],
    actor_id: int,
    now: datetime,
    note: str | None,
) -> list[int]:
    """The shop has packed a paid order: it becomes shipped and its parcels are made, each
    with its first event (``pending``), in one transaction. Returns the parcels' ids."""
    stock.transition(
        conn,
        order_id=order_id,
        allowed=(OrderStatus.PAID,),
        to=OrderStatus.SHIPPED,
        actor_id=actor_id,
        now=now,
        note=note,
    )
    made = []
    for spec in parcels:
        parcel_id = conn.execute(
            insert(Parcel)
            .values(
                code=new_code(),
                order_id=order_id,
                shop_id=shop_id,
                region_code=region_code,
                destination_id=spec.route[-1] if spec.route else None,
                carrier=spec.carrier,
                carrier_tracking=spec.carrier_tracking,
                weight_grams=spec.weight_grams,
                status=ParcelStatus.PENDING,
                status_at=now,
                node_id=spec.route[0] if spec.route else None,
                pickup_failures=0,
                created_at=now,
            )
            .returning(Parcel.id)
        ).scalar_one()
        conn.execute(
            insert(ParcelItem),
            [{"parcel_id": parcel_id, "order_item_id": i, "quantity": q} for i, q in spec.items],
        )
        if spec.route:
            conn.execute(
                insert(ParcelStop),
                [
                    {"parcel_id": parcel_id, "seq": n, "node_id": node}
                    for n, node in enumerate(spec.route)
                ],
            )
        _append(
            conn,
            parcel_id=parcel_id,
            scan_id="shipped",
            status=ParcelStatus.PENDING,
            node_id=spec.route[0] if spec.route else None,
            happened_at=now,
            now=now,
            source="system",
            actor_id=actor_id,
        )
        made.append(parcel_id)
    return made


# Scans


@dataclass(frozen=True, slots=True)
class Scan:
    """A scan as a station's phone sends it."""

    scan_id: str  # the phone's own name for it: the same scan sent twice is one event
    status: ParcelStatus
    happened_at: datetime  # the phone's time when it was scanned
    reason: str | None = None
    shelf: int = 1  # where it is put, when shelved at a village point
    layer: int = 1


@dataclass(frozen=True, slots=True)
class Recorded:
    """A scan's event: new or, for a scan sent again, the one recorded the first time."""

    event_id: int
    parcel_id: int
    parcel_code: str
    status: ParcelStatus  # the parcel's, after it
    duplicate: bool
    off_route: bool
    clock_off: bool
    pickup_code: str | None


def scan_parcel(
    conn: Connection, *, code: str, scan: Scan, node_id: int, actor_id: int | None, now: datetime
) -> Recorded:
    """Record a station's scan of a parcel (invariant 11: once, however often it is sent)."""
    _lock(conn, code)
    # One statement reads what the rule needs: the parcel, its bag's seal, the event of this
    # scan id if it was sent before, whether the node is on its route, whether it delivers.
    row = rawsql.execute(
        conn, _SCAN_SQL + " FROM parcels p" + _FACTS_JOINS + " WHERE p.code = :code",
        code=code, scan_id=scan.scan_id, node_id=node_id,
    ).fetchone()  # fmt: skip
    if row is None:
        raise NotFound(f"No parcel {code}.")
    parcel = _Parcel(
        row[0], row[1], row[2], row[3], row[4], ParcelStatus(row[5]),
        rawsql.from_db_time(row[6]), row[7], row[8], row[9], rawsql.from_db_time(row[10]),
    )  # fmt: skip
    if parcel.bag_id is not None:  # it moves with its bag until taken out
        raise Conflict(f"Parcel {code} is in bag {row[11]}: scan the bag, or take it out first.")
    facts = _facts_of(row[12:])
    return _scan(
        conn, parcel, facts, scan, node_id=node_id, actor_id=actor_id, now=now, source="scan"
    )


def _lock(conn: Connection, code: str) -> None:
    """On PostgreSQL, where the writer's transactions run side by side, take the parcel's row
    first: two scans of one parcel at once then settle one after the other, each reading
    what the other wrote (the kept state, and a scan id sent twice). In a statement of its
    own, so that the reads after it see what the transaction it waited for committed. On
    SQLite the one writer connection already runs them one after the other."""
    if conn.dialect.name != "sqlite":
        rawsql.execute(conn, "SELECT id FROM parcels WHERE code = :code FOR UPDATE", code=code)


# The parcel's columns that scans use, in ``_Parcel``'s order.
_SCAN_SQL = (
    "SELECT p.id, p.code, p.order_id, p.destination_id, p.carrier, p.status, p.status_at,"
    " p.node_id, p.bag_id, p.pickup_code, p.created_at, b.seal,"
    " e.id, e.status, e.node_id, e.off_route, e.claimed_at,"
    " EXISTS (SELECT 1 FROM parcel_stops s WHERE s.parcel_id = p.id AND s.node_id = :node_id),"
    " (SELECT n.home_delivery FROM delivery_nodes n WHERE n.id = :node_id)"
)
_FACTS_JOINS = (
    " LEFT JOIN delivery_bags b ON b.id = p.bag_id"
    " LEFT JOIN tracking_events e ON e.parcel_id = p.id AND e.scan_id = :scan_id"
)


@dataclass(frozen=True, slots=True)
class _Parcel:
    """What a scan needs of a parcel's row (named as on ``Parcel``; a row of it will do)."""

    id: int
    code: str
    order_id: int
    destination_id: int | None
    carrier: str | None
    status: ParcelStatus
    status_at: datetime
    node_id: int | None
    bag_id: int | None
    pickup_code: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class _Facts:
    """What a scan needs besides the parcel: the event of its scan id if it was sent before
    (id, status, node, off route, claimed at), whether the node is on the parcel's route and
    whether it delivers to the door."""

    sent: tuple[int, ParcelStatus, int | None, bool, bool] | None
    on_route: bool
    home_delivery: bool


def _facts_of(row: Sequence[Any]) -> _Facts:
    sent = None
    if row[0] is not None:
        sent = (int(row[0]), ParcelStatus(row[1]), row[2], bool(row[3]), row[4] is not None)
    return _Facts(sent, bool(row[5]), bool(row[6]))


def _facts(conn: Connection, parcel_id: int, scan: Scan, node_id: int) -> _Facts:
    """``_Facts`` of a parcel read already (a bag's)."""
    row = rawsql.execute(
        conn,
        "SELECT e.id, e.status, e.node_id, e.off_route, e.claimed_at,"
        " EXISTS (SELECT 1 FROM parcel_stops s WHERE s.parcel_id = :parcel_id"
        " AND s.node_id = :node_id),"
        " (SELECT n.home_delivery FROM delivery_nodes n WHERE n.id = :node_id)"
        " FROM (SELECT 1 AS one) AS one"
        " LEFT JOIN tracking_events e ON e.parcel_id = :parcel_id AND e.scan_id = :scan_id",
        parcel_id=parcel_id,
        node_id=node_id,
        scan_id=scan.scan_id,
    ).fetchone()
    return _facts_of(row)


def _scan(
    conn: Connection,
    parcel: Any,  # a ``_Parcel`` or a row of ``Parcel``
    facts: _Facts,
    scan: Scan,
    *,
    node_id: int,
    actor_id: int | None,
    now: datetime,
    source: str,
    bag_id: int | None = None,
) -> Recorded:
    if facts.sent is not None:
        event_id, status, event_node, off_route, clock_off = facts.sent
        if (status, event_node) != (scan.status, node_id):
            raise Conflict(f"Scan {scan.scan_id} was recorded as another scan of {parcel.code}.")
        return Recorded(
            event_id, parcel.id, parcel.code, parcel.status, True, off_route, clock_off,
            parcel.pickup_code,
        )  # fmt: skip
    if scan.status not in SCANNABLE:
        raise InvalidInput(f"A scan cannot say {scan.status.value}.", field="status")
    happened_at, claimed_at = scan.happened_at, None
    if happened_at > now + CLOCK_SLACK or happened_at < parcel.created_at - CLOCK_SLACK:
        happened_at, claimed_at = now, scan.happened_at  # the phone's clock is off
    if parcel.status.final and (happened_at > parcel.status_at or scan.status.final):
        raise Conflict(f"Parcel {parcel.code} is already {parcel.status.value}.")
    if parcel.carrier is not None:
        raise Conflict(f"Parcel {parcel.code} is with {parcel.carrier}, not our network.")
    at_destination = node_id == parcel.destination_id
    pickup_code = parcel.pickup_code
    if scan.status is ParcelStatus.READY_FOR_PICKUP:
        if not at_destination:
            raise Conflict(f"Parcel {parcel.code} is collected at its own point, not here.")
        pickup_code = _shelve(conn, parcel, scan, now)
    if scan.status is ParcelStatus.DELIVERED and not (at_destination and facts.home_delivery):
        raise Conflict("Delivered to the door only by a point that delivers; else by code.")
    off_route = not facts.on_route
    event_id = _append(
        conn,
        parcel_id=parcel.id,
        scan_id=scan.scan_id,
        status=scan.status,
        node_id=node_id,
        happened_at=happened_at,
        now=now,
        source=source,
        actor_id=actor_id,
        reason=scan.reason,
        off_route=off_route,
        claimed_at=claimed_at,
        bag_id=bag_id,
    )
    status = _settle(conn, parcel, now, Event(scan.status, happened_at, event_id), node_id)
    return Recorded(
        event_id, parcel.id, parcel.code, status, False, off_route, claimed_at is not None,
        pickup_code,
    )  # fmt: skip


def _parcel(conn: Connection, code: str) -> Row[Any]:
    """The parcel's row (its columns by name, as on ``Parcel``)."""
    # Locked on PostgreSQL (see ``_lock``; SQLite's dialect leaves FOR UPDATE out).
    row = conn.execute(select(Parcel).where(Parcel.code == code).with_for_update()).first()
    if row is None:
        raise NotFound(f"No parcel {code}.")
    return row


def _append(
    conn: Connection,
    *,
    parcel_id: int,
    scan_id: str,
    status: ParcelStatus,
    node_id: int | None,
    happened_at: datetime,
    now: datetime,
    source: str,
    actor_id: int | None,
    reason: str | None = None,
    off_route: bool = False,
    claimed_at: datetime | None = None,
    bag_id: int | None = None,
) -> int:
    return int(
        rawsql.execute(
            conn,
            "INSERT INTO tracking_events (parcel_id, scan_id, status, node_id, bag_id, reason,"
            " happened_at, recorded_at, source, actor_id, off_route, claimed_at)"
            " VALUES (:parcel_id, :scan_id, :status, :node_id, :bag_id, :reason, :happened_at,"
            " :recorded_at, :source, :actor_id, :off_route, :claimed_at) RETURNING id",
            parcel_id=parcel_id,
            scan_id=scan_id,
            status=status.value,
            node_id=node_id,
            bag_id=bag_id,
            reason=reason,
            happened_at=rawsql.db_time(conn, happened_at),
            recorded_at=rawsql.db_time(conn, now),
            source=source,
            actor_id=actor_id,
            off_route=off_route,
            claimed_at=None if claimed_at is None else rawsql.db_time(conn, claimed_at),
        ).fetchone()[0]
    )


def _settle(
    conn: Connection, parcel: Any, now: datetime, event: Event, node_id: int | None
) -> ParcelStatus:
    """Keep on the parcel what its events imply (``state_of``) now that ``event`` (at
    ``node_id``) is recorded; when the last parcel of an order is delivered, the order is.

    The kept state is ``state_of`` of the events before, so the new event (recorded last)
    says where the parcel is if it is the first final one, or happened after the kept state
    (``state_of`` has no final event to keep then); else the kept state stays. Only when it
    happened at the very moment of the kept state are the events read again: the kept row
    does not say which of the two was recorded first."""
    state: Event | None
    if event.happened_at == parcel.status_at or (parcel.status.final and event.status.final):
        rows = conn.execute(
            select(
                TrackingEvent.status,
                TrackingEvent.happened_at,
                TrackingEvent.id,
                TrackingEvent.node_id,
            ).where(TrackingEvent.parcel_id == parcel.id)
        ).all()
        nodes = {row.id: row.node_id for row in rows}
        state = state_of(Event(row.status, row.happened_at, row.id) for row in rows)
        assert state is not None  # a parcel is made with its first event
        node_id = nodes[state.id]
    elif not parcel.status.final and (event.status.final or event.happened_at > parcel.status_at):
        state = event
    else:
        return ParcelStatus(parcel.status)  # the kept state stands
    rawsql.execute(
        conn,
        "UPDATE parcels SET status = :status, status_at = :status_at, node_id = :node_id"
        " WHERE id = :id",
        status=state.status.value,
        status_at=rawsql.db_time(conn, state.happened_at),
        node_id=node_id,
        id=parcel.id,
    )
    if state.status is ParcelStatus.DELIVERED and parcel.status is not ParcelStatus.DELIVERED:
        undelivered = conn.execute(
            select(func.count())
            .select_from(Parcel)
            .where(Parcel.order_id == parcel.order_id, Parcel.status != ParcelStatus.DELIVERED)
        ).scalar_one()
        order_status = conn.execute(select(Order.status).where(Order.id == parcel.order_id))
        if undelivered == 0 and order_status.scalar() is OrderStatus.SHIPPED:
            stock.transition(
                conn,
                order_id=parcel.order_id,
                allowed=(OrderStatus.SHIPPED,),
                to=OrderStatus.DELIVERED,
                actor_id=None,
                now=now,
                note="every parcel delivered",
            )
    return state.status


# Outside carriers


@dataclass(frozen=True, slots=True)
class CarrierEvent:
    """An outside carrier's word on a waybill, in our statuses (its adapter maps its own)."""

    event_id: str  # the carrier's own name for it: the same event delivered twice is one
    waybill: str
    status: ParcelStatus
    happened_at: datetime  # by the carrier's clock
    note: str | None = None  # where it was, or why delivery failed, in the carrier's words


def record_carrier_events(
    conn: Connection, *, carrier: str, events: Sequence[CarrierEvent], now: datetime
) -> list[Recorded]:
    """Record what a carrier says of its waybills, in one transaction: each event on every
    parcel with that carrier and waybill (a waybill may cover several boxes), once however
    often it is delivered. An unknown waybill is ``NotFound`` and nothing is written."""
    recorded = []
    for event in events:
        parcels = conn.execute(
            select(Parcel)
            .where(Parcel.carrier == carrier, Parcel.carrier_tracking == event.waybill)
            .order_by(Parcel.id)
            .with_for_update()  # see ``_lock``
        ).all()  # read again for each event: the one before may have moved them
        if not parcels:
            raise NotFound(f"No parcel with {carrier} waybill {event.waybill}.")
        recorded += [_carrier_event(conn, parcel, event, now) for parcel in parcels]
    return recorded


def _carrier_event(
    conn: Connection, parcel: Row[Any], event: CarrierEvent, now: datetime
) -> Recorded:
    found = conn.execute(
        select(TrackingEvent).where(
            TrackingEvent.parcel_id == parcel.id, TrackingEvent.scan_id == event.event_id
        )
    ).first()
    if found is not None:
        if (found.source, found.status) != ("carrier", event.status):
            raise Conflict(f"Event {event.event_id} was recorded as another of {parcel.code}.")
        return Recorded(
            found.id, parcel.id, parcel.code, parcel.status, True, False,
            found.claimed_at is not None, None,
        )  # fmt: skip
    if event.status not in SCANNABLE:
        raise InvalidInput(f"A carrier cannot say {event.status.value}.", field="status")
    # The scans' rule: a carrier's clock far ahead of ours, or an event before we handed the
    # parcel over, would otherwise stand as its latest news for good.
    happened_at, claimed_at = event.happened_at, None
    if happened_at > now + CLOCK_SLACK or happened_at < parcel.created_at - CLOCK_SLACK:
        happened_at, claimed_at = now, event.happened_at
    if parcel.status.final and (happened_at > parcel.status_at or event.status.final):
        raise Conflict(f"Parcel {parcel.code} is already {parcel.status.value}.")
    event_id = _append(
        conn,
        parcel_id=parcel.id,
        scan_id=event.event_id,
        status=event.status,
        node_id=None,
        happened_at=happened_at,
        now=now,
        source="carrier",
        actor_id=None,
        reason=event.note,
        claimed_at=claimed_at,
    )
    status = _settle(conn, parcel, now, Event(event.status, happened_at, event_id), None)
    return Recorded(
        event_id, parcel.id, parcel.code, status, False, False, claimed_at is not None, None
    )


# Shelving and pick-up


def _shelve(conn: Connection, parcel: Row[Any], scan: Scan, now: datetime) -> str:
    """Give the parcel its pick-up code (shelf-layer-serial, a serial no parcel waiting at the
    point has) and tell the buyer."""
    if parcel.pickup_code is not None and parcel.status is ParcelStatus.READY_FOR_PICKUP:
        return str(parcel.pickup_code)
    waiting = set(
        conn.execute(
            select(Parcel.pickup_code).where(
                Parcel.destination_id == parcel.destination_id,
                Parcel.status == ParcelStatus.READY_FOR_PICKUP,
            )
        ).scalars()
    )
    serials = {code.rsplit("-", 1)[-1] for code in waiting if code}
    while (serial := f"{1000 + secrets.randbelow(9000)}") in serials:
        pass
    code = f"{scan.shelf}-{scan.layer}-{serial}"
    conn.execute(
        update(Parcel)
        .where(Parcel.id == parcel.id)
        .values(pickup_code=code, pickup_failures=0, locked_until=None)
    )
    point: str = conn.execute(
        select(DeliveryNode.name).where(DeliveryNode.id == parcel.destination_id)
    ).scalar_one()
    buyer = conn.execute(
        select(Order.buyer_id, Order.ship_phone).where(Order.id == parcel.order_id)
    ).one()
    conn.execute(
        insert(Notification).values(
            user_id=buyer.buyer_id,
            parcel_id=parcel.id,
            channel="sandbox",
            address=buyer.ship_phone,
            body=f"您的包裹 {parcel.code} 已到 {point}，取件码 {code}。"
            f" Your parcel {parcel.code} is at {point}; pick-up code {code}.",
            created_at=now,
        )
    )
    return code


@dataclass(frozen=True, slots=True)
class PickUp:
    """What came of a pick-up: collected, or a wrong code (and whether that locked it)."""

    collected: Recorded | None
    tries_left: int
    locked_until: datetime | None


def pick_up(
    conn: Connection,
    *,
    code: str,
    pickup_code: str,
    collected_by: str | None,
    node_id: int,
    actor_id: int,
    scan_id: str,
    now: datetime,
) -> PickUp:
    """The buyer (or whom they named) collects a parcel at its point with its code.

    A wrong code is counted and returned, not raised: the count must be committed.
    """
    parcel = _parcel(conn, code)
    if parcel.destination_id != node_id:
        raise NotFound(f"No parcel {code} waiting here.")
    done = conn.execute(
        select(TrackingEvent.id).where(
            TrackingEvent.parcel_id == parcel.id, TrackingEvent.scan_id == scan_id
        )
    ).scalar()
    if done is not None:  # the same pick-up sent again
        recorded = Recorded(done, parcel.id, code, parcel.status, True, False, False, None)
        return PickUp(recorded, PICKUP_TRIES, None)
    if parcel.status is not ParcelStatus.READY_FOR_PICKUP:
        raise Conflict(f"Parcel {code} is {parcel.status.value}, not waiting for pick-up.")
    if parcel.locked_until is not None and parcel.locked_until > now:
        wait = int((parcel.locked_until - now).total_seconds()) + 1
        raise Locked(f"Parcel {code} is locked after {PICKUP_TRIES} wrong codes.", retry_after=wait)
    if not secrets.compare_digest(pickup_code.encode(), (parcel.pickup_code or "").encode()):
        failures = parcel.pickup_failures + 1
        locked_until = now + PICKUP_LOCK if failures >= PICKUP_TRIES else None
        conn.execute(
            update(Parcel)
            .where(Parcel.id == parcel.id)
            .values(pickup_failures=0 if locked_until else failures, locked_until=locked_until)
        )
        return PickUp(None, PICKUP_TRIES - failures if not locked_until else 0, locked_until)
    conn.execute(
        update(Parcel)
        .where(Parcel.id == parcel.id)
        .values(pickup_failures=0, locked_until=None, collected_by=collected_by)
    )
    event_id = _append(
        conn,
        parcel_id=parcel.id,
        scan_id=scan_id,
        status=ParcelStatus.DELIVERED,
        node_id=node_id,
        happened_at=now,
        now=now,
        source="pickup",
        actor_id=actor_id,
        reason=f"collected by {collected_by}" if collected_by else None,
    )
    status = _settle(conn, parcel, now, Event(ParcelStatus.DELIVERED, now, event_id), node_id)
    return PickUp(Recorded(event_id, parcel.id, code, status, False, False, False, None), 0, None)


# Bags


def make_bag(
    conn: Connection, *, seal: str, origin_id: int, destination_id: int, codes: Sequence[str],
    now: datetime,
) -> int:  # fmt: skip
    """Seal parcels for one station into a bag; a seal is used once."""
    if conn.execute(select(Bag.id).where(Bag.seal == seal)).scalar() is not None:
        raise Conflict(f"Seal {seal} is already used.")
    if not codes:
        raise InvalidInput("A bag holds at least one parcel.", field="parcels")
    bag_id = conn.execute(
        insert(Bag)
        .values(seal=seal, origin_id=origin_id, destination_id=destination_id, created_at=now)
        .returning(Bag.id)
    ).scalar_one()
    for code in codes:
        parcel = _parcel(conn, code)
        if parcel.bag_id is not None:
            raise Conflict(f"Parcel {code} is already in a bag.")
        if parcel.status.final or parcel.carrier is not None:
            raise Conflict(f"Parcel {code} is not travelling in our network.")
        passes = conn.execute(
            select(ParcelStop.seq).where(
                ParcelStop.parcel_id == parcel.id, ParcelStop.node_id == destination_id
            )
        ).scalar()
        if passes is None:
            raise Conflict(f"Parcel {code} does not pass the bag's station.")
        conn.execute(update(Parcel).where(Parcel.id == parcel.id).values(bag_id=bag_id))
    return bag_id


def scan_bag(
    conn: Connection, *, seal: str, scan: Scan, node_id: int, actor_id: int | None, now: datetime
) -> list[Recorded]:
    """A scan of a bag is a scan of each parcel in it. At the bag's station it is opened:
    its parcels are on their own from there."""
    bag = conn.execute(select(Bag).where(Bag.seal == seal)).first()
    if bag is None:
        raise NotFound(f"No bag {seal}.")
    if scan.status not in (ParcelStatus.PICKED_UP, ParcelStatus.IN_TRANSIT, ParcelStatus.AT_NODE):
        raise InvalidInput("A bag is picked up, in transit or at a node.", field="status")
    parcels = conn.execute(
        select(Parcel).where(Parcel.bag_id == bag.id).order_by(Parcel.id).with_for_update()
    ).all()  # locked in one order (see ``_lock``)
    recorded = [
        _scan(
            conn,
            p,
            _facts(conn, p.id, scan, node_id),
            scan,
            node_id=node_id,
            actor_id=actor_id,
            now=now,
            source="bag",
            bag_id=bag.id,
        )
        for p in parcels
    ]
    if node_id == bag.destination_id and scan.status is ParcelStatus.AT_NODE:
        conn.execute(update(Bag).where(Bag.id == bag.id).values(opened_at=now))
        conn.execute(update(Parcel).where(Parcel.bag_id == bag.id).values(bag_id=None))
    return recorded


def take_out(conn: Connection, *, seal: str, code: str) -> None:
    """Take a parcel out of its bag: from then on it is scanned on its own."""
    parcel = _parcel(conn, code)
    bag_id = conn.execute(select(Bag.id).where(Bag.seal == seal)).scalar()
    if bag_id is None or parcel.bag_id != bag_id:
        raise NotFound(f"Parcel {code} is not in bag {seal}.")
    conn.execute(update(Parcel).where(Parcel.id == parcel.id).values(bag_id=None))
