"""The money's life, posted to the ledger: captures, refunds, confirmations and releases.

A settlement run (``settle``) looks for what happened since the last and posts it, a batch
per transaction, each entry under an idempotency key, so that a run killed half-way leaves
whole entries only and the next run posts the rest and nothing twice:

1. **Captures** (``capture:{payment}``): each payment that succeeded is split
   (``split.shares``) into pending accounts: the shop's, the platform's, the co-operative's
   and each anchor's. A provider's event delivered twice makes one payment, hence one entry.
2. **Refunds** (``refund:{refund}``): before release a refund takes back from the order's
   pending accounts; after release from the available accounts its release paid (station
   fees stay with the stations, who did the work), which may go negative: an account below
   zero is netted against later earnings and cannot be paid out until positive again.
   Either way in proportion to each party's part, so commission is clawed back with it.
3. **Confirmations**: a delivered order the buyer has not confirmed is confirmed for them
   ``auto_confirm`` after delivery.
4. **Releases** (``release:{order}``): once an order is confirmed and its after-sales window
   has closed, with no refund asked for, what is left of its pending money becomes available,
   and the delivery nodes that handled its parcels are paid their fee out of the shop's part.
5. **Samples** (``sample:{request}``): a free sample sent under a plan that takes its cost
   from commission moves the SKU's price from the anchor's available money to the shop's.

Every entry of an order carries the reference ``order:{id}``, so an order's money can be read
back from the ledger alone (``order_money``). Nothing is payable before step 4 (invariant 10).
"""

import asyncio
import dataclasses
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BindParameter, Connection, bindparam, text

from originlive import rawsql
from originlive.batching import Runner
from originlive.db import utcnow
from originlive.ledger import service as ledger
from originlive.ledger.accounts import Holder, account, parse
from originlive.ledger.models import EntryKind
from originlive.ledger.settlement import split
from originlive.orders.models import OrderStatus
from originlive.payments.models import PaymentStatus
from originlive.settings import Settings

log = logging.getLogger(__name__)

AUTO_CONFIRMED = "Receipt confirmed automatically."
SETTLE_LOCK = 0x5E771E  # PostgreSQL's advisory lock of settlement runs
CAPTURED = (
    PaymentStatus.SUCCEEDED.value,
    PaymentStatus.PARTIALLY_REFUNDED.value,
    PaymentStatus.REFUNDED.value,
)


@dataclass(frozen=True)
class Policy:
    """The deployment's split and windows; shops may override the split (``split_rules``)."""

    rule: split.SplitRule
    auto_confirm: timedelta
    after_sales: timedelta


@dataclass
class Settled:
    """What a run (or one batch of it) posted or changed."""

    captured: int = 0
    refunded: int = 0
    confirmed: int = 0
    released: int = 0
    samples: int = 0  # samples charged to anchors' commission

    def __add__(self, other: "Settled") -> "Settled":
        return Settled(*(a + b for a, b in zip(_counts(self), _counts(other), strict=True)))

    @property
    def anything(self) -> bool:
        return any(_counts(self))


def _counts(s: Settled) -> tuple[int, ...]:
    return dataclasses.astuple(s)


def ref(order_id: int) -> str:
    return f"order:{order_id}"


def settle_batch(conn: Connection, *, now: datetime, policy: Policy, limit: int = 2000) -> Settled:
    """One batch of each step, in this transaction; a run repeats it until nothing is left.

    On PostgreSQL one process settles at a time (the others' batches find the lock taken and
    do nothing); on SQLite the writer's lock already makes them take turns.
    """
    done = Settled()
    if conn.dialect.name == "postgresql" and not _locked(conn):
        return done
    done.captured = _capture(conn, now=now, policy=policy, limit=limit)
    done.refunded = _refund(conn, now=now, limit=limit)
    done.confirmed = _confirm(conn, now=now, policy=policy, limit=limit)
    done.released = _release(conn, now=now, policy=policy, limit=limit)
    done.samples = _charge_samples(conn, now=now, limit=limit)
    return done


def _locked(conn: Connection) -> bool:
    return bool(_query(conn, "SELECT pg_try_advisory_xact_lock(:key)", key=SETTLE_LOCK).scalar())


# 1. Captures


