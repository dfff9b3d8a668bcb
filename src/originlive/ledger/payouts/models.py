"""Tables of payouts: one transfer of an account's available money, and its changes of state.

A payout is written with its ledger entry (``payout:{id}``: the account's available money to
``payouts:{provider}``) and is ``requested`` until its provider says it was paid, or failed
(then the entry is reversed, ``payout-failed:{id}``, and the money is available again).
"""

import enum
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from originlive.db import Base, UTCDateTime, text_enum
from originlive.ledger.accounts import MAX_LENGTH


class PayoutStatus(enum.StrEnum):
    REQUESTED = "requested"  # posted and sent to the provider, its answer awaited
    PAID = "paid"
    FAILED = "failed"  # reversed: the money is available again


_OPEN = text("status = 'requested'")


class Payout(Base):
    __tablename__ = "payouts"
    __table_args__ = (
        CheckConstraint("amount_fen > 0", name="amount_positive"),
        # One payout under way per account: of two made at once, the second's insert waits for
        # the first's transaction and then finds the slot taken (PostgreSQL and SQLite alike),
        # so it never reads a balance the first has already spent.
        Index(
            "uq_payouts_open_account",
            "account",
            unique=True,
            sqlite_where=_OPEN,
            postgresql_where=_OPEN,
        ),
        Index("ix_payouts_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account: Mapped[str] = mapped_column(String(MAX_LENGTH))  # shop:12:available
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    provider: Mapped[str] = mapped_column(String(24))
    status: Mapped[PayoutStatus] = mapped_column(text_enum(PayoutStatus, length=16))
    provider_ref: Mapped[str | None] = mapped_column(String(64))
    # The caller's (an operator's Idempotency-Key) or the run's (its period and the account).
    idempotency_key: Mapped[str] = mapped_column(String(120), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class PayoutEvent(Base):
    """One change of a payout's state; ``provider_event_id`` is the provider's word, once."""

    __tablename__ = "payout_events"
    __table_args__ = (Index("ix_payout_events_payout_id", "payout_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    payout_id: Mapped[int] = mapped_column(ForeignKey("payouts.id"))
    from_status: Mapped[PayoutStatus | None] = mapped_column(text_enum(PayoutStatus, length=16))
    to_status: Mapped[PayoutStatus] = mapped_column(text_enum(PayoutStatus, length=16))
    provider_event_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    note: Mapped[str | None] = mapped_column(String(500))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
