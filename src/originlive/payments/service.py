"""Payments as the API sees them: open one, apply a provider's webhook, refund, deliver."""

import asyncio
import contextlib
import logging
from datetime import timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from originlive.accounts import service as accounts
from originlive.accounts.models import User
from originlive.batching import OrderWriter
from originlive.db import utcnow
from originlive.orders.models import Order
from originlive.payments import records, sandbox
from originlive.payments.models import Payment, Refund

log = logging.getLogger(__name__)


async def open_payment(writer: OrderWriter, *, order: Order, provider: str) -> int:
    """A pending payment for the order (the open one if any); returns its id."""
    return await writer.run(
        records.open_payment,
        order_id=order.id,
        provider=provider,
        checkout_token=sandbox.new_checkout_token(),
        now=utcnow(),
    )


async def get_payment(session: AsyncSession, *, payment_id: int) -> Payment | None:
    """The payment, read afresh, or None."""
    return await session.get(Payment, payment_id, populate_existing=True)


async def payment_by_token(session: AsyncSession, *, token: str) -> Payment | None:
    """The payment whose checkout address carries the token, or None."""
    return await session.scalar(select(Payment).where(Payment.checkout_token == token))


async def apply_event(writer: OrderWriter, *, event: sandbox.Event) -> records.Outcome:
    """Apply a verified sandbox event to the payment and its order (idempotent)."""
    return await writer.run(
        records.settle,
        provider=sandbox.NAME,
        event_id=event.id,
        payment_id=event.payment_id,
        succeeded=event.type == "payment.succeeded",
        amount_cents=event.amount_cents,
        currency=event.currency,
        refund_ref=sandbox.refund_ref(),
        now=utcnow(),
    )


async def refund(
    session: AsyncSession,
    writer: OrderWriter,
    *,
    order: Order,
    actor: User,
    amount_cents: int,
    reason: str,
) -> int:
    """Refund part or all of a paid order through its provider; returns the refund's id.
    An operator's refund of a shop's order is audited."""
    refund_id = await writer.run(
        records.refund,
        order_id=order.id,
        amount_cents=amount_cents,
        reason=reason,
        actor_id=actor.id,
        provider_ref=sandbox.refund_ref(),
        now=utcnow(),
    )
    await accounts.record_operator_act(
        session, actor=actor, action="order.refund", target_type="order", target_id=order.id,
        detail={"amount_cents": amount_cents, "reason": reason},
    )  # fmt: skip
    return int(refund_id)


async def get_refund(session: AsyncSession, *, refund_id: int) -> Refund | None:
    return await session.get(Refund, refund_id)


async def request_refund(
    writer: OrderWriter, *, order: Order, buyer_id: int, reason: str, after_sales: timedelta
) -> None:
    """The buyer asks for a refund of a paid order (or a received one, within
    ``after_sales`` of receipt)."""
    await writer.run(
        records.request_refund,
        order_id=order.id,
        buyer_id=buyer_id,
        reason=reason,
        now=utcnow(),
        after_sales=after_sales,
    )


class WebhookDelivery:
    """The sandbox gateway's courier: delivers its due events to the platform's webhook."""

    def __init__(self, engine: AsyncEngine, *, url: str, secret: bytes) -> None:
        self._engine = engine
        self._url = url
        self._secret = secret
        self._client = httpx.AsyncClient(timeout=10)
        self._kick = asyncio.Event()

    def kick(self) -> None:
        """Deliver now rather than at the next round (a buyer has just paid)."""
        self._kick.set()

    async def run(self, *, interval_seconds: float) -> None:
        """Deliver forever, every ``interval_seconds`` or when kicked; errors are logged."""
        while True:
            try:
                await sandbox.deliver_due(
                    self._engine, self._client, url=self._url, secret=self._secret
                )
            except Exception:
                log.exception("sandbox webhook delivery failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), interval_seconds)
            self._kick.clear()

    async def close(self) -> None:
        await self._client.aclose()
