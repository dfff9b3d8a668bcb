"""Payouts: the rules that make, settle and list them, and the run that pays every account.

The rules take a synchronous ``Connection`` and run in the order writer (as settlement does:
on SQLite every posting goes through its one connection), which commits before it answers.
A payout is made in one transaction: its row first, then the account's balance read, then its
entry. The row comes first because of ``uq_payouts_open_account``: a second payout of the same
account waits there for the first's transaction to end and then is refused (409), so that it
never spends a balance read before the first was posted. After the commit the provider is asked
to pay (``send``); its answer comes back by a signed webhook (``apply``).

A refund after release may leave an account below zero (settlement nets it against later
earnings): it is never paid while it is, and a run pays each account at most once a period
(the key ``run:{period}:{account}``), so a failed payout waits for the next period rather than
being tried again and again.
"""

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as server_insert
from sqlalchemy.dialects.sqlite import insert as embedded_insert

from originlive.batching import Runner
from originlive.db import utcnow
from originlive.errors import Conflict, InvalidInput, NotFound, OriginliveError
from originlive.ledger import service as ledger
from originlive.ledger.accounts import Holder, account, parse
from originlive.ledger.models import EntryKind, JournalEntry, Posting
from originlive.ledger.payouts.models import Payout, PayoutEvent, PayoutStatus

log = logging.getLogger(__name__)

PAYABLE = (Holder.SHOP, Holder.ANCHOR, Holder.STATION, Holder.COOP)
FIRST_CHECK_SECONDS = 300  # a server's first look for a run due, after it starts
CHECK_SECONDS = 3600  # then hourly: a period's run is made by the first look within it


class NotAvailable(OriginliveError):
    status = 422
    title = "Not available"
    slug = "not-available"


class PayoutUnderWay(Conflict):
    """The account has a payout its provider has not answered yet: one at a time."""


class KeyReused(OriginliveError):
    status = 422
    title = "Idempotency key reused"
    slug = "idempotency-key-reused"

    def __init__(self) -> None:
        super().__init__("This Idempotency-Key was used for another payout; use a new key.")


@dataclass(frozen=True)
class Transfer:
    """A payout as its provider is told of it."""

    id: int
    account: str
    amount_fen: int
    currency: str
    key: str


@dataclass(frozen=True)
class Requested:
    """A payout's id, and whether this call made it (False: its key had made it already)."""

    payout_id: int
    new: bool


class PayoutProvider(Protocol):
    """Where payouts are sent: a bank or a wallet's API; its answer comes by webhook."""

    name: str

    async def send(self, transfer: Transfer) -> str:
        """Ask for the transfer (safe to repeat: the provider keys it by ``transfer.key``);
        returns the provider's reference."""
        ...


def payable(name: str) -> str:
    """The account's name if it is one payouts are made from (``shop:12:available``); else
    ``InvalidInput``."""
    parsed = parse(name)
    if parsed.holder not in PAYABLE or parsed.bucket != "available":
        raise InvalidInput(
            f"{name!r} is not an account paid out: a shop's, anchor's, station's or"
            " co-operative's available account.",
            field="account",
        )
    return name


def ref(payout_id: int) -> str:
    return f"payout:{payout_id}"


# The rules, in the writer


