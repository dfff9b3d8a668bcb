"""A holder's monthly statement, the month's reconciliation of the book, and the book by account.

Months are the platform's (China Standard Time, as the pages show times): the statement of
2026-11 covers 2026-11-01 00:00 to 2026-12-01 00:00 in Beijing. Every figure is read from the
ledger; balances at a month's edges come from ``ledger.balances`` (the account totals) and the
month's movements from its postings, so that a statement or a reconciliation that adds up
checks the one against the other.
"""

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, func, or_, select

from originlive.errors import InvalidInput
from originlive.ledger import service as ledger
from originlive.ledger.accounts import Holder, account, parse
from originlive.ledger.models import EntryKind, JournalEntry, Posting
from originlive.ledger.payouts import service as payouts
from originlive.web.templating import PLATFORM_TZ

_MONTH = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")
_JUST_BEFORE = timedelta(microseconds=1)  # balances "as of" include their moment
BUCKETS = ("pending", "available")


@dataclass(frozen=True, order=True)
class Month:
    """A calendar month on the platform's clock."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> "Month":
        """``2026-11``; ``InvalidInput`` for anything else, or a year outside 2000-2999."""
        found = _MONTH.fullmatch(text)
        if found is None or not 2000 <= int(found[1]) <= 2999:
            raise InvalidInput(f"{text!r} is not a month such as 2026-11.", field="month")
        return cls(int(found[1]), int(found[2]))

    @classmethod
    def of(cls, moment: datetime) -> "Month":
        local = moment.astimezone(PLATFORM_TZ)
        return cls(local.year, local.month)

    @property
    def start(self) -> datetime:
        return datetime(self.year, self.month, 1, tzinfo=PLATFORM_TZ)

    @property
    def end(self) -> datetime:
        return self.next.start

    @property
    def next(self) -> "Month":
        return Month(self.year + self.month // 12, self.month % 12 + 1)

    @property
    def previous(self) -> "Month":
        return Month(self.year - (self.month == 1), (self.month - 2) % 12 + 1)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


# Statements


@dataclass(frozen=True)
class Statement:
    """A holder's month: each account's opening and closing balance, what moved it (by kind of
    entry), and every posting."""

    holder: Holder
    holder_id: int
    month: Month
    opening: dict[str, int]  # by bucket
    closing: dict[str, int]
    moved: dict[EntryKind, dict[str, int]]  # by kind, then bucket
    lines: list[payouts.Line]

    @property
    def adds_up(self) -> bool:
        """Whether each account's opening plus the month's postings is its closing balance."""
        return all(
            self.opening[b] + sum(m.get(b, 0) for m in self.moved.values()) == self.closing[b]
            for b in BUCKETS
        )

    @property
    def paid_out_fen(self) -> int:
        """What payouts took from the available account this month, less failed ones."""
        kinds = (EntryKind.PAYOUT, EntryKind.REVERSAL)
        return -sum(self.moved.get(k, {}).get("available", 0) for k in kinds)


def statement(conn: Connection, *, holder: Holder, holder_id: int, month: Month) -> Statement:
    """The holder's statement of the month."""
    names = {bucket: account(holder, bucket, holder_id) for bucket in BUCKETS}
    bucket_of = {name: bucket for bucket, name in names.items()}
    found = payouts.lines(conn, accounts=list(names.values()), since=month.start, until=month.end)
    moved: dict[EntryKind, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for line in found:
        moved[line.kind][bucket_of[line.account]] += line.amount_fen
    opening = _edge(conn, names, month.start)
    closing = _edge(conn, names, month.end)
    return Statement(
        holder=holder,
        holder_id=holder_id,
        month=month,
        opening=opening,
        closing=closing,
        moved={kind: dict(by) for kind, by in moved.items()},
        lines=found,
    )


def _edge(conn: Connection, names: dict[str, str], moment: datetime) -> dict[str, int]:
    held = ledger.balances(conn, accounts=list(names.values()), as_of=moment - _JUST_BEFORE)
    return {bucket: held[name] for bucket, name in names.items()}


# Reconciliation


@dataclass(frozen=True)
class Reconciliation:
    """The month's money: held at its start, plus payments in, less refunds and payouts
    (failed ones given back), is held at its end, to the fen."""

    month: Month
    opening_held_fen: int
    payments_in_fen: int
    refunds_fen: int
    payouts_fen: int  # made this month
    failed_payouts_fen: int  # given back this month
    other_fen: int  # any other entry moving money in or out (an operator's adjustment)
    closing_held_fen: int
    held_by_holder: dict[str, int]  # at the end: shops, anchors, stations, the platform...
    money_in_to_date_fen: int  # since the book began, to the month's end
    paid_out_to_date_fen: int

    @property
    def expected_closing_fen(self) -> int:
        return (
            self.opening_held_fen
            + self.payments_in_fen
            - self.refunds_fen
            - self.payouts_fen
            + self.failed_payouts_fen
            + self.other_fen
        )

    @property
    def difference_fen(self) -> int:
        return self.closing_held_fen - self.expected_closing_fen

    @property
    def adds_up(self) -> bool:
        """The month's flows explain the held balances, and since the book began money in
        less paid out is what is held."""
        to_date = self.money_in_to_date_fen - self.paid_out_to_date_fen == self.closing_held_fen
        return self.difference_fen == 0 and to_date


def reconciliation(conn: Connection, *, month: Month, currency: str = ledger.CNY) -> Reconciliation:
    """The month's reconciliation, from its postings to ``clearing:*`` and ``payouts:*`` and
    the balances of everything else at its edges."""
    outside = (f"{Holder.CLEARING}:", f"{Holder.PAYOUTS}:")
    flows = conn.execute(
        select(JournalEntry.kind, Posting.account, func.sum(Posting.amount_fen))
        .join(JournalEntry, JournalEntry.id == Posting.entry_id)
        .where(
            Posting.at >= month.start,
            Posting.at < month.end,
            Posting.currency == currency,
            or_(*(Posting.account.startswith(p) for p in outside)),
        )
        .group_by(JournalEntry.kind, Posting.account)
    ).all()
    came_in = refunded = paid = failed = other = 0
    for kind, name, amount in flows:
        amount = int(amount)
        through_clearing = name.startswith(outside[0])
        if through_clearing and kind is EntryKind.CAPTURE:
            came_in -= amount
        elif through_clearing and kind is EntryKind.REFUND:
            refunded += amount
        elif not through_clearing and kind is EntryKind.PAYOUT:
            paid += amount
        elif not through_clearing and kind is EntryKind.REVERSAL:
            failed -= amount
        else:  # money held moves the other way to what these accounts receive
            other -= amount
    opening = _held(conn, month.start, currency)
    closing = _held(conn, month.end, currency)
    return Reconciliation(
        month=month,
        opening_held_fen=sum(v for h, v in opening.items() if h not in outside),
        payments_in_fen=came_in,
        refunds_fen=refunded,
        payouts_fen=paid,
        failed_payouts_fen=failed,
        other_fen=other,
        closing_held_fen=sum(v for h, v in closing.items() if h not in outside),
        held_by_holder={h: v for h, v in closing.items() if h not in outside},
        money_in_to_date_fen=-closing.get(outside[0], 0),
        paid_out_to_date_fen=closing.get(outside[1], 0),
    )


def _held(conn: Connection, moment: datetime, currency: str) -> dict[str, int]:
    """Balances just before ``moment`` by holder (``shop:``, ``clearing:``...)."""
    by_holder: dict[str, int] = defaultdict(int)
    every = ledger.balances(conn, prefix="", as_of=moment - _JUST_BEFORE, currency=currency)
    for name, fen in every.items():
        by_holder[f"{parse(name).holder}:"] += fen
    return dict(by_holder)


# The book by account


def accounts(conn: Connection, *, prefix: str = "") -> list[tuple[str, int]]:
    """Every account (starting with ``prefix``) and its balance, by name."""
    return sorted(ledger.balances(conn, prefix=prefix).items())
