"""The rules that record payments and refunds, run by the order writer with the order's state.

Like ``orders.stock``: synchronous functions of a ``Connection`` inside the writer's
transaction, so a payment's state, the order's state and their events change together or
not at all.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from originlive.catalog.models import Shop, ShopStatus
from originlive.errors import Conflict, InvalidInput, NotFound
from originlive.orders import stock
from originlive.orders.models import PAID_IN, Order, OrderEvent, OrderStatus
from originlive.payments.models import (
    Payment,
    PaymentEvent,
    PaymentStatus,
    Refund,
    WebhookReceipt,
)

REFUNDABLE = PAID_IN  # a refund gives back money that came in
LATE_PAYMENT = "The order had expired or was cancelled before the payment arrived."


@dataclass(frozen=True)
class Outcome:
    """What a provider's event did: ``applied``, ``duplicate``, or ``refunded`` (too late)."""

    result: str
    payment_id: int


def _payment_event(
    conn: Connection,
    payment_id: int,
    from_status: PaymentStatus | None,
    to_status: PaymentStatus,
    now: datetime,
    note: str | None = None,
) -> None:
    conn.execute(
        insert(PaymentEvent).values(
            payment_id=payment_id,
            from_status=from_status,
            to_status=to_status,
            note=note,
            created_at=now,
        )
    )


def open_payment(
    conn: Connection, *, order_id: int, provider: str, checkout_token: str, now: datetime
) -> int:
    """A pending payment for an order awaiting payment; the open one if there is one already."""
    order = conn.execute(
        select(Order.status, Order.total_cents, Order.currency, Shop.status.label("shop"))
        .join(Shop, Shop.id == Order.shop_id)
        .where(Order.id == order_id)
    ).one()
    if order.status != OrderStatus.PENDING_PAYMENT:
        raise Conflict(f"Order {order_id} is {order.status.value}; it takes no payment.")
    if order.shop != ShopStatus.APPROVED:  # its unpaid orders are being cancelled
        raise Conflict(f"The shop of order {order_id} no longer sells; it takes no payment.")
    existing = conn.execute(
        select(Payment.id).where(
            Payment.order_id == order_id,
            Payment.provider == provider,
            Payment.status == PaymentStatus.PENDING,
        )
    ).scalar()
    if existing is not None:
        return int(existing)
    payment_id = conn.execute(
        insert(Payment)
        .values(
            order_id=order_id,
            provider=provider,
            status=PaymentStatus.PENDING,
            amount_cents=order.total_cents,
            currency=order.currency,
            refunded_cents=0,
            checkout_token=checkout_token,
            created_at=now,
            updated_at=now,
        )
        .returning(Payment.id)
    ).scalar_one()
    _payment_event(conn, payment_id, None, PaymentStatus.PENDING, now)
    return int(payment_id)


def _move(
    conn: Connection,
    payment_id: int,
    from_status: PaymentStatus,
    to_status: PaymentStatus,
    now: datetime,
    note: str | None = None,
    **values: Any,
) -> None:
    moved = conn.execute(
        update(Payment)
        .where(Payment.id == payment_id, Payment.status == from_status)
        .values(status=to_status, updated_at=now, **values)
    )
    if moved.rowcount != 1:
        raise Conflict(f"Payment {payment_id} changed meanwhile.")
    _payment_event(conn, payment_id, from_status, to_status, now, note)


