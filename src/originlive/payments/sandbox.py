"""The sandbox provider: a payment gateway that lives beside the platform and acts like one.

It has its own checkout page (``/sandbox/checkout/{token}``) where the buyer chooses to pay or
to fail, its own outbox of events, and it tells the platform what happened the way a real
gateway does: a JSON webhook signed with HMAC-SHA256, retried with growing delays until the
platform answers 2xx. Refunds are settled at once and given a reference.
"""

import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from originlive.db import utcnow
from originlive.errors import InvalidInput, OriginliveError
from originlive.inputs import Id, json_value, whole
from originlive.payments.models import SandboxWebhook

log = logging.getLogger(__name__)

NAME = "sandbox"
SIGNATURE_HEADER = "Sandbox-Signature"
TOLERANCE_SECONDS = 300
MAX_BACKOFF_SECONDS = 600


class BadSignature(OriginliveError):
    status = 400
    title = "Bad signature"
    slug = "bad-signature"


class Event(BaseModel):
    """A provider's word on a payment, as its signed webhook says it; other fields are ignored."""

    model_config = ConfigDict(frozen=True)

    id: Annotated[str, StringConstraints(min_length=1, max_length=64)]  # the receipts' key
    type: Annotated[str, StringConstraints(max_length=64)]
    payment_id: Id
    amount_cents: Annotated[int, Field(strict=True, ge=0)]
    currency: Annotated[str, StringConstraints(max_length=8)]


def webhook_secret(secret_key: str) -> bytes:
    """The key both sides sign with, derived from the platform's secret."""
    return hmac.new(secret_key.encode(), b"sandbox-webhook", hashlib.sha256).digest()


def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    """The signature header's value: ``t=<unix time>,v1=<hex HMAC of "t.body">``."""
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def signed_json(
    secret: bytes, headers: Mapping[str, str], body: bytes, *, now: float | None = None
) -> Any:
    """The JSON of a webhook's body, if its signature is ours and fresh; else
    ``BadSignature``. (The sandbox's payouts sign their webhooks the same way.)"""
    parts = dict(p.split("=", 1) for p in headers.get(SIGNATURE_HEADER, "").split(",") if "=" in p)
    timestamp = whole(parts.get("t", ""))
    if timestamp is None:
        raise BadSignature("Missing or malformed signature header.")
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    if not hmac.compare_digest(expected, parts.get("v1", "")):
        raise BadSignature("The signature does not match.")
    if abs((now or time.time()) - timestamp) > TOLERANCE_SECONDS:
        raise BadSignature("The signature is too old (or from the future).")
    try:
        return json_value(body)
    except ValueError:
        raise BadSignature("A signed body that is not JSON.") from None


def verify(
    secret: bytes, headers: Mapping[str, str], body: bytes, *, now: float | None = None
) -> Event:
    """The event in a webhook, if its signature is ours and fresh; else ``BadSignature``, or
    ``InvalidInput`` for a signed event that no payment of ours can match."""
    data = signed_json(secret, headers, body, now=now)
    try:
        return Event.model_validate(data)
    except ValidationError as exc:  # signed, yet no event of ours: an id past 2**31, say
        field = ".".join(str(part) for part in exc.errors()[0]["loc"]) or "body"
        raise InvalidInput(f"A signed event with a bad {field}.", field=field) from None


def new_checkout_token() -> str:
    return secrets.token_urlsafe(24)


def checkout_path(token: str) -> str:
    return f"/sandbox/checkout/{token}"


def refund_ref() -> str:
    """The gateway's reference for a refund it has settled."""
    return f"sbx_rf_{secrets.token_hex(8)}"


async def decide(
    engine: AsyncEngine, *, payment_id: int, amount_cents: int, currency: str, succeed: bool
) -> bool:
    """The buyer's choice on the checkout page, queued as an event; False if already decided."""
    payload = {
        "id": f"evt_{payment_id}_{secrets.token_hex(6)}",
        "type": "payment.succeeded" if succeed else "payment.failed",
        "payment_id": payment_id,
        "amount_cents": amount_cents,
        "currency": currency,
    }
    try:
        async with engine.begin() as conn:
            await conn.execute(
                insert(SandboxWebhook).values(
                    # One decision per payment: the gateway's own rule.
                    event_id=f"decision_{payment_id}",
                    payload=json.dumps(payload),
                    attempts=0,
                    next_at=utcnow(),
                )
            )
    except IntegrityError:
        return False
    return True


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(2**attempts, MAX_BACKOFF_SECONDS))


async def deliver_due(
    engine: AsyncEngine, client: httpx.AsyncClient, *, url: str, secret: bytes, limit: int = 100
) -> int:
    """POST every due event to ``url``; returns how many were acknowledged."""
    now = utcnow()
    async with engine.connect() as conn:
        due = (
            await conn.execute(
                select(SandboxWebhook.id, SandboxWebhook.payload, SandboxWebhook.attempts)
                .where(SandboxWebhook.delivered_at.is_(None), SandboxWebhook.next_at <= now)
                .order_by(SandboxWebhook.id)
                .limit(limit)
            )
        ).all()
    delivered = 0
    for row in due:
        body = row.payload.encode()
        error = None
        try:
            response = await client.post(
                url,
                content=body,
                headers={
                    "Content-Type": "application/json",
                    SIGNATURE_HEADER: sign(secret, body, int(time.time())),
                },
            )
            if not response.is_success:
                error = f"HTTP {response.status_code}: {response.text[:200]}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        values: dict[str, object] = {"attempts": row.attempts + 1, "last_error": error}
        if error is None:
            values["delivered_at"] = utcnow()
            delivered += 1
        else:
            values["next_at"] = utcnow() + _backoff(row.attempts)
            log.warning("sandbox webhook %s not acknowledged: %s", row.id, error)
        async with engine.begin() as conn:
            await conn.execute(
                update(SandboxWebhook).where(SandboxWebhook.id == row.id).values(**values)
            )
    return delivered