def _capture(conn: Connection, *, now: datetime, policy: Policy, limit: int) -> int:
    rows = _query(
        conn,
        "SELECT p.id, p.order_id, p.amount_cents, p.currency, o.shop_id,"
        " (SELECT min(e.created_at) FROM payment_events AS e WHERE e.payment_id = p.id"
        " AND e.to_status = :succeeded) FROM payments AS p JOIN orders AS o ON o.id = p.order_id"
        " WHERE p.status IN (:s1, :s2, :s3) AND NOT EXISTS (SELECT 1 FROM journal_entries AS j"
        " WHERE j.idempotency_key = 'capture:' || CAST(p.id AS TEXT)) ORDER BY p.id LIMIT :limit",
        succeeded=PaymentStatus.SUCCEEDED.value,
        s1=CAPTURED[0],
        s2=CAPTURED[1],
        s3=CAPTURED[2],
        limit=limit,
    ).fetchall()
    if not rows:
        return 0
    lines = _lines(conn, [r[1] for r in rows])
    rules = rules_of(conn, {r[4] for r in rows}, policy.rule)
    entries = []
    for payment_id, order_id, amount, currency, shop_id, at in rows:
        rule = rules[shop_id]
        shares = split.shares(total_fen=amount, lines=lines.get(order_id, []), rule=rule)
        legs = split.pending_legs(shop_id=shop_id, shares=shares, rule=rule)
        legs[split.CLEARING] = -amount
        entries.append(
            ledger.Entry(
                kind=EntryKind.CAPTURE,
                ref=ref(order_id),
                key=f"capture:{payment_id}",
                legs=_legs(legs),
                at=rawsql.from_db_time(at) if at is not None else now,
                currency=currency,
            )
        )
    ledger.post(conn, entries)
    return len(entries)


def _lines(conn: Connection, order_ids: Sequence[int]) -> dict[int, list[split.SoldLine]]:
    lines: dict[int, list[split.SoldLine]] = defaultdict(list)
    for order_id, amount, anchor_id, rate in _query(
        conn,
        "SELECT order_id, unit_price_cents * quantity, anchor_id, commission_bp"
        " FROM order_items WHERE order_id IN :ids ORDER BY id",
        ids=order_ids,
    ).fetchall():
        lines[order_id].append(split.SoldLine(amount, anchor_id, rate))
    return lines


def rules_of(
    conn: Connection, shop_ids: Iterable[int], default: split.SplitRule
) -> dict[int, split.SplitRule]:
    """Each shop's split: the deployment's, with the shop's own rule over it where it has one
    (a None column keeps the deployment's figure)."""
    rules = dict.fromkeys(shop_ids, default)
    if not rules:
        return rules
    for shop_id, fee, station, coop_bp, coop_id in _query(
        conn,
        "SELECT shop_id, platform_fee_bp, station_fee_fen, coop_share_bp, coop_shop_id"
        " FROM split_rules WHERE shop_id IN :ids",
        ids=list(rules),
    ).fetchall():
        rules[shop_id] = split.SplitRule(
            platform_fee_bp=default.platform_fee_bp if fee is None else fee,
            station_fee_fen=default.station_fee_fen if station is None else station,
            coop_share_bp=default.coop_share_bp if coop_bp is None else coop_bp,
            coop_id=coop_id,
        )
    return rules


# 2. Refunds


def _refund(conn: Connection, *, now: datetime, limit: int) -> int:
    rows = _query(
        conn,
        "SELECT r.id, r.order_id, r.amount_cents, r.created_at, p.currency FROM refunds AS r"
        " JOIN payments AS p ON p.id = r.payment_id WHERE NOT EXISTS (SELECT 1"
        " FROM journal_entries AS j WHERE j.idempotency_key = 'refund:' || CAST(r.id AS TEXT))"
        # A refund whose payment is not captured yet waits for its capture (the next batch).
        " AND EXISTS (SELECT 1 FROM journal_entries AS j"
        " WHERE j.idempotency_key = 'capture:' || CAST(p.id AS TEXT))"
        " ORDER BY r.id LIMIT :limit",
        limit=limit,
    ).fetchall()
    if not rows:
        return 0
    order_ids = sorted({r[1] for r in rows})
    released = _released(conn, order_ids)
    holdings = order_money(conn, order_ids)
    entries = []
    for refund_id, order_id, amount, at, currency in rows:
        held = holdings[order_id]
        bucket = "available" if order_id in released else "pending"
        # After release, the stations keep what they earned: the others give back.
        from_ = {
            name: fen
            for name, fen in held.items()
            if name.endswith(":" + bucket) and parse(name).holder is not Holder.STATION
        }
        taken = split.allocate(amount, from_)
        if not taken:
            continue  # nothing of the order is held any more (it cannot happen in a sane book)
        for name, fen in taken.items():
            held[name] -= fen
        legs = {name: -fen for name, fen in taken.items()}
        legs[split.CLEARING] = sum(taken.values())
        entries.append(
            ledger.Entry(
                kind=EntryKind.REFUND,
                ref=ref(order_id),
                key=f"refund:{refund_id}",
                legs=_legs(legs),
                at=rawsql.from_db_time(at),
                currency=currency,
            )
        )
    ledger.post(conn, entries)
    return len(entries)