def request(
    conn: Connection,
    *,
    account: str,
    amount_fen: int,
    provider: str,
    key: str,
    now: datetime,
    actor_id: int | None = None,
    currency: str = ledger.CNY,
) -> Requested:
    """Make a payout of ``amount_fen`` from the account, at most its available balance; returns
    its id and whether it is new (the first payout's again for its key and figures)."""
    payable(account)
    if not 0 < amount_fen <= ledger.MAX_AMOUNT_FEN:
        raise InvalidInput("A payout is of a positive amount.", field="amount_fen")
    known = _by_key(conn, key)
    if known is not None:
        return _same(known, account=account, amount_fen=amount_fen)
    upsert = embedded_insert if conn.dialect.name == "sqlite" else server_insert
    made = conn.execute(
        upsert(Payout)
        .values(
            account=account,
            amount_fen=amount_fen,
            currency=currency,
            provider=provider,
            status=PayoutStatus.REQUESTED,
            idempotency_key=key,
            created_at=now,
        )
        .on_conflict_do_nothing()
        .returning(Payout.id)
    ).scalar()
    if made is None:  # its key taken meanwhile, or the account's open payout
        known = _by_key(conn, key)
        if known is not None:
            return _same(known, account=account, amount_fen=amount_fen)
        raise PayoutUnderWay(f"A payout of {account} is under way; wait for its answer.")
    held = ledger.balance(conn, account, currency=currency)
    if amount_fen > held:  # the writer rolls the row back with the refusal
        raise NotAvailable(
            f"{account} has {max(held, 0)} fen available, less than the {amount_fen} asked for."
        )
    legs = (ledger.Leg(account, -amount_fen), ledger.Leg(_clearing(provider), amount_fen))
    entry = ledger.Entry(EntryKind.PAYOUT, ref(made), f"payout:{made}", legs, now, currency)
    ledger.post(conn, [entry])
    _event(conn, made, None, PayoutStatus.REQUESTED, now=now, actor_id=actor_id)
    return Requested(int(made), True)


def _clearing(provider: str) -> str:
    return account(Holder.PAYOUTS, provider)


def _by_key(conn: Connection, key: str) -> Any:
    return conn.execute(
        select(Payout.id, Payout.account, Payout.amount_fen).where(Payout.idempotency_key == key)
    ).one_or_none()


def _same(known: Any, *, account: str, amount_fen: int) -> Requested:
    if (known.account, known.amount_fen) != (account, amount_fen):
        raise KeyReused()
    return Requested(int(known.id), False)


def _event(
    conn: Connection,
    payout_id: int,
    before: PayoutStatus | None,
    after: PayoutStatus,
    *,
    now: datetime,
    event_id: str | None = None,
    note: str | None = None,
    actor_id: int | None = None,
) -> None:
    conn.execute(
        insert(PayoutEvent).values(
            payout_id=payout_id,
            from_status=before,
            to_status=after,
            provider_event_id=event_id,
            note=note,
            actor_id=actor_id,
            created_at=now,
        )
    )


def sent(conn: Connection, *, payout_id: int, provider_ref: str) -> None:
    """Record the provider's reference of a payout it accepted."""
    conn.execute(
        update(Payout)
        .where(Payout.id == payout_id, Payout.provider_ref.is_(None))
        .values(provider_ref=provider_ref)
    )


def apply(
    conn: Connection,
    *,
    provider: str,
    event_id: str,
    payout_id: int,
    paid: bool,
    amount_fen: int,
    currency: str,
    now: datetime,
    note: str | None = None,
) -> str:
    """The provider's word on a payout: ``"paid"``, ``"failed"`` (its entry reversed, the money
    available again) or ``"duplicate"`` when the payout was answered already."""
    payout = conn.execute(
        select(Payout.amount_fen, Payout.currency, Payout.status).where(
            Payout.id == payout_id, Payout.provider == provider
        )
    ).one_or_none()
    if payout is None:
        raise NotFound(f"No payout {payout_id} through {provider}.")
    if (payout.amount_fen, payout.currency) != (amount_fen, currency):
        raise InvalidInput(f"The event's amount is not payout {payout_id}'s.", field="amount_fen")
    after = PayoutStatus.PAID if paid else PayoutStatus.FAILED
    # Only the first answer changes anything: the same event again, or another, finds the
    # payout answered already.
    changed = conn.execute(
        update(Payout)
        .where(Payout.id == payout_id, Payout.status == PayoutStatus.REQUESTED)
        .values(status=after, settled_at=now)
        .returning(Payout.id)
    ).scalar()
    if changed is None:
        return "duplicate"
    if not paid:
        entry_id = conn.execute(
            select(JournalEntry.id).where(JournalEntry.idempotency_key == f"payout:{payout_id}")
        ).scalar_one()
        ledger.reverse(conn, entry_id, key=f"payout-failed:{payout_id}", at=now)
    _event(conn, payout_id, PayoutStatus.REQUESTED, after, now=now, event_id=event_id, note=note)
    return after.value


