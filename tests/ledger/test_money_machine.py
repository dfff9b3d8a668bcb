"""A hypothesis state machine over the money's life: whatever happens, the book balances.

It drives the real rules on a connection like the order writer's, on SQLite and PostgreSQL,
each example in one transaction rolled back at its end: orders placed (some of their lines
sold by an anchor at a commission) and paid through the sandbox's rules, refunds whole or in
part at any time, deliveries, confirmations of receipt, time passing, settlement runs, and
payouts paid or failed (reversed). After every step:

- the book verifies: every entry sums to zero and has postings, each account's totals equal
  its postings, money in = money held + money paid out (invariant 9);
- what the ledger holds of each order is what its buyer paid less what was refunded, once
  its payment and refunds are posted;
- no order's money is available before its receipt was confirmed and its after-sales window
  closed (invariant 10).
"""

import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Connection, func, select

from originlive.errors import OriginliveError
from originlive.ledger import service as ledger
from originlive.ledger.models import EntryKind, JournalEntry
from originlive.ledger.payouts import service as payouts
from originlive.ledger.settlement import service as settlement
from originlive.ledger.settlement import split
from originlive.orders import bulk, placing, stock
from originlive.orders.models import Order, OrderEvent, OrderStatus
from originlive.payments import records
from originlive.payments.models import Refund
from tests.writer import on_writer_connection, shop_with_a_sku

START = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
PRICE = 1990
POLICY = settlement.Policy(
    rule=split.SplitRule(platform_fee_bp=500, station_fee_fen=100, coop_share_bp=300),
    auto_confirm=timedelta(days=7),
    after_sales=timedelta(days=7),
)
ADDRESS = placing.Address("买家", "13800000000", "610431", "徐杨村")
_keys = itertools.count(1)
units = st.integers(0, 2)


