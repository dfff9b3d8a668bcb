"""Tables of the double-entry ledger: journal entries, their postings, and account totals.

An entry is one movement of money (a capture, a release, a payout, a reversal); its postings
move amounts between accounts (``accounts``) and sum to zero. Entries and postings are only
ever inserted: the database refuses updates and deletes (migration 0013), and a mistake is
undone by a new entry that reverses it.

``account_totals`` is derived: what each account's postings of one UTC day, and of one hour,
add up to, written in the transaction that posts them, so that a balance is a sum of a few
hundred rows rather than of every posting (``service.balance``); ``service.verify`` checks
it against the postings.
"""

import enum
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from originlive.db import Base, UTCDateTime, text_enum
from originlive.ledger.accounts import MAX_LENGTH


class EntryKind(enum.StrEnum):
    CAPTURE = "capture"  # a buyer's payment, into pending accounts
    RELEASE = "release"  # pending to available, once receipt and after-sales allow
    REFUND = "refund"
    COMMISSION = "commission"
    PAYOUT = "payout"
    REVERSAL = "reversal"  # the mirror of an earlier entry
    ADJUSTMENT = "adjustment"  # an operator's correction


class Span(enum.StrEnum):
    """The stretch of time an account's total covers."""

    DAY = "day"
    HOUR = "hour"

    @property
    def seconds(self) -> int:
        return 86_400 if self is Span.DAY else 3_600


class JournalEntry(Base):
    __tablename__ = "journal_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[EntryKind] = mapped_column(text_enum(EntryKind, length=24))
    # What it is about ("order:42"), for people: code finds an entry by its key, which is
    # chosen from the business event ("capture:order:42"), so that a retry posts nothing.
    ref: Mapped[str] = mapped_column(String(80))
    idempotency_key: Mapped[str] = mapped_column(String(120), unique=True)
    # Unique: an entry is reversed at most once.
    reverses_id: Mapped[int | None] = mapped_column(ForeignKey("journal_entries.id"), unique=True)
    currency: Mapped[str] = mapped_column(String(3))
    at: Mapped[datetime] = mapped_column(UTCDateTime())  # when it happened, for balances
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())  # when it was written


class Posting(Base):
    __tablename__ = "postings"
    __table_args__ = (
        Index("ix_postings_entry_id", "entry_id"),
        # Covering, for the last part-hour of a balance as of a moment (``service.balances``).
        # Time, then id first: a batch's postings land at the index's end, even when they all
        # share one moment; led by the account (or by the moment, then the account) they are
        # scattered over its pages, which cost posting more than half its rate (measured).
        Index("ix_postings_at", "at", "id", "account", "currency", "amount_fen"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("journal_entries.id"))
    account: Mapped[str] = mapped_column(String(MAX_LENGTH))
    amount_fen: Mapped[int] = mapped_column(BigInteger)  # signed; the entry's sum to zero
    # The entry's, copied: balances read postings without joining their entries.
    currency: Mapped[str] = mapped_column(String(3))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class AccountTotal(Base):
    """What an account's postings of one day, or one hour, sum to; kept with the postings."""

    __tablename__ = "account_totals"

    account: Mapped[str] = mapped_column(String(MAX_LENGTH), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    span: Mapped[Span] = mapped_column(text_enum(Span, length=8), primary_key=True)
    starts: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # Unix time, seconds
    amount_fen: Mapped[int] = mapped_column(BigInteger)