# A run


def period_of(now: datetime, interval: timedelta) -> int:
    """The number of the run's period ``now`` falls in, counted from 1970-01-01 UTC."""
    return (now - datetime(1970, 1, 1, tzinfo=UTC)) // interval


def due(conn: Connection, *, minimum_fen: int) -> dict[str, int]:
    """Each payable account's available balance, of those at ``minimum_fen`` or more."""
    found: dict[str, int] = {}
    for holder in PAYABLE:
        for name, fen in ledger.balances(conn, prefix=f"{holder}:").items():
            if name.endswith(":available") and fen >= max(minimum_fen, 1):
                found[name] = fen
    return found


def unsent(conn: Connection, *, provider: str) -> list[Transfer]:
    """Payouts made but not yet accepted by their provider (a send that failed, or never
    ran): sent again by the next run."""
    rows = conn.execute(
        select(
            Payout.id, Payout.account, Payout.amount_fen, Payout.currency, Payout.idempotency_key
        )
        .where(
            Payout.status == PayoutStatus.REQUESTED,
            Payout.provider == provider,
            Payout.provider_ref.is_(None),
        )
        .order_by(Payout.id)
    ).all()
    return [Transfer(*row) for row in rows]


def transfer_of(conn: Connection, *, payout_id: int) -> Transfer:
    row = conn.execute(
        select(
            Payout.id, Payout.account, Payout.amount_fen, Payout.currency, Payout.idempotency_key
        ).where(Payout.id == payout_id)
    ).one()
    return Transfer(*row)


@dataclass
class RunDone:
    """What a run made: payouts, and accounts left for another time (under way, or spent)."""

    paid: int = 0
    fen: int = 0
    skipped: int = 0


async def make(
    writer: Runner,
    provider: PayoutProvider,
    *,
    account: str,
    amount_fen: int,
    key: str,
    actor_id: int | None = None,
) -> Requested:
    """Make a payout and send it to the provider once committed; returns its id and whether
    it is new."""
    made: Requested = await writer.run(
        request,
        account=account,
        amount_fen=amount_fen,
        provider=provider.name,
        key=key,
        now=utcnow(),
        actor_id=actor_id,
    )
    if made.new:
        await send(writer, provider, payout_id=made.payout_id)
    return made


async def send(writer: Runner, provider: PayoutProvider, *, payout_id: int) -> None:
    """Ask the provider to pay a payout; a failure is logged and left for the next run."""
    transfer = await writer.run(transfer_of, payout_id=payout_id)
    try:
        reference = await provider.send(transfer)
    except Exception:
        log.exception("payout %s not sent to %s; the next run sends it", payout_id, provider.name)
        return
    await writer.run(sent, payout_id=payout_id, provider_ref=reference)


async def run(
    writer: Runner,
    provider: PayoutProvider,
    *,
    minimum_fen: int,
    interval: timedelta,
    now: datetime | None = None,
) -> RunDone:
    """Pay every payable account holding ``minimum_fen`` or more, once per period of
    ``interval``; send what earlier sends left unsent."""
    now = now or utcnow()
    period = period_of(now, interval)
    done = RunDone()
    for transfer in await writer.run(unsent, provider=provider.name):
        await send(writer, provider, payout_id=transfer.id)
    for name, fen in sorted((await writer.run(due, minimum_fen=minimum_fen)).items()):
        key = f"run:{period}:{name}"
        try:
            made = await make(writer, provider, account=name, amount_fen=fen, key=key)
        except (PayoutUnderWay, NotAvailable, KeyReused):
            made = None  # under way, spent since it was read, or paid this period already
        if made is None or not made.new:
            done.skipped += 1
            continue
        done.paid += 1
        done.fen += fen
    return done


