"""Posting to the ledger, reversing, balances and the book's check. One copy of each rule.

Every function takes a synchronous SQLAlchemy ``Connection`` inside a transaction (the
embedded writer's on SQLite, ``AsyncConnection.run_sync`` elsewhere); nothing here commits.

``post`` writes many entries with a few statements for the whole batch (``executemany`` on
SQLite, arrays on PostgreSQL), as ``orders/bulk.py`` places orders: settlement posts an
entry of 3-5 legs per order, thousands of orders a second.

Balances. Summing an account's postings costs time in proportion to their number, and the
platform's own accounts (``clearing:payments``, ``platform:fees``) take a posting per order:
for a million, 190 ms on SQLite and 430 ms on PostgreSQL even through an index led by the
account (``bench/ledger.py``, p50). So ``post`` also adds the amounts to ``account_totals`` in
the same transaction, per account and UTC day and per hour, and a balance is the sum of its
days (a row an account a day); as of a moment, the days before it, the hours of its day
before it, and the postings of its last part-hour (through ``ix_postings_at``, time first,
which costs posting far less than an index led by the account). A running total per account
would be one row to read, but every batch of every process would queue on the same row of
``clearing:payments`` to update it, and it would not answer "as of" a moment; a row per day
and hour queues only batches of the same hour, and they take the rows in one order (sorted),
so that they never deadlock.
"""

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select, text, union_all

from originlive import rawsql
from originlive.db import utcnow
from originlive.errors import Conflict, InvalidInput, NotFound, OriginliveError
from originlive.ledger.accounts import Holder, parse
from originlive.ledger.models import AccountTotal, EntryKind, JournalEntry, Posting, Span

CNY = "CNY"
MAX_AMOUNT_FEN = 10**15  # far above any sum of money here, far below BIGINT's end
REPORT_LIMIT = 100  # ids of each kind of fault a report lists


class Unbalanced(OriginliveError):
    status = 422
    title = "Unbalanced entry"
    slug = "unbalanced-entry"


class AlreadyReversed(Conflict):
    """The entry was reversed already, by another entry: an entry is reversed once."""


@dataclass(frozen=True)
class Leg:
    """One posting of an entry: an amount (signed, fen) to an account (``accounts``)."""

    account: str
    amount_fen: int


@dataclass(frozen=True)
class Entry:
    """A journal entry to post; ``key`` makes posting it again do nothing."""

    kind: EntryKind
    ref: str
    key: str
    legs: tuple[Leg, ...]
    at: datetime
    currency: str = CNY
    reverses_id: int | None = None


@dataclass(frozen=True)
class Posted:
    """An entry's id, and whether this call wrote it (False: its key was there already)."""

    entry_id: int
    new: bool


# The rule


def check(entry: Entry) -> None:
    """Refuse an entry the ledger may not hold: unbalanced, empty, or with a bad part."""
    if not entry.legs:
        raise Unbalanced(f"Entry {entry.key!r} has no postings.")
    if not 0 < len(entry.key) <= 120 or len(entry.ref) > 80:
        raise InvalidInput(f"Entry {entry.key!r} has a key or reference too long.", field="key")
    if not (len(entry.currency) == 3 and entry.currency.isascii() and entry.currency.isupper()):
        raise InvalidInput(f"{entry.currency!r} is not a currency code.", field="currency")
    if entry.at.tzinfo is None:
        raise InvalidInput(f"Entry {entry.key!r} has a time without a zone.", field="at")
    for leg in entry.legs:
        parse(leg.account)
        amount = leg.amount_fen
        if type(amount) is not int or amount == 0 or abs(amount) > MAX_AMOUNT_FEN:
            raise InvalidInput(f"{amount!r} is not an amount to post.", field="amount_fen")
    total = sum(leg.amount_fen for leg in entry.legs)
    if total != 0:
        raise Unbalanced(f"Entry {entry.key!r} sums to {total} fen, not zero.")