def settle(
    conn: Connection,
    *,
    provider: str,
    event_id: str,
    payment_id: int,
    succeeded: bool,
    amount_cents: int,
    currency: str,
    refund_ref: str,
    now: datetime,
) -> Outcome:
    """Apply a provider's verdict on a payment, once per event (idempotent).

    A success for an order that is no longer awaiting payment (it expired or was cancelled,
    and its units went back on sale) is refunded at once: never sold twice (invariant 3).
    """
    try:
        with conn.begin_nested():
            conn.execute(
                insert(WebhookReceipt).values(provider=provider, event_id=event_id, received_at=now)
            )
    except IntegrityError:
        return Outcome("duplicate", payment_id)
    payment = conn.execute(
        select(Payment.status, Payment.order_id, Payment.amount_cents, Payment.currency).where(
            Payment.id == payment_id, Payment.provider == provider
        )
    ).first()
    if payment is None:
        raise NotFound(f"No {provider} payment {payment_id}.")
    if (payment.amount_cents, payment.currency) != (amount_cents, currency):
        raise InvalidInput("The event's amount does not match the payment.", field="amount_cents")
    if payment.status != PaymentStatus.PENDING:
        return Outcome("duplicate", payment_id)  # an older event for a decided payment
    if not succeeded:
        _move(conn, payment_id, PaymentStatus.PENDING, PaymentStatus.FAILED, now)
        return Outcome("applied", payment_id)
    _move(conn, payment_id, PaymentStatus.PENDING, PaymentStatus.SUCCEEDED, now)
    try:
        stock.transition(
            conn,
            order_id=payment.order_id,
            allowed=(OrderStatus.PENDING_PAYMENT,),
            to=OrderStatus.PAID,
            actor_id=None,
            now=now,
            note=f"{provider} payment {payment_id}",
        )
    except stock.WrongState:
        conn.execute(
            insert(Refund).values(
                payment_id=payment_id,
                order_id=payment.order_id,
                amount_cents=payment.amount_cents,
                reason=LATE_PAYMENT,
                provider_ref=refund_ref,
                actor_id=None,
                created_at=now,
            )
        )
        _move(
            conn,
            payment_id,
            PaymentStatus.SUCCEEDED,
            PaymentStatus.REFUNDED,
            now,
            LATE_PAYMENT,
            refunded_cents=payment.amount_cents,
        )
        return Outcome("refunded", payment_id)
    return Outcome("applied", payment_id)


def refundable_payment(conn: Connection, *, order_id: int) -> tuple[int, int]:
    """The order's settled payment and the cents still refundable on it."""
    row = conn.execute(
        select(Payment.id, Payment.amount_cents - Payment.refunded_cents).where(
            Payment.order_id == order_id,
            Payment.status.in_((PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED)),
        )
    ).first()
    if row is None:
        raise Conflict(f"Order {order_id} has no payment to refund.")
    return int(row[0]), int(row[1])


def refund(
    conn: Connection,
    *,
    order_id: int,
    amount_cents: int,
    reason: str,
    actor_id: int,
    provider_ref: str,
    now: datetime,
) -> int:
    """Give back part or all of a paid order's payment; all of it makes the order refunded."""
    status = conn.execute(select(Order.status).where(Order.id == order_id)).scalar_one()
    if status not in REFUNDABLE:
        raise Conflict(f"Order {order_id} is {status.value}; there is nothing to refund.")
    payment_id, left = refundable_payment(conn, order_id=order_id)
    if amount_cents > left:
        raise InvalidInput(f"At most {left} cents are left to refund.", field="amount_cents")
    refund_id = conn.execute(
        insert(Refund)
        .values(
            payment_id=payment_id,
            order_id=order_id,
            amount_cents=amount_cents,
            reason=reason,
            provider_ref=provider_ref,
            actor_id=actor_id,
            created_at=now,
        )
        .returning(Refund.id)
    ).scalar_one()
    whole = amount_cents == left
    current = conn.execute(select(Payment.status).where(Payment.id == payment_id)).scalar_one()
    _move(
        conn,
        payment_id,
        current,
        PaymentStatus.REFUNDED if whole else PaymentStatus.PARTIALLY_REFUNDED,
        now,
        reason,
        refunded_cents=Payment.refunded_cents + amount_cents,
    )
    conn.execute(
        update(Order)
        .where(Order.id == order_id)
        .values(refunded_cents=Order.refunded_cents + amount_cents, updated_at=now)
    )
    if whole:
        stock.transition(
            conn,
            order_id=order_id,
            allowed=REFUNDABLE,
            to=OrderStatus.REFUNDED,
            actor_id=actor_id,
            now=now,
            note=reason,
        )
    return int(refund_id)


def request_refund(
    conn: Connection,
    *,
    order_id: int,
    buyer_id: int,
    reason: str,
    now: datetime,
    after_sales: timedelta,
) -> None:
    """The buyer asks for their money back (after receipt, within ``after_sales`` of it); the
    shop decides with ``refund``."""
    allowed = [OrderStatus.PAID, OrderStatus.SHIPPED, OrderStatus.DELIVERED]
    received = conn.execute(
        select(func.max(OrderEvent.created_at)).where(
            OrderEvent.order_id == order_id, OrderEvent.to_status == OrderStatus.COMPLETED
        )
    ).scalar()
    if received is not None and received > now - after_sales:
        allowed.append(OrderStatus.COMPLETED)  # the after-sales window is still open
    stock.transition(
        conn,
        order_id=order_id,
        allowed=allowed,
        to=OrderStatus.REFUND_REQUESTED,
        actor_id=buyer_id,
        now=now,
        note=reason,
    )