class Money(RuleBasedStateMachine):
    connection: Connection

    orders = Bundle("orders")

    def __init__(self) -> None:
        super().__init__()
        self.conn = self.connection
        self.tx = self.conn.begin()
        self.now = START
        self.shop_with_an_offer()

    def teardown(self) -> None:
        self.tx.rollback()

    def shop_with_an_offer(self) -> None:
        seeded = shop_with_a_sku(self.conn, at=START, buyers=3, price_cents=PRICE, stock=500)
        self.buyers, self.sku = seeded.buyers, seeded.sku
        # The shop sells through a co-operative (itself), with a split rule of its own.
        self.conn.exec_driver_sql(
            "INSERT INTO split_rules (shop_id, coop_shop_id, updated_at)"
            f" VALUES ({seeded.shop}, {seeded.shop}, '2026-11-24 12:00:00')"
        )
        self.offer = stock.open_offer(
            self.conn,
            sku_id=self.sku,
            price_cents=PRICE,
            quantity=200,
            per_buyer_limit=200,
            ends_at=None,
            sold_by=placing.Attribution(None, seeded.buyers[0], 7, 1500),
            now=START,
        )

    @initialize(target=orders)
    def a_received_order(self) -> int | None:
        """An order received at the start: a week on, its money may be released and paid
        out, and refunds after release are within reach of a few steps."""
        order = self.place_and_pay(buyer=1, offered=1, plain=1)
        self.deliver(order)
        self.confirm(order)
        return order

    def _try(self, fn, **kwargs):  # type: ignore[no-untyped-def]
        try:
            with self.conn.begin_nested():
                return fn(self.conn, **kwargs)
        except OriginliveError:
            return None

    @rule(
        target=orders, buyer=st.integers(0, 2), offered=st.integers(0, 2), plain=st.integers(0, 2)
    )
    def place_and_pay(self, buyer: int, offered: int, plain: int) -> int | None:
        lines = []
        if offered:
            lines.append(placing.Line(self.offer, None, offered))
        if plain or not lines:
            lines.append(placing.Line(None, self.sku, plain or 1))
        cmd = placing.PlaceOrder(
            self.buyers[buyer],
            f"k{next(_keys)}",
            tuple(lines),
            ADDRESS,
            self.now,
            timedelta(hours=1),
        )
        placed = self._try(bulk.place_one, cmd=cmd)
        if placed is None:
            return None
        order_id = int(placed.order["id"])
        token = f"t{order_id}"
        payment = records.open_payment(
            self.conn, order_id=order_id, provider="sandbox", checkout_token=token, now=self.now
        )
        records.settle(
            self.conn,
            provider="sandbox",
            event_id=f"e{order_id}",
            payment_id=payment,
            succeeded=True,
            amount_cents=placed.order["total_cents"],
            currency="CNY",
            refund_ref=f"r{order_id}",
            now=self.now,
        )
        return order_id

    @rule(order=orders, whole=st.booleans(), fen=st.integers(1, 2000))
    def refund(self, order: int | None, whole: bool, fen: int) -> None:
        if order is None:
            return
        paid, refunded = self.conn.execute(
            select(Order.total_cents, Order.refunded_cents).where(Order.id == order)
        ).one()
        amount = paid - refunded if whole else min(fen, paid - refunded)
        if amount > 0:
            self._try(
                records.refund,
                order_id=order,
                amount_cents=amount,
                reason="坏果",
                actor_id=self.buyers[0],
                provider_ref=f"refund-{next(_keys)}",
                now=self.now,
            )

    @rule(order=orders)
    def deliver(self, order: int | None) -> None:
        if order is None:
            return
        for allowed, to in (
            (OrderStatus.PAID, OrderStatus.SHIPPED),
            (OrderStatus.SHIPPED, OrderStatus.DELIVERED),
        ):
            self._try(
                stock.transition,
                order_id=order,
                allowed=(allowed,),
                to=to,
                actor_id=None,
                now=self.now,
            )

    @rule(order=orders)
    def confirm(self, order: int | None) -> None:
        if order is not None:
            self._try(
                stock.transition,
                order_id=order,
                allowed=(OrderStatus.SHIPPED, OrderStatus.DELIVERED),
                to=OrderStatus.COMPLETED,
                actor_id=None,
                now=self.now,
            )

    @rule(days=st.sampled_from([0.5, 3, 6.5, 8]))
    def time_passes(self, days: float) -> None:
        """Time passes, and the server's settlement runs."""
        self.now += timedelta(days=days)
        self.settle()

    @rule()
    def settle(self) -> None:
        while settlement.settle_batch(self.conn, now=self.now, policy=POLICY, limit=3).anything:
            pass

    @rule(share=st.sampled_from([0.5, 1.0, 1.5]), paid=st.booleans())
    def pay_out(self, share: float, paid: bool) -> None:
        """An account with money available is paid part or all of it (more is refused and
        writes nothing); the bank says paid or failed (the payout reversed)."""
        available = {
            name: fen
            for name, fen in ledger.balances(self.conn, prefix="").items()
            if name.endswith(":available") and not name.startswith("platform:") and fen > 0
        }
        if not available:
            return
        name = min(available)
        made = self._try(
            payouts.request,
            account=name,
            amount_fen=max(int(available[name] * share), 1),
            provider="sandbox",
            key=f"p{next(_keys)}",
            now=self.now,
        )
        if made is None:
            assert share > 1  # only more than is available is refused
            return
        self._try(
            payouts.apply,
            provider="sandbox",
            event_id=f"ev{made.payout_id}",
            payout_id=made.payout_id,
            paid=paid,
            amount_fen=max(int(available[name] * share), 1),
            currency="CNY",
            now=self.now,
        )

    @rule()
    def settle_again_changes_nothing(self) -> None:
        self.settle()
        before = self.conn.execute(select(func.count()).select_from(JournalEntry)).scalar()
        self.settle()
        after = self.conn.execute(select(func.count()).select_from(JournalEntry)).scalar()
        assert before == after

    @invariant()
    def the_book_balances(self) -> None:
        if not hasattr(self, "offer"):
            return
        report = ledger.verify(self.conn)
        assert report.ok, report
        assert sum(report.money_in.values()) == sum(report.held.values()) + sum(
            report.paid_out.values()
        )

    @invariant()
    def each_order_holds_what_was_paid_less_refunds(self) -> None:
        if not hasattr(self, "offer"):
            return
        money = settlement.order_money(
            self.conn, [o for (o,) in self.conn.execute(select(Order.id)).all()]
        )
        posted_refunds = {
            key: n
            for key, n in self.conn.execute(
                select(JournalEntry.idempotency_key, func.count()).group_by(
                    JournalEntry.idempotency_key
                )
            ).all()
        }
        for order_id, held in money.items():
            if not held:
                continue  # not captured yet
            paid = self.conn.execute(select(Order.total_cents).where(Order.id == order_id)).scalar()
            refunds = self.conn.execute(
                select(Refund.id, Refund.amount_cents).where(Refund.order_id == order_id)
            ).all()
            refunded = sum(fen for rid, fen in refunds if f"refund:{rid}" in posted_refunds)
            assert sum(held.values()) == paid - refunded, (order_id, held, paid, refunded)

    @invariant()
    def nothing_is_available_before_receipt_and_after_sales(self) -> None:
        if not hasattr(self, "offer"):
            return
        released = self.conn.execute(
            select(JournalEntry.ref, JournalEntry.at).where(JournalEntry.kind == EntryKind.RELEASE)
        ).all()
        for ref, at in released:
            order_id = int(ref.split(":")[1])
            received = self.conn.execute(
                select(func.max(OrderEvent.created_at)).where(
                    OrderEvent.order_id == order_id, OrderEvent.to_status == OrderStatus.COMPLETED
                )
            ).scalar()
            assert received is not None, ref
            assert _utc(received) + POLICY.after_sales <= _utc(at), (ref, received, at)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _run(connection: Connection) -> None:
    Money.connection = connection
    run_state_machine_as_test(
        Money,
        settings=settings(
            max_examples=30,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


async def test_the_money_balances(database_url: str) -> None:
    await on_writer_connection(database_url, _run)