def mirror(
    entry_id: int, legs: Iterable[Leg], *, key: str, ref: str, at: datetime, currency: str
) -> Entry:
    """The entry that undoes entry ``entry_id`` of these legs: each amount negated."""
    mirrored = tuple(Leg(leg.account, -leg.amount_fen) for leg in legs)
    return Entry(EntryKind.REVERSAL, ref, key, mirrored, at, currency, reverses_id=entry_id)


# Posting


def post(conn: Connection, entries: Sequence[Entry]) -> list[Posted]:
    """Post the entries, each once by its key, with a few statements for all of them; returns
    each one's id and whether it is new. Refuses the whole batch if one entry is unbalanced
    or reverses an entry reversed already."""
    for entry in entries:
        check(entry)
    known = _known_keys(conn, [e.key for e in entries])
    fresh: dict[str, Entry] = {}
    for entry in entries:
        if entry.key not in known:
            fresh.setdefault(entry.key, entry)  # a key twice in the batch: the first
    _refuse_second_reversals(conn, list(fresh.values()))
    written: dict[str, int] = {}
    if fresh:
        writer = _post_embedded if conn.dialect.name == "sqlite" else _post_server
        written = writer(conn, list(fresh.values()))
        _add_to_totals(conn, [fresh[key] for key in written])
        known |= written
        missing = [key for key in fresh if key not in written]
        if missing:  # PostgreSQL: posted meanwhile by another process, or a reversal's
            known |= _known_keys(conn, missing)
            if any(key not in known for key in missing):
                raise AlreadyReversed("An entry of the batch is reversed already.")
    return [Posted(known[e.key], e.key in written and fresh[e.key] is e) for e in entries]


def _known_keys(conn: Connection, keys: list[str]) -> dict[str, int]:
    """The ids of the entries already posted under these keys."""
    if conn.dialect.name == "sqlite":
        sql = (
            "SELECT idempotency_key, id FROM journal_entries"
            " WHERE idempotency_key IN (SELECT value FROM json_each(:keys))"
        )
        rows = rawsql.execute(conn, sql, keys=json.dumps(keys)).fetchall()
    else:
        sql = (
            "SELECT idempotency_key, id FROM journal_entries"
            " WHERE idempotency_key = ANY(CAST(:keys AS TEXT[]))"
        )
        rows = rawsql.execute(conn, sql, keys=keys).fetchall()
    return {key: entry_id for key, entry_id in rows}


def _refuse_second_reversals(conn: Connection, entries: list[Entry]) -> None:
    """``AlreadyReversed`` if an entry reverses one reversed already, or the batch one twice."""
    counts = Counter(e.reverses_id for e in entries if e.reverses_id is not None)
    if not counts:
        return
    reversed_ids = list(counts)
    twice = {i for i, n in counts.items() if n > 1}
    done = conn.execute(
        select(JournalEntry.reverses_id).where(JournalEntry.reverses_id.in_(reversed_ids))
    ).scalars()
    twice.update(i for i in done if i is not None)
    if twice:
        raise AlreadyReversed(f"Entry {min(twice)} is reversed already.")


def _post_embedded(conn: Connection, entries: list[Entry]) -> dict[str, int]:
    """SQLite: ids follow the largest, an ``executemany`` per table; returns them. The write
    fails, rather than reuses an id, if another connection wrote meanwhile (SQLite's snapshot
    rule)."""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    (last,) = rawsql.execute(conn, "SELECT coalesce(max(id), 0) FROM journal_entries").fetchone()
    recorded = rawsql.db_time(conn, utcnow())
    entry_rows: list[tuple[Any, ...]] = []
    posting_rows: list[tuple[Any, ...]] = []
    ids: dict[str, int] = {}
    moments = {e.at: rawsql.db_time(conn, e.at) for e in entries}
    for entry_id, entry in enumerate(entries, start=last + 1):
        at = moments[entry.at]
        ids[entry.key] = entry_id
        entry_rows.append(
            (
                *(entry_id, entry.kind.value, entry.ref, entry.key, entry.reverses_id),
                *(entry.currency, at, recorded),
            )
        )
        posting_rows.extend(
            (entry_id, leg.account, leg.amount_fen, entry.currency, at) for leg in entry.legs
        )
    cursor.executemany(
        "INSERT INTO journal_entries (id, kind, ref, idempotency_key, reverses_id, currency, at,"
        " recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        entry_rows,
    )
    cursor.executemany(
        "INSERT INTO postings (entry_id, account, amount_fen, currency, at) VALUES (?, ?, ?, ?, ?)",
        posting_rows,
    )
    return ids


