"""Tables of payments, refunds, received webhooks, and the sandbox gateway's own books."""

import enum
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Enum, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from originlive.db import Base, UTCDateTime


class PaymentStatus(enum.StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


def _status() -> Enum:
    return Enum(
        PaymentStatus, native_enum=False, length=24, values_callable=lambda e: [m.value for m in e]
    )


class Payment(Base):
    """One attempt to pay an order through a provider; the amount is the order's total."""

    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint("refunded_cents >= 0", name="refunded_not_negative"),
        CheckConstraint("refunded_cents <= amount_cents", name="refund_within_amount"),
        Index("ix_payments_order_id", "order_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    provider: Mapped[str] = mapped_column(String(32))
    status: Mapped[PaymentStatus] = mapped_column(_status())
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    refunded_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    # The secret part of the provider's checkout address (a capability: whoever holds it pays).
    checkout_token: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PaymentEvent(Base):
    """One change of a payment's state (invariant 5)."""

    __tablename__ = "payment_events"
    __table_args__ = (Index("ix_payment_events_payment_id", "payment_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id", ondelete="CASCADE"))
    from_status: Mapped[PaymentStatus | None] = mapped_column(_status())
    to_status: Mapped[PaymentStatus] = mapped_column(_status())
    note: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Refund(Base):
    """Money given back on a payment, in full or in part."""

    __tablename__ = "refunds"
    __table_args__ = (
        CheckConstraint("amount_cents > 0", name="amount_positive"),
        Index("ix_refunds_order_id", "order_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"))
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(500))
    provider_ref: Mapped[str] = mapped_column(String(64))
    # Who asked for it; None when the platform refunded by itself (a payment after expiry).
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WebhookReceipt(Base):
    """A provider's event we have applied: the same event delivered again changes nothing."""

    __tablename__ = "webhook_receipts"

    provider: Mapped[str] = mapped_column(String(32), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SandboxWebhook(Base):
    """The sandbox gateway's outbox: an event to deliver to us, retried until acknowledged."""

    __tablename__ = "sandbox_webhooks"
    __table_args__ = (Index("ix_sandbox_webhooks_delivered_at_next", "delivered_at", "next_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    payload: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=0)
    next_at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(String(500))
