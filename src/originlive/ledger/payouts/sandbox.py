"""The sandbox payout provider: a bank beside the platform that pays, or refuses, as one would.

It accepts every transfer at once (its reference is ``sbx_po_{id}``) and tells the platform
what became of it the way a real provider does: a JSON webhook to
``/api/v1/payouts/sandbox/webhook``, signed with HMAC-SHA256 as the payment sandbox's are
(``payments.sandbox.sign``), sent again each round until the platform has recorded an answer.
A transfer whose amount ends in ``FAILING_FEN`` fen (say ¥123.13) is refused, as a bank
refuses a closed account, so that the failure path can be seen; every other one is paid.
"""

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Mapping
from typing import Annotated, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from originlive.errors import InvalidInput, NotAuthenticated
from originlive.inputs import Id
from originlive.ledger.payouts.models import Payout, PayoutStatus
from originlive.ledger.payouts.service import Transfer
from originlive.payments.sandbox import SIGNATURE_HEADER, BadSignature, sign, signed_json

log = logging.getLogger(__name__)

NAME = "sandbox"
WEBHOOK_PATH = "/api/v1/payouts/sandbox/webhook"
FAILING_FEN = 13
PAID, FAILED = "payout.paid", "payout.failed"


class Unsigned(NotAuthenticated):
    """A webhook without our signature: answered 401, nothing written."""

    title = "Bad signature"
    slug = "bad-signature"


class Event(BaseModel):
    """The provider's word on a payout, as its signed webhook says it."""

    model_config = ConfigDict(frozen=True)

    id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    type: Literal["payout.paid", "payout.failed"]
    payout_id: Id
    amount_fen: Annotated[int, Field(strict=True, ge=1, le=10**15)]
    currency: Annotated[str, StringConstraints(min_length=3, max_length=3)]
    reason: Annotated[str, StringConstraints(max_length=200)] | None = None


def webhook_secret(secret_key: str) -> bytes:
    """The key both sides sign payout webhooks with, derived from the platform's secret (not
    the payments' key: one leaked does not forge the other)."""
    return hmac.new(secret_key.encode(), b"sandbox-payout-webhook", hashlib.sha256).digest()


def verify(
    secret: bytes, headers: Mapping[str, str], body: bytes, *, now: float | None = None
) -> Event:
    """The event in a webhook if its signature is ours and fresh (else ``Unsigned``), or
    ``InvalidInput`` for a signed body that is no payout event."""
    try:
        data = signed_json(secret, headers, body, now=now)
    except BadSignature as exc:
        raise Unsigned(exc.detail) from None
    try:
        return Event.model_validate(data)
    except ValidationError as exc:
        field = ".".join(str(part) for part in exc.errors()[0]["loc"]) or "body"
        raise InvalidInput(f"A signed event with a bad {field}.", field=field) from None


def outcome(transfer: Transfer) -> Event:
    """What the sandbox bank makes of a transfer."""
    fails = transfer.amount_fen % 100 == FAILING_FEN
    return Event(
        id=f"po_evt_{transfer.id}",
        type=FAILED if fails else PAID,
        payout_id=transfer.id,
        amount_fen=transfer.amount_fen,
        currency=transfer.currency,
        reason="The receiving account is closed." if fails else None,
    )


class SandboxProvider:
    """The sandbox bank's API: every transfer is accepted; the answer comes by webhook."""

    name = NAME

    async def send(self, transfer: Transfer) -> str:
        return f"sbx_po_{transfer.id}"


async def deliver_due(
    engine: AsyncEngine, client: httpx.AsyncClient, *, url: str, secret: bytes, limit: int = 100
) -> int:
    """Post the answer to every sandbox payout accepted and not yet answered; returns how many
    the platform acknowledged."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(
                    Payout.id,
                    Payout.account,
                    Payout.amount_fen,
                    Payout.currency,
                    Payout.idempotency_key,
                )
                .where(
                    Payout.provider == NAME,
                    Payout.status == PayoutStatus.REQUESTED,
                    Payout.provider_ref.is_not(None),
                )
                .order_by(Payout.id)
                .limit(limit)
            )
        ).all()
    acknowledged = 0
    for row in rows:
        body = payload(outcome(Transfer(*row)))
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(secret, body, int(time.time())),
        }
        try:
            response = await client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("sandbox payout webhook %s not delivered: %s", row.id, exc)
            continue
        if response.is_success:
            acknowledged += 1
        else:
            log.warning("sandbox payout webhook %s: HTTP %s", row.id, response.status_code)
    return acknowledged


def payload(event: Event) -> bytes:
    """An event's body as the sandbox sends it."""
    return json.dumps(event.model_dump(exclude_none=True)).encode()


class Courier:
    """The sandbox bank's side of the webhooks: delivers its answers every round."""

    def __init__(self, engine: AsyncEngine, *, url: str, secret: bytes) -> None:
        self._engine = engine
        self._url = url
        self._secret = secret
        self._client = httpx.AsyncClient(timeout=10)

    async def run(self, *, interval_seconds: float) -> None:
        """Deliver forever, every ``interval_seconds``; errors are logged."""
        while True:
            try:
                await deliver_due(self._engine, self._client, url=self._url, secret=self._secret)
            except Exception:
                log.exception("sandbox payout webhooks failed")
            await asyncio.sleep(interval_seconds)

    async def close(self) -> None:
        await self._client.aclose()
