"""Tables of the double-entry ledger: journal entries, their postings, and daily totals.

An entry is one movement of money (a capture, a release, a payout, a reversal); its postings
move amounts between accounts (``accounts``) and sum to zero. Entries and postings are only
ever inserted: the database refuses updates and deletes (migration 0013), and a mistake is
undone by a new entry that reverses it.

``account_daily_totals`` is derived: what each account's postings of one UTC day add up to,
written in the transaction that posts them, so that a balance is a sum of a few hundred
rows rather than of every posting (``service.balance``); ``service.verify`` checks it against
the postings.
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


class JournalEntry(Base):
    __tablename__ = "journal_entries"
    __table_args__ = (Index("ix_journal_entries_ref", "ref"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[EntryKind] = mapped_column(text_enum(EntryKind, length=24))
    ref: Mapped[str] = mapped_column(String(80))  # what it is about: "order:42", "payout:7"
    # Chosen by the caller from the business event ("capture:order:42"): a retry posts nothing.
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
        # Covering: a balance as of a moment reads the index alone (``service.balance``).
        Index("ix_postings_account_balance", "account", "currency", "at", "amount_fen"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("journal_entries.id"))
    account: Mapped[str] = mapped_column(String(MAX_LENGTH))
    amount_fen: Mapped[int] = mapped_column(BigInteger)  # signed; the entry's sum to zero
    # The entry's, copied: balances read postings without joining their entries.
    currency: Mapped[str] = mapped_column(String(3))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class AccountDailyTotal(Base):
    """What an account's postings of one UTC day sum to; kept with the postings."""

    __tablename__ = "account_daily_totals"

    account: Mapped[str] = mapped_column(String(MAX_LENGTH), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    day: Mapped[int] = mapped_column(Integer, primary_key=True)  # days since 1970-01-01
    amount_fen: Mapped[int] = mapped_column(BigInteger)