def _post_server(conn: Connection, entries: list[Entry]) -> dict[str, int]:
    """PostgreSQL: ids from the sequence, then a statement per table over arrays; returns the
    ids of the entries written. An entry whose key, or whose reversed entry, another process
    took meanwhile is not written."""
    ids = [
        row[0]
        for row in rawsql.execute(
            conn,
            "SELECT nextval(pg_get_serial_sequence('journal_entries', 'id'))"
            " FROM generate_series(1, :n)",
            n=len(entries),
        ).fetchall()
    ]
    written = {
        row[0]
        for row in rawsql.execute(
            conn,
            "INSERT INTO journal_entries (id, kind, ref, idempotency_key, reverses_id, currency,"
            " at, recorded_at) SELECT *, CAST(:recorded AS TIMESTAMPTZ) FROM unnest("
            " CAST(:ids AS INTEGER[]), CAST(:kinds AS TEXT[]), CAST(:refs AS TEXT[]),"
            " CAST(:keys AS TEXT[]), CAST(:reverses AS INTEGER[]), CAST(:currencies AS TEXT[]),"
            " CAST(:ats AS TIMESTAMPTZ[])) ON CONFLICT DO NOTHING RETURNING id",
            ids=ids,
            kinds=[e.kind.value for e in entries],
            refs=[e.ref for e in entries],
            keys=[e.key for e in entries],
            reverses=[e.reverses_id for e in entries],
            currencies=[e.currency for e in entries],
            ats=[e.at for e in entries],
            recorded=utcnow(),
        ).fetchall()
    }
    mine = [(i, e) for i, e in zip(ids, entries, strict=True) if i in written]
    legs = [(i, e, leg) for i, e in mine for leg in e.legs]
    rawsql.execute(
        conn,
        "INSERT INTO postings (entry_id, account, amount_fen, currency, at) SELECT * FROM unnest("
        " CAST(:entries AS INTEGER[]), CAST(:accounts AS TEXT[]), CAST(:amounts AS BIGINT[]),"
        " CAST(:currencies AS TEXT[]), CAST(:ats AS TIMESTAMPTZ[]))",
        entries=[i for i, _, _ in legs],
        accounts=[leg.account for _, _, leg in legs],
        amounts=[leg.amount_fen for _, _, leg in legs],
        currencies=[e.currency for _, e, _ in legs],
        ats=[e.at for _, e, _ in legs],
    )
    return {e.key: i for i, e in mine}


def _add_to_totals(conn: Connection, entries: list[Entry]) -> None:
    """Add the entries' amounts to their accounts' totals of the day and hour, in one order."""
    # By moment first, then by day and hour: a batch's entries share a few moments.
    at_moment: dict[tuple[str, str, datetime], int] = defaultdict(int)
    for entry in entries:
        for leg in entry.legs:
            at_moment[leg.account, entry.currency, entry.at] += leg.amount_fen
    sums: dict[tuple[str, str, str, int], int] = defaultdict(int)
    moments = {at for _, _, at in at_moment}
    starts = {at: [(span.value, start_of(at, span)) for span in Span] for at in moments}
    for (account, currency, at), amount in at_moment.items():
        for span, start in starts[at]:
            sums[account, currency, span, start] += amount
    rows = sorted(sums.items())
    if conn.dialect.name == "sqlite":
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.executemany(_ADD_TO_TOTALS_EMBEDDED, [(*key, amount) for key, amount in rows])
        return
    rawsql.execute(
        conn,
        _ADD_TO_TOTALS_SERVER,
        accounts=[key[0] for key, _ in rows],
        currencies=[key[1] for key, _ in rows],
        spans=[key[2] for key, _ in rows],
        starts=[key[3] for key, _ in rows],
        amounts=[amount for _, amount in rows],
    )


