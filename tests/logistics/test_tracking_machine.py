"""A hypothesis state machine over scans (invariant 11): scans of parcels sent in any order,
twice, late and with wrong clocks, at nodes on and off the route, singly and by bag. After
every step, each parcel's kept state is the one its recorded events imply
(``tracking.state_of``), and every scan that was accepted is recorded exactly once.

It drives ``logistics.tracking`` directly, as the order writer does, on real SQLite and
PostgreSQL, each example in one transaction rolled back at its end.
"""

import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Connection, func, insert, select

from originlive.errors import OriginliveError
from originlive.logistics import tracking
from originlive.logistics.models import DeliveryNode, NodeKind, Parcel, ParcelStatus, TrackingEvent
from originlive.orders.models import Order, OrderItem, OrderStatus
from tests.writer import on_writer_connection, shop_with_a_sku

START = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
PARCELS = 3
SCAN_STATUSES = [s for s in ParcelStatus if s is not ParcelStatus.PENDING]


class Scans(RuleBasedStateMachine):
    connection: Connection

    def __init__(self) -> None:
        super().__init__()
        self.conn = self.connection
        self.tx = self.conn.begin()
        self.now = START
        self.sent: dict[tuple[int, str], tracking.Scan] = {}  # (parcel, scan id): first accepted
        self.ids = itertools.count(1)
        self.bags = itertools.count(1)

    def teardown(self) -> None:
        self.tx.rollback()

    @initialize()
    def parcels_on_their_way(self) -> None:
        conn = self.conn
        seeded = shop_with_a_sku(conn, at=START, buyers=1, price_cents=100, stock=9)
        merchant, (buyer,), shop, sku = seeded.merchant, seeded.buyers, seeded.shop, seeded.sku
        self.nodes = (
            conn.execute(
                insert(DeliveryNode).returning(DeliveryNode.id),
                [
                    {
                        "kind": kind,
                        "region_code": "610431",
                        "name": kind.value,
                        "address": "",
                        "opening_hours": "",
                        "phone": "",
                        "home_delivery": True,
                        "active": True,
                        "created_at": START,
                    }
                    for kind in (
                        NodeKind.COUNTY_HUB,
                        NodeKind.TOWNSHIP_STATION,
                        NodeKind.VILLAGE_POINT,
                        NodeKind.COUNTY_HUB,
                    )
                ],
            )
            .scalars()
            .all()
        )
        route = self.nodes[:3]  # the fourth node is off every route
        self.parcels: list[str] = []
        for _ in range(PARCELS):
            order = conn.execute(
                insert(Order)
                .values(
                    buyer_id=buyer,
                    shop_id=shop,
                    status=OrderStatus.PAID,
                    currency="CNY",
                    items_cents=100,
                    shipping_cents=0,
                    total_cents=100,
                    ship_name="买家",
                    ship_phone="13800000000",
                    ship_region_code="610431",
                    ship_detail="",
                    idempotency_key=f"k{next(self.ids)}",
                    request_hash="x",
                    created_at=START,
                    expires_at=START,
                    updated_at=START,
                )
                .returning(Order.id)
            ).scalar_one()
            item = conn.execute(
                insert(OrderItem)
                .values(
                    order_id=order, sku_id=sku, title="猕猴桃", unit_price_cents=100, quantity=1
                )
                .returning(OrderItem.id)
            ).scalar_one()
            (parcel_id,) = tracking.ship(
                conn,
                order_id=order,
                shop_id=shop,
                region_code="610431",
                parcels=[tracking.NewParcel(items=[(item, 1)], route=route)],
                actor_id=merchant,
                now=START,
                note=None,
            )
            self.parcels.append(
                conn.execute(select(Parcel.code).where(Parcel.id == parcel_id)).scalar_one()
            )

    def _try(self, fn, **kwargs):  # type: ignore[no-untyped-def]
        """As the writer runs a call: a refused one leaves no trace."""
        try:
            with self.conn.begin_nested():
                return fn(self.conn, **kwargs)
        except OriginliveError:
            return None

    @rule(
        which=st.integers(0, PARCELS - 1),
        status=st.sampled_from(SCAN_STATUSES),
        node=st.integers(0, 3),
        # Minutes from now: late (offline, sent hours later), now, or a phone hours ahead.
        offset=st.sampled_from([-600, -90, -30, -5, 0, 0, 0, 1, 30, 240]),
        reuse=st.booleans(),
        advance=st.integers(0, 45),
    )
    def scan(
        self, which: int, status: ParcelStatus, node: int, offset: int, reuse: bool, advance: int
    ) -> None:
        self.now += timedelta(minutes=advance)
        code = self.parcels[which]
        parcel_id = self.conn.execute(select(Parcel.id).where(Parcel.code == code)).scalar_one()
        earlier = [key for key in self.sent if key[0] == parcel_id]
        if reuse and earlier:  # the same scan sent again: nothing new
            scan = self.sent[earlier[-1]]
            before = self._events(parcel_id)
            done = self._try(
                tracking.scan_parcel,
                code=code,
                scan=scan,
                node_id=self._node_of(parcel_id, scan),
                actor_id=None,
                now=self.now,
            )
            assert done is not None and done.duplicate
            assert self._events(parcel_id) == before
            return
        scan = tracking.Scan(f"s{next(self.ids)}", status, self.now + timedelta(minutes=offset))
        done = self._try(
            tracking.scan_parcel,
            code=code,
            scan=scan,
            node_id=self.nodes[node],
            actor_id=None,
            now=self.now,
        )
        if done is not None:
            assert not done.duplicate
            self.sent[(parcel_id, scan.scan_id)] = scan

    @rule(
        status=st.sampled_from([ParcelStatus.IN_TRANSIT, ParcelStatus.AT_NODE]),
        node=st.integers(0, 3),
    )
    def bag_and_scan(self, status: ParcelStatus, node: int) -> None:
        seal = f"BAG-{next(self.bags):04d}"
        loose = [c for c in self.parcels if self._bag(c) is None]
        bagged = self._try(
            tracking.make_bag,
            seal=seal,
            origin_id=self.nodes[0],
            destination_id=self.nodes[1],
            codes=loose[:2],
            now=self.now,
        )
        if bagged is None:
            return
        scan = tracking.Scan(f"s{next(self.ids)}", status, self.now)
        done = self._try(
            tracking.scan_bag,
            seal=seal,
            scan=scan,
            node_id=self.nodes[node],
            actor_id=None,
            now=self.now,
        )
        for recorded in done or []:
            self.sent[(recorded.parcel_id, scan.scan_id)] = scan
        for code in loose[:2]:  # out again, so that single scans go on
            self._try(tracking.take_out, seal=seal, code=code)

    def _bag(self, code: str) -> int | None:
        return self.conn.execute(select(Parcel.bag_id).where(Parcel.code == code)).scalar()

    def _node_of(self, parcel_id: int, scan: tracking.Scan) -> int:
        return self.conn.execute(
            select(TrackingEvent.node_id).where(
                TrackingEvent.parcel_id == parcel_id, TrackingEvent.scan_id == scan.scan_id
            )
        ).scalar_one()

    def _events(self, parcel_id: int) -> list[tuple[int, ParcelStatus]]:
        rows = self.conn.execute(
            select(TrackingEvent.id, TrackingEvent.status).where(
                TrackingEvent.parcel_id == parcel_id
            )
        )
        return sorted((row.id, row.status) for row in rows)

    @invariant()
    def each_parcel_is_where_its_events_say(self) -> None:
        for parcel in self.conn.execute(select(Parcel)).all():
            events = self.conn.execute(
                select(
                    TrackingEvent.status,
                    TrackingEvent.happened_at,
                    TrackingEvent.id,
                    TrackingEvent.node_id,
                ).where(TrackingEvent.parcel_id == parcel.id)
            ).all()
            state = tracking.state_of(tracking.Event(e.status, e.happened_at, e.id) for e in events)
            assert state is not None
            assert (parcel.status, parcel.status_at) == (state.status, state.happened_at)
            assert parcel.node_id == next(e.node_id for e in events if e.id == state.id)
            finals = [e for e in events if e.status.final]
            assert len(finals) <= 1  # delivered or returned once
            if finals:  # what was accepted once it was recorded had happened before it
                final = finals[0]
                assert all(e.happened_at <= final.happened_at for e in events if e.id > final.id)

    @invariant()
    def every_accepted_scan_is_recorded_once(self) -> None:
        recorded = self.conn.execute(
            select(TrackingEvent.parcel_id, TrackingEvent.scan_id, func.count())
            .where(TrackingEvent.scan_id != "shipped")
            .group_by(TrackingEvent.parcel_id, TrackingEvent.scan_id)
        ).all()
        assert {(r[0], r[1]) for r in recorded} == set(self.sent)
        assert all(r[2] == 1 for r in recorded)


def _run(connection: Connection) -> None:
    Scans.connection = connection
    run_state_machine_as_test(
        Scans,
        settings=settings(
            max_examples=40,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


async def test_a_parcel_is_always_where_its_events_say(database_url: str) -> None:
    await on_writer_connection(database_url, _run)