async def run_forever(
    writer: Runner, provider: PayoutProvider, *, minimum_fen: int, interval: timedelta
) -> None:
    """Look for a run due every hour (the first a few minutes after start); each account is
    paid once a period however many processes look. A failure is logged, never fatal."""
    await asyncio.sleep(FIRST_CHECK_SECONDS)
    while True:
        try:
            done = await run(writer, provider, minimum_fen=minimum_fen, interval=interval)
            if done.paid:
                log.info("payout run: %s", done)
        except Exception:
            log.exception("payout run failed")
        await asyncio.sleep(CHECK_SECONDS)


# Reading


def list_payouts(
    conn: Connection,
    *,
    payout_id: int | None = None,
    account: str | None = None,
    prefix: str | None = None,
    status: PayoutStatus | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Any]:
    """Payouts, newest first: one, of one account, or of the accounts starting with
    ``prefix``."""
    query = select(Payout).order_by(Payout.id.desc()).limit(limit).offset(offset)
    if payout_id is not None:
        query = query.where(Payout.id == payout_id)
    if account is not None:
        query = query.where(Payout.account == account)
    if prefix is not None:
        query = query.where(Payout.account.startswith(prefix, autoescape=True))
    if status is not None:
        query = query.where(Payout.status == status)
    return list(conn.execute(query).all())


@dataclass(frozen=True)
class Line:
    """One posting of an account, with its entry's kind and reference."""

    entry_id: int
    at: datetime
    kind: EntryKind
    ref: str
    account: str
    amount_fen: int


def lines(
    conn: Connection,
    *,
    accounts: Sequence[str],
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
    newest_first: bool = False,
) -> list[Line]:
    """The accounts' postings, in the order they happened (or newest first), within
    ``[since, until)`` if given."""
    query = (
        select(
            Posting.entry_id,
            Posting.at,
            JournalEntry.kind,
            JournalEntry.ref,
            Posting.account,
            Posting.amount_fen,
        )
        .join(JournalEntry, JournalEntry.id == Posting.entry_id)
        .where(Posting.account.in_(accounts))
    )
    if since is not None:
        query = query.where(Posting.at >= since)
    if until is not None:
        query = query.where(Posting.at < until)
    order = (Posting.at.desc(), Posting.id.desc()) if newest_first else (Posting.at, Posting.id)
    query = query.order_by(*order)
    if limit is not None:
        query = query.limit(limit)
    return [Line(*row) for row in conn.execute(query).all()]


@dataclass(frozen=True)
class Earnings:
    """A holder's money: pending, available, under way to them, paid out, and recent lines."""

    pending_fen: int
    available_fen: int
    under_way_fen: int
    paid_out_fen: int
    recent: list[Line]


def earnings(conn: Connection, *, holder: Holder, holder_id: int, recent: int = 20) -> Earnings:
    """What the holder (a shop, an anchor) has earned, holds and has been paid."""
    pending, available = (account(holder, b, holder_id) for b in ("pending", "available"))
    held = ledger.balances(conn, accounts=[pending, available])
    sums = dict(
        conn.execute(
            select(Payout.status, func.sum(Payout.amount_fen))
            .where(Payout.account == available)
            .group_by(Payout.status)
        ).all()
    )
    return Earnings(
        pending_fen=held[pending],
        available_fen=held[available],
        under_way_fen=int(sums.get(PayoutStatus.REQUESTED, 0)),
        paid_out_fen=int(sums.get(PayoutStatus.PAID, 0)),
        recent=lines(conn, accounts=[pending, available], limit=recent, newest_first=True),
    )
