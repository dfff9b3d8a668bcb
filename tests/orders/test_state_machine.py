"""A hypothesis state machine over offers and orders: whatever happens, the books balance.

It drives the rules of ``orders.stock`` and ``orders.bulk`` directly (as the writer does) on
real SQLite and PostgreSQL databases, each example inside one transaction that is rolled back
afterwards, and checks invariants 1, 2, 3 and 5 after every step.
"""

import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Connection, func, select

from originlive.catalog.models import Sku
from originlive.errors import OriginliveError
from originlive.orders import bulk, placing, stock
from originlive.orders.models import (
    HOLDING,
    FlashOffer,
    OfferPurchase,
    OfferStatus,
    Order,
    OrderEvent,
    OrderItem,
    OrderStatus,
)
from tests.writer import on_writer_connection, shop_with_a_sku

STOCK = 40
START = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
ADDRESS = placing.Address("买家", "13800000000", "610431", "徐杨村")


class Books(RuleBasedStateMachine):
    # The connection every example runs on, in a transaction rolled back at its end.
    connection: Connection

    offers = Bundle("offers")
    orders = Bundle("orders")

    def __init__(self) -> None:
        super().__init__()
        self.conn = self.connection
        self.tx = self.conn.begin()
        self.now = START
        self.keys: dict[tuple[int, str], tuple[tuple[placing.Line, ...], int]] = {}

    def teardown(self) -> None:
        self.tx.rollback()

    @initialize()
    def shop_with_a_sku(self) -> None:
        seeded = shop_with_a_sku(self.conn, at=START, buyers=3, price_cents=3990, stock=STOCK)
        self.merchant, self.buyers, self.sku = seeded.merchant, seeded.buyers, seeded.sku

    def _try(self, fn, **kwargs):  # type: ignore[no-untyped-def]
        """Run a rule in a savepoint, as the writer does; a refused one leaves no trace."""
        try:
            with self.conn.begin_nested():
                return fn(self.conn, **kwargs)
        except OriginliveError:
            return None

    @rule(target=offers, quantity=st.integers(1, 25), limit=st.integers(1, 3))
    def open_offer(self, quantity: int, limit: int) -> int | None:
        return self._try(
            stock.open_offer,
            sku_id=self.sku,
            price_cents=990,
            quantity=quantity,
            per_buyer_limit=limit,
            ends_at=self.now + timedelta(minutes=30),
            sold_by=None,
            now=self.now,
        )

    @rule(
        target=orders,
        offer=offers,
        plain=st.booleans(),
        buyer=st.integers(0, 2),
        quantity=st.integers(1, 3),
        key=st.sampled_from(["a", "b", "c", "d"]),
    )
    def place(
        self, offer: int | None, plain: bool, buyer: int, quantity: int, key: str
    ) -> int | None:
        line = (
            placing.Line(None, self.sku, quantity)
            if plain or offer is None
            else placing.Line(offer, None, quantity)
        )
        buyer_id = self.buyers[buyer]
        cmd = placing.PlaceOrder(buyer_id, key, (line,), ADDRESS, self.now, timedelta(minutes=15))
        placed = self._try(bulk.place_one, cmd=cmd)
        earlier = self.keys.get((buyer_id, key))
        if placed is None:  # refused: no units, over the limit, ended, or a key reused
            return None
        order_id = placed.order["id"]
        if earlier is not None:
            assert placed.replayed and earlier == ((line,), order_id)  # invariant 2
        else:
            assert not placed.replayed
            self.keys[(buyer_id, key)] = ((line,), order_id)
        return order_id

    @rule(
        presses=st.lists(
            st.tuples(
                st.one_of(st.none(), offers),
                st.integers(0, 2),
                st.integers(1, 3),
                st.text("abcdefgh", min_size=1, max_size=2),
            ),
            min_size=1,
            max_size=6,
            unique_by=lambda p: (p[1], p[3]),  # the bulk placer never batches a key twice
        ),
        locked=st.booleans(),
    )
    def place_together(self, presses: list[tuple[int | None, int, int, str]], locked: bool) -> None:
        """A batch of presses as the batching placers decide them (``bulk.place_many``),
        checked against the same presses placed one at a time (``bulk.place_one``)."""
        cmds = [
            placing.PlaceOrder(
                self.buyers[buyer],
                key,
                (
                    placing.Line(None, self.sku, q)
                    if offer is None
                    else placing.Line(offer, None, q),
                ),
                ADDRESS,
                self.now,
                timedelta(minutes=15),
            )
            for offer, buyer, q, key in presses
        ]
        oracle = self.conn.begin_nested()
        expected = []
        for cmd in cmds:
            try:
                with self.conn.begin_nested():
                    expected.append(bulk.place_one(self.conn, cmd))
            except OriginliveError as exc:
                expected.append(exc)
        oracle.rollback()
        with self.conn.begin_nested():
            actual = bulk.place_many(self.conn, cmds, locked=locked)
        for cmd, want, got in zip(cmds, expected, actual, strict=True):
            assert _shape(got) == _shape(want), (cmd, got, want)
            self._record(cmd, got if isinstance(got, placing.Placed) else None)

    def _record(self, cmd: placing.PlaceOrder, placed: placing.Placed | None) -> None:
        if placed is None:
            return
        earlier = self.keys.get((cmd.buyer_id, cmd.idempotency_key))
        if earlier is not None:
            assert placed.replayed and earlier == (cmd.lines, placed.order["id"])
        else:
            assert not placed.replayed
            self.keys[(cmd.buyer_id, cmd.idempotency_key)] = (cmd.lines, placed.order["id"])

    @rule(order=orders)
    def cancel(self, order: int | None) -> None:
        if order is not None:
            self._try(
                stock.release, order_id=order, to=OrderStatus.CANCELLED, actor_id=None, now=self.now
            )

    @rule(order=orders)
    def pay(self, order: int | None) -> None:
        if order is not None:
            self._try(
                stock.transition,
                order_id=order,
                allowed=(OrderStatus.PENDING_PAYMENT,),
                to=OrderStatus.PAID,
                actor_id=None,
                now=self.now,
            )

    @rule(minutes=st.integers(1, 40))
    def time_passes(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)
        self._try(stock.expire_due, now=self.now)
        self._try(stock.end_due_offers, now=self.now)

    @rule(offer=consumes(offers))
    def end_offer(self, offer: int | None) -> None:
        if offer is not None:
            self._try(stock.end_offer, offer_id=offer, now=self.now)

    def _held(self, *conditions) -> int:  # type: ignore[no-untyped-def]
        return int(
            self.conn.execute(
                select(func.coalesce(func.sum(OrderItem.quantity), 0))
                .join(Order, Order.id == OrderItem.order_id)
                .where(Order.status.in_(HOLDING), *conditions)
            ).scalar_one()
        )

    @invariant()
    def units_are_conserved(self) -> None:
        if not hasattr(self, "sku"):
            return
        shelf = self.conn.execute(select(Sku.stock).where(Sku.id == self.sku)).scalar_one()
        on_offer = self.conn.execute(
            select(func.coalesce(func.sum(FlashOffer.remaining), 0)).where(
                FlashOffer.sku_id == self.sku
            )
        ).scalar_one()
        assert shelf >= 0
        assert shelf + on_offer + self._held(OrderItem.sku_id == self.sku) == STOCK

    @invariant()
    def offers_never_oversell(self) -> None:
        if not hasattr(self, "sku"):
            return
        for offer in self.conn.execute(select(FlashOffer).where(FlashOffer.sku_id == self.sku)):
            assert offer.remaining >= 0
            held = self._held(OrderItem.offer_id == offer.id)
            if offer.status == OfferStatus.ACTIVE:
                assert offer.remaining + held == offer.quantity
            else:
                assert offer.remaining == 0 and held <= offer.quantity
            counters = self.conn.execute(
                select(OfferPurchase.buyer_id, OfferPurchase.quantity).where(
                    OfferPurchase.offer_id == offer.id
                )
            ).all()
            for buyer_id, counted in counters:
                assert counted == self._held(
                    OrderItem.offer_id == offer.id, Order.buyer_id == buyer_id
                )
                assert counted <= offer.per_buyer_limit

    @invariant()
    def state_agrees_with_events(self) -> None:
        for order_id, status in self.conn.execute(select(Order.id, Order.status)).all():
            chain = self.conn.execute(
                select(OrderEvent.from_status, OrderEvent.to_status)
                .where(OrderEvent.order_id == order_id)
                .order_by(OrderEvent.id)
            ).all()
            assert chain[0].from_status is None
            assert all(a.to_status == b.from_status for a, b in itertools.pairwise(chain))
            assert chain[-1].to_status == status


def _shape(outcome: object) -> object:
    """An answer without the ids that depend on which path inserted first."""
    if isinstance(outcome, OriginliveError):
        return (type(outcome).__name__, outcome.detail)
    assert isinstance(outcome, placing.Placed)
    order = dict(outcome.order)
    if not outcome.replayed:
        order.pop("id")
        order["items"] = [{k: v for k, v in i.items() if k != "id"} for i in order["items"]]
        order["events"] = [{k: v for k, v in e.items() if k != "id"} for e in order["events"]]
    return (outcome.replayed, order)


def _run(connection: Connection) -> None:
    Books.connection = connection
    run_state_machine_as_test(
        Books,
        settings=settings(
            max_examples=60,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


async def test_books_balance(database_url: str) -> None:
    await on_writer_connection(database_url, _run)