_ADD_TO_TOTALS_EMBEDDED = (
    "INSERT INTO account_totals (account, currency, span, starts, amount_fen)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (account, currency, span, starts) DO UPDATE"
    " SET amount_fen = account_totals.amount_fen + excluded.amount_fen"
)
_ADD_TO_TOTALS_SERVER = (
    "INSERT INTO account_totals (account, currency, span, starts, amount_fen)"
    " SELECT * FROM unnest(CAST(:accounts AS TEXT[]), CAST(:currencies AS TEXT[]),"
    " CAST(:spans AS TEXT[]), CAST(:starts AS BIGINT[]), CAST(:amounts AS BIGINT[]))"
    " ON CONFLICT (account, currency, span, starts) DO UPDATE"
    " SET amount_fen = account_totals.amount_fen + excluded.amount_fen"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def start_of(moment: datetime, span: Span) -> int:
    """The Unix time of the start of the UTC day or hour of a moment."""
    return (moment - _EPOCH) // timedelta(seconds=span.seconds) * span.seconds


def moment_of(starts: int) -> datetime:
    """The moment of a Unix time, as ``start_of`` gives."""
    return _EPOCH + timedelta(seconds=starts)


def reverse(
    conn: Connection, entry_id: int, *, key: str, at: datetime, ref: str | None = None
) -> Posted:
    """Post the mirror of an entry (each amount negated), reversing it; once only: the same
    key again returns the reversal, another key is ``AlreadyReversed``."""
    original = conn.execute(
        select(JournalEntry.ref, JournalEntry.currency).where(JournalEntry.id == entry_id)
    ).one_or_none()
    if original is None:
        raise NotFound(f"No ledger entry {entry_id}.")
    done = conn.execute(
        select(JournalEntry.id, JournalEntry.idempotency_key).where(
            JournalEntry.reverses_id == entry_id
        )
    ).one_or_none()
    if done is not None:
        if done.idempotency_key == key:
            return Posted(done.id, False)
        raise AlreadyReversed(f"Entry {entry_id} was reversed by entry {done.id}.")
    legs = conn.execute(
        select(Posting.account, Posting.amount_fen)
        .where(Posting.entry_id == entry_id)
        .order_by(Posting.id)
    ).all()
    entry = mirror(
        entry_id,
        (Leg(row.account, row.amount_fen) for row in legs),
        ref=original.ref if ref is None else ref,
        key=key,
        at=at,
        currency=original.currency,
    )
    return post(conn, [entry])[0]


# Balances


def balance(
    conn: Connection, account: str, *, as_of: datetime | None = None, currency: str = CNY
) -> int:
    """The account's balance in fen: the sum of its postings (up to ``as_of``, if given)."""
    return balances(conn, accounts=[account], as_of=as_of, currency=currency)[account]


def balances(
    conn: Connection,
    *,
    accounts: Sequence[str] | None = None,
    prefix: str | None = None,
    as_of: datetime | None = None,
    currency: str = CNY,
) -> dict[str, int]:
    """Balances of the named accounts (each one, zero if it has no postings), or of every
    account whose name starts with ``prefix`` (``shop:12:``), up to ``as_of`` if given."""
    if (accounts is None) == (prefix is None):
        raise ValueError("name the accounts or a prefix, not both")
    totals = select(AccountTotal.account, func.sum(AccountTotal.amount_fen)).where(
        AccountTotal.currency == currency, *_which(AccountTotal.account, accounts, prefix)
    )
    if as_of is None:
        query: Any = totals.where(AccountTotal.span == Span.DAY).group_by(AccountTotal.account)
    else:
        # The days before as_of's, the hours of its day before its hour, and the postings of
        # its hour up to it.
        day, hour = start_of(as_of, Span.DAY), start_of(as_of, Span.HOUR)
        days = and_(AccountTotal.span == Span.DAY, AccountTotal.starts < day)
        hours = and_(
            AccountTotal.span == Span.HOUR, AccountTotal.starts >= day, AccountTotal.starts < hour
        )
        last = select(Posting.account, func.sum(Posting.amount_fen)).where(
            Posting.at >= moment_of(hour),
            Posting.at <= as_of,
            Posting.currency == currency,
            *_which(Posting.account, accounts, prefix),
        )
        query = union_all(  # one round trip
            totals.where(or_(days, hours)).group_by(AccountTotal.account),
            last.group_by(Posting.account),
        )
    found = dict.fromkeys(accounts or (), 0)
    for account, amount in conn.execute(query):
        found[account] = found.get(account, 0) + int(amount)
    return found


def _which(column: Any, accounts: Sequence[str] | None, prefix: str | None) -> tuple[Any, ...]:
    """The condition on the account's column: one of the accounts, or starting with prefix."""
    if accounts is not None:
        return (column.in_(accounts),)
    assert prefix is not None
    if not prefix:
        return ()
    # A range rather than LIKE: it uses the index on both backends (SQLite's LIKE is
    # case-insensitive and would not). Account names are ASCII.
    return (column >= prefix, column < prefix[:-1] + chr(ord(prefix[-1]) + 1))


# The book's check


@dataclass
class Report:
    """What ``verify`` found; the book is right when ``ok``."""

    entries: int = 0
    postings: int = 0
    unbalanced: list[int] = field(default_factory=list)  # entries not summing to zero
    empty: list[int] = field(default_factory=list)  # entries without postings
    unmirrored: list[int] = field(default_factory=list)  # reversals not undoing their original
    stale_totals: list[str] = field(default_factory=list)  # "account currency span start"
    money_in: dict[str, int] = field(default_factory=dict)  # per currency
    held: dict[str, int] = field(default_factory=dict)
    paid_out: dict[str, int] = field(default_factory=dict)

    @property
    def off(self) -> dict[str, int]:
        """Per currency, by how much money in differs from money held plus paid out."""
        currencies = self.money_in.keys() | self.held.keys() | self.paid_out.keys()
        differences = {
            c: self.money_in.get(c, 0) - self.held.get(c, 0) - self.paid_out.get(c, 0)
            for c in sorted(currencies)
        }
        return {c: d for c, d in differences.items() if d}

    @property
    def ok(self) -> bool:
        return not (
            self.unbalanced or self.empty or self.unmirrored or self.stale_totals or self.off
        )

    def lines(self) -> list[str]:
        """The report as the command line prints it."""
        lines = [f"{self.entries} entries, {self.postings} postings"]
        for currency in sorted(self.money_in.keys() | self.held.keys() | self.paid_out.keys()):
            lines.append(
                f"{currency}: in {self.money_in.get(currency, 0)} fen"
                f" = held {self.held.get(currency, 0)} + paid out {self.paid_out.get(currency, 0)}"
            )
        faults = (
            ("entries not summing to zero", self.unbalanced),
            ("entries without postings", self.empty),
            ("reversals not mirroring their entry", self.unmirrored),
            ("account totals not matching their postings", self.stale_totals),
        )
        for what, found in faults:
            if found:
                lines.append(f"{what}: " + ", ".join(map(str, found)))
        for currency, difference in self.off.items():
            lines.append(f"{currency}: money in differs from held + paid out by {difference} fen")
        lines.append("the book balances" if self.ok else "THE BOOK IS OFF")
        return lines


# SQL of a posting's Unix time, in whole seconds (SQLite stores UTC text).
_SECONDS_SQL = {
    "sqlite": "CAST(strftime('%s', substr(at, 1, 19)) AS INTEGER)",
    "postgresql": "CAST(floor(extract(epoch FROM at)) AS BIGINT)",
}


def verify(conn: Connection) -> Report:
    """Check the whole book: every entry sums to zero and has postings, every reversal mirrors
    its entry, the account totals match the postings, and money in = held + paid out."""
    report = Report()
    report.entries = conn.execute(select(func.count()).select_from(JournalEntry)).scalar_one()
    report.postings = conn.execute(select(func.count()).select_from(Posting)).scalar_one()
    report.unbalanced = _ids(
        conn,
        "SELECT entry_id FROM postings GROUP BY entry_id HAVING sum(amount_fen) <> 0"
        " ORDER BY entry_id LIMIT :limit",
    )
    report.empty = _ids(
        conn,
        "SELECT id FROM journal_entries WHERE NOT EXISTS"
        " (SELECT 1 FROM postings WHERE postings.entry_id = journal_entries.id) ORDER BY id"
        " LIMIT :limit",
    )
    report.unmirrored = _ids(conn, _UNMIRRORED)
    stale = text(_STALE_TOTALS.format(seconds=_SECONDS_SQL[conn.dialect.name]))
    report.stale_totals = [
        f"{account} {currency} {span} {moment_of(starts):%Y-%m-%d %H:%M}"
        for account, currency, span, starts in conn.execute(stale.bindparams(limit=REPORT_LIMIT))
    ]
    _add_up_holders(conn, report)
    return report


# Each reversal's postings with its entry's, by account: a mirror leaves nothing.
_UNMIRRORED = (
    "SELECT DISTINCT id FROM ("
    " SELECT r.id, p.account, p.currency, p.amount_fen FROM journal_entries r"
    " JOIN postings p ON p.entry_id = r.id WHERE r.reverses_id IS NOT NULL"
    " UNION ALL"
    " SELECT r.id, p.account, p.currency, p.amount_fen FROM journal_entries r"
    " JOIN postings p ON p.entry_id = r.reverses_id WHERE r.reverses_id IS NOT NULL"
    ") AS legs GROUP BY id, account, currency HAVING sum(amount_fen) <> 0 ORDER BY id LIMIT :limit"
)

# Each day's and hour's postings of an account, less its totals: nothing where they match.
_STALE_TOTALS = (
    "SELECT account, currency, span, starts FROM ("
    " SELECT account, currency, 'day' AS span, {seconds} / 86400 * 86400 AS starts, amount_fen"
    " FROM postings"
    " UNION ALL SELECT account, currency, 'hour', {seconds} / 3600 * 3600, amount_fen"
    " FROM postings"
    " UNION ALL SELECT account, currency, span, starts, -amount_fen FROM account_totals"
    ") AS amounts GROUP BY account, currency, span, starts HAVING sum(amount_fen) <> 0"
    " ORDER BY account, currency, span, starts LIMIT :limit"
)


def _ids(conn: Connection, sql: str) -> list[int]:
    query = text(sql).bindparams(limit=REPORT_LIMIT)
    return [int(i) for i in conn.execute(query).scalars()]


def _add_up_holders(conn: Connection, report: Report) -> None:
    """Money in (``clearing:*``, negated), paid out (``payouts:*``) and held (the rest)."""
    query = select(Posting.account, Posting.currency, func.sum(Posting.amount_fen)).group_by(
        Posting.account, Posting.currency
    )
    for account, currency, amount in conn.execute(query):
        holder = account.split(":", 1)[0]
        if holder == Holder.CLEARING:
            report.money_in[currency] = report.money_in.get(currency, 0) - int(amount)
        elif holder == Holder.PAYOUTS:
            report.paid_out[currency] = report.paid_out.get(currency, 0) + int(amount)
        else:
            report.held[currency] = report.held.get(currency, 0) + int(amount)