def _released(conn: Connection, order_ids: Sequence[int]) -> set[int]:
    return {
        int(key.split(":")[1])
        for (key,) in _query(
            conn,
            "SELECT idempotency_key FROM journal_entries WHERE idempotency_key IN :keys",
            keys=[f"release:{i}" for i in order_ids],
        ).fetchall()
    }


def order_money(conn: Connection, order_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """What each order's entries have put in each account (but the clearing account), in fen."""
    money: dict[int, dict[str, int]] = {i: defaultdict(int) for i in order_ids}
    if not order_ids:
        return money
    for order_ref, name, fen in _query(
        conn,
        "SELECT j.ref, p.account, sum(p.amount_fen) FROM journal_entries AS j"
        " JOIN postings AS p ON p.entry_id = j.id WHERE j.ref IN :refs"
        " GROUP BY j.ref, p.account",
        refs=[ref(i) for i in order_ids],
    ).fetchall():
        if name != split.CLEARING:
            money[int(order_ref.split(":")[1])][name] += int(fen)
    return money


# 3. Confirmations


def _confirm(conn: Connection, *, now: datetime, policy: Policy, limit: int) -> int:
    """Confirm receipt for buyers who did not, ``auto_confirm`` after delivery."""
    due = [
        r[0]
        for r in _query(
            conn,
            "SELECT o.id FROM orders AS o WHERE o.status = :delivered AND (SELECT max(created_at)"
            " FROM order_events AS e WHERE e.order_id = o.id AND e.to_status = :delivered)"
            " <= :cutoff ORDER BY o.id LIMIT :limit",
            delivered=OrderStatus.DELIVERED.value,
            cutoff=rawsql.db_time(conn, now - policy.auto_confirm),
            limit=limit,
        ).fetchall()
    ]
    if not due:
        return 0
    moment = rawsql.db_time(conn, now)
    confirmed = [
        r[0]
        for r in _query(
            conn,
            "UPDATE orders SET status = :completed, updated_at = :now WHERE id IN :ids"
            " AND status = :delivered RETURNING id",
            ids=due,
            completed=OrderStatus.COMPLETED.value,
            delivered=OrderStatus.DELIVERED.value,
            now=moment,
        ).fetchall()
    ]
    _query(
        conn,
        "INSERT INTO order_events (order_id, from_status, to_status, actor_id, note, created_at)"
        " SELECT id, :delivered, :completed, NULL, :note, :now FROM orders WHERE id IN :ids",
        ids=confirmed,
        completed=OrderStatus.COMPLETED.value,
        delivered=OrderStatus.DELIVERED.value,
        note=AUTO_CONFIRMED,
        now=moment,
    )
    return len(confirmed)


# 4. Releases


def _release(conn: Connection, *, now: datetime, policy: Policy, limit: int) -> int:
    rows = _query(
        conn,
        "SELECT o.id, o.shop_id, o.currency FROM orders AS o WHERE o.status = :completed"
        " AND (SELECT max(created_at) FROM order_events AS e WHERE e.order_id = o.id"
        " AND e.to_status = :completed) <= :cutoff AND NOT EXISTS (SELECT 1"
        " FROM journal_entries AS j WHERE j.idempotency_key = 'release:' || CAST(o.id AS TEXT))"
        " AND EXISTS (SELECT 1 FROM journal_entries AS j WHERE j.ref = 'order:' ||"
        " CAST(o.id AS TEXT) AND j.kind = :capture) ORDER BY o.id LIMIT :limit",
        completed=OrderStatus.COMPLETED.value,
        cutoff=rawsql.db_time(conn, now - policy.after_sales),
        capture=EntryKind.CAPTURE.value,
        limit=limit,
    ).fetchall()
    if not rows:
        return 0
    order_ids = [r[0] for r in rows]
    holdings = order_money(conn, order_ids)
    handlers = _handlers(conn, order_ids)
    rules = rules_of(conn, {r[1] for r in rows}, policy.rule)
    entries = []
    for order_id, shop_id, currency in rows:
        legs = release_legs(
            shop_id=shop_id,
            held=holdings[order_id],
            parcels=handlers.get(order_id, []),
            rule=rules[shop_id],
        )
        if legs:
            entries.append(
                ledger.Entry(
                    kind=EntryKind.RELEASE,
                    ref=ref(order_id),
                    key=f"release:{order_id}",
                    legs=_legs(legs),
                    at=now,
                    currency=currency,
                )
            )
    ledger.post(conn, entries)
    return len(entries)


def release_legs(
    *, shop_id: int, held: dict[str, int], parcels: Sequence[Sequence[int]], rule: split.SplitRule
) -> dict[str, int]:
    """Each pending account's money of the order to its available account, the stations'
    fees out of the shop's part (never more than it holds)."""
    legs: dict[str, int] = defaultdict(int)
    for name, fen in held.items():
        if name.endswith(":pending") and fen:
            legs[name] -= fen
            legs[split.available(name)] += fen
    shop = account(Holder.SHOP, "available", shop_id)
    room = max(legs.get(shop, 0), 0)
    for node_id, fee in split.station_fees(parcels=parcels, fee_fen=rule.station_fee_fen).items():
        fee = min(fee, room)
        room -= fee
        if fee:
            legs[shop] -= fee
            legs[account(Holder.STATION, "available", node_id)] += fee
    return {name: fen for name, fen in legs.items() if fen}


def _handlers(conn: Connection, order_ids: Sequence[int]) -> dict[int, list[list[int]]]:
    """The nodes that scanned each parcel of these orders, in the order they first did."""
    parcels: dict[tuple[int, int], list[int]] = {}
    for order_id, parcel_id, node_id in _query(
        conn,
        "SELECT p.order_id, p.id, t.node_id FROM parcels AS p JOIN tracking_events AS t"
        " ON t.parcel_id = p.id WHERE p.order_id IN :ids"
        " AND t.node_id IS NOT NULL ORDER BY p.id, t.happened_at, t.id",
        ids=order_ids,
    ).fetchall():
        nodes = parcels.setdefault((order_id, parcel_id), [])
        if node_id not in nodes:
            nodes.append(node_id)
    handled: dict[int, list[list[int]]] = defaultdict(list)
    for (order_id, _parcel), nodes in parcels.items():
        handled[order_id].append(nodes)
    return handled


# 5. Samples whose plan takes their cost from commission


def _charge_samples(conn: Connection, *, now: datetime, limit: int) -> int:
    """A free sample sent to an anchor under a plan that says so costs the anchor its price
    (the SKU's at the time of this run) out of their commission: from the anchor's available
    money to the shop's, which may take the anchor below zero until later earnings net it."""
    rows = _query(
        conn,
        "SELECT s.id, s.anchor_id, s.shop_id, k.price_cents, k.currency FROM sample_requests"
        " AS s JOIN commission_plans AS p ON p.id = s.plan_id JOIN skus AS k ON k.id = s.sku_id"
        " WHERE s.order_id IS NOT NULL AND p.sample_cost_from_commission = :yes"
        " AND k.price_cents > 0"
        " AND NOT EXISTS (SELECT 1 FROM journal_entries AS j"
        " WHERE j.idempotency_key = 'sample:' || CAST(s.id AS TEXT)) ORDER BY s.id LIMIT :limit",
        yes=True,
        limit=limit,
    ).fetchall()
    entries = [
        ledger.Entry(
            kind=EntryKind.COMMISSION,
            ref=f"sample:{sample_id}",
            key=f"sample:{sample_id}",
            legs=_legs(
                {
                    account(Holder.ANCHOR, "available", anchor_id): -price,
                    account(Holder.SHOP, "available", shop_id): price,
                }
            ),
            at=now,
            currency=currency,
        )
        for sample_id, anchor_id, shop_id, price, currency in rows
    ]
    ledger.post(conn, entries)
    return len(entries)


# Helpers


def _legs(legs: dict[str, int]) -> tuple[ledger.Leg, ...]:
    return tuple(ledger.Leg(name, fen) for name, fen in sorted(legs.items()) if fen)


def _query(conn: Connection, sql: str, **params: Any) -> Any:
    """A statement whose list parameters fill an ``IN :name`` each (off the hot path, unlike
    ``rawsql``: a few statements per batch of thousands)."""
    lists: list[BindParameter[Any]] = [
        bindparam(k, expanding=True) for k, v in params.items() if isinstance(v, list)
    ]
    return conn.execute(text(sql).bindparams(*lists), params)


# Running it


def policy_of(settings: Settings) -> Policy:
    """The deployment's settlement policy, from its settings."""
    return Policy(
        rule=split.SplitRule(
            platform_fee_bp=settings.platform_fee_bp,
            station_fee_fen=settings.station_fee_fen,
            coop_share_bp=settings.coop_share_bp,
        ),
        auto_confirm=timedelta(days=settings.auto_confirm_days),
        after_sales=timedelta(days=settings.after_sales_days),
    )


async def run(
    writer: Runner, *, policy: Policy, now: datetime | None = None, limit: int = 2000
) -> Settled:
    """Settle everything due, a batch per transaction of the order writer, until none is left."""
    total = Settled()
    while True:
        done = await writer.run(settle_batch, now=now or utcnow(), policy=policy, limit=limit)
        total += done
        if not done.anything:
            return total


async def run_forever(writer: Runner, *, policy: Policy, interval_seconds: float) -> None:
    """Settle now and every ``interval_seconds``; a failure is logged, never fatal."""
    while True:
        try:
            done = await run(writer, policy=policy)
            if done.anything:
                log.info("settled: %s", done)
        except Exception:
            log.exception("settlement run failed")
        await asyncio.sleep(interval_seconds)


# What the buyer is shown


@dataclass(frozen=True)
class MoneyParts:
    """Where an order's money goes, in fen: what the split gave each party when the payment
    was captured (or will give, while it is not), and the delivery nodes' fees out of the
    shop's part (an estimate of one parcel's until the release pays them)."""

    total: int
    shop: int
    platform: int
    coop: int
    anchors: int
    stations: int
    settled: bool  # taken from the ledger, not estimated


def where_money_goes(
    conn: Connection, *, order_id: int, shop_id: int, total_fen: int, policy: Policy
) -> MoneyParts:
    held: dict[Holder, int] = defaultdict(int)
    stations: int | None = None
    for kind, name, fen in _query(
        conn,
        "SELECT j.kind, p.account, p.amount_fen FROM journal_entries AS j"
        " JOIN postings AS p ON p.entry_id = j.id WHERE j.ref = :ref AND j.kind IN (:c, :r)",
        ref=ref(order_id),
        c=EntryKind.CAPTURE.value,
        r=EntryKind.RELEASE.value,
    ).fetchall():
        holder = parse(name).holder
        if kind == EntryKind.CAPTURE.value and name != split.CLEARING:
            held[holder] += int(fen)
        elif kind == EntryKind.RELEASE.value and holder is Holder.STATION:
            stations = (stations or 0) + int(fen)
    rule = rules_of(conn, [shop_id], policy.rule)[shop_id]
    settled = bool(held)
    if not settled:
        shares = split.shares(
            total_fen=total_fen, lines=_lines(conn, [order_id])[order_id], rule=rule
        )
        held.update(
            {
                Holder.SHOP: shares.shop,
                Holder.PLATFORM: shares.platform,
                Holder.COOP: shares.coop,
                Holder.ANCHOR: sum(shares.anchors.values()),
            }
        )
    if stations is None:
        stations = min(rule.station_fee_fen, max(held[Holder.SHOP], 0))
    return MoneyParts(
        total=total_fen,
        shop=held[Holder.SHOP] - stations,
        platform=held[Holder.PLATFORM],
        coop=held[Holder.COOP],
        anchors=held[Holder.ANCHOR],
        stations=stations,
        settled=settled,
    )
