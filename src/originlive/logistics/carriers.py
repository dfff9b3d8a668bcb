"""Outside carriers behind one adapter, and the sandbox carrier.

A carrier books the parcels handed to it (giving each a waybill number, or taking the one the
merchant already has) and tells us what becomes of them in webhooks, in its own words, which
its adapter maps to our one set of statuses (``ParcelStatus``), as shipping aggregators map
every carrier's tracking codes to a normalised few. A carrier not in the registry is
*manual*: any name a merchant types (中国邮政, 顺丰), with the merchant's waybill and no webhooks.

The sandbox carrier (``sandbox``) acts like a real one, beside the platform, as the sandbox
payment gateway does: a parcel handed to it is collected, travels, goes out for delivery (a
waybill ending in 9 fails once, nobody at home, and goes out again the next step) and is
signed for, an event every ``sandbox_carrier_step_seconds``; its courier posts each event,
when its time comes, as a signed webhook (HMAC-SHA256, with the same header scheme as the
payment sandbox) to ``/api/v1/carriers/sandbox/webhook``, and posts it again until it is
acknowledged.

It keeps no books of its own, so that it needs no table: its parcels are the parcels with
carrier ``sandbox``, its schedule for a waybill is a pure function of the waybill and when the
parcel was handed over (:func:`plan`), and an event is acknowledged once it is among the
parcel's tracking events (the platform records an event before it answers 2xx, so that is
the same thing). It posts a waybill's events in order, the next one only once the one before
is in; how often an event was refused, and which ones it gave up on, it keeps in memory.
"""

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from originlive.db import utcnow
from originlive.errors import Forbidden, InvalidInput, NotFound, OriginliveError
from originlive.inputs import Moment, json_value, whole
from originlive.logistics.models import Parcel, ParcelStatus, TrackingEvent
from originlive.logistics.tracking import CarrierEvent
from originlive.settings import Settings
from originlive.text import one_line

__all__ = ["Booking", "Carrier", "CarrierEvent", "ManualCarrier", "SandboxCarrier"]

log = logging.getLogger(__name__)

SANDBOX = "sandbox"
SIGNATURE_HEADER = "Sandbox-Carrier-Signature"
TOLERANCE_SECONDS = 300
MAX_BACKOFF_SECONDS = 600
WEBHOOK_PATH = "/api/v1/carriers/{name}/webhook"


class BadSignature(Forbidden):
    """A webhook not signed with the carrier's secret, or signed too long ago: a carrier
    retries on 5xx only, so a forger is told no once."""

    title = "Bad signature"
    slug = "bad-signature"


class MalformedBody(OriginliveError):
    title = "Malformed JSON"
    slug = "malformed-json"


@dataclass(frozen=True, slots=True)
class Booking:
    """A parcel handed to a carrier, as booking it needs it."""

    order_id: int
    region_code: str  # the buyer's
    weight_grams: int | None
    waybill: str | None  # the merchant's own, booked with the carrier already


class Carrier(Protocol):
    """An outside carrier, as the platform uses it."""

    @property
    def name(self) -> str:
        """What a merchant types to choose it, and what parcels carry in ``carrier``."""
        ...

    async def book(self, booking: Booking) -> str:
        """The waybill number of a parcel handed to the carrier."""
        ...

    def parse_webhook(
        self, headers: Mapping[str, str], body: bytes, *, secret: bytes
    ) -> list[CarrierEvent]:
        """The events a webhook carries, in our statuses, if it is signed with ``secret``
        (the deployment's credential with the carrier, kept in settings, not in code);
        ``BadSignature``, ``MalformedBody`` or ``InvalidInput`` otherwise."""
        ...


class ManualCarrier:
    """A carrier we cannot book with or hear from: the merchant's waybill, no webhooks."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def book(self, booking: Booking) -> str:
        """The merchant's waybill; none is a 422 naming ``tracking_number``."""
        if booking.waybill is None:
            raise InvalidInput(
                f"Enter the {self.name} waybill number: we cannot book with {self.name}.",
                field="tracking_number",
            )
        return booking.waybill

    def parse_webhook(
        self, headers: Mapping[str, str], body: bytes, *, secret: bytes
    ) -> list[CarrierEvent]:
        raise NotFound(f"Carrier {self.name!r} sends us no webhooks.")


# The sandbox carrier's own words for what happens to a parcel, and ours for each.
SANDBOX_STATUSES: Mapping[str, ParcelStatus] = {
    "ACCEPTED": ParcelStatus.PICKED_UP,  # 揽收: collected from the shop
    "DEPARTED": ParcelStatus.IN_TRANSIT,  # 发出: left a sorting centre
    "IN_TRANSIT": ParcelStatus.IN_TRANSIT,  # 运输中
    "ARRIVED": ParcelStatus.AT_NODE,  # 到达: at a sorting centre or delivery station
    "OUT_FOR_DELIVERY": ParcelStatus.OUT_FOR_DELIVERY,  # 派件
    "AT_PICKUP_POINT": ParcelStatus.READY_FOR_PICKUP,  # 待取件: in a locker or a shop
    "DELIVERY_FAILED": ParcelStatus.FAILED_ATTEMPT,  # 派件失败: nobody home, refused
    "EXCEPTION": ParcelStatus.FAILED_ATTEMPT,  # 疑难件: held up (wrong address, damage)
    "SIGNED": ParcelStatus.DELIVERED,  # 签收
    "RETURNED": ParcelStatus.RETURNED,  # 退回: back with the shop
}


def sandbox_status(code: str) -> ParcelStatus | None:
    """Our status for the sandbox carrier's code; None for a code it does not use."""
    return SANDBOX_STATUSES.get(code)


EventId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{8,64}$")]
Waybill = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{4,40}$")]


class _SandboxEvent(BaseModel):
    # Fields a carrier adds later are ignored, as a carrier's webhook grows.
    model_config = ConfigDict(frozen=True)

    id: EventId
    waybill: Waybill
    status: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    time: Moment
    location: Annotated[str, one_line(80)] | None = None
    reason: Annotated[str, one_line(100)] | None = None


class _SandboxWebhook(BaseModel):
    model_config = ConfigDict(frozen=True)

    events: list[_SandboxEvent] = Field(min_length=1, max_length=100)


def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    """The signature header's value: ``t=<unix time>,v1=<hex HMAC-SHA256 of "t.body">``."""
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(
    secret: bytes, headers: Mapping[str, str], body: bytes, *, now: float | None = None
) -> None:
    """Nothing if the body is signed with ``secret`` within the last five minutes; else
    ``BadSignature``."""
    parts = dict(p.split("=", 1) for p in headers.get(SIGNATURE_HEADER, "").split(",") if "=" in p)
    timestamp = whole(parts.get("t", ""))
    if timestamp is None:
        raise BadSignature("Missing or malformed signature header.")
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    if not hmac.compare_digest(expected, parts.get("v1", "")):
        raise BadSignature("The signature does not match.")
    if abs((now or time.time()) - timestamp) > TOLERANCE_SECONDS:
        raise BadSignature("The signature is too old (or from the future).")


class SandboxCarrier:
    """The sandbox carrier's adapter: it issues waybills and speaks ``SANDBOX_STATUSES``."""

    name = SANDBOX

    async def book(self, booking: Booking) -> str:
        """The merchant's waybill, or a new one: SBX and ten random digits, never ending in 9
        (a waybill that fails once is the merchant's choice, so that what happens is known)."""
        issued = secrets.randbelow(10**9) * 10 + secrets.randbelow(9)
        return booking.waybill or f"SBX{issued:010d}"

    def parse_webhook(
        self, headers: Mapping[str, str], body: bytes, *, secret: bytes
    ) -> list[CarrierEvent]:
        verify(secret, headers, body)  # before reading a byte of it
        try:
            data = json_value(body)
        except ValueError:
            raise MalformedBody("The webhook's body is not JSON (or is nested too deep).") from None
        try:
            webhook = _SandboxWebhook.model_validate(data)
        except ValidationError as exc:
            field_name = ".".join(str(part) for part in exc.errors()[0]["loc"]) or "body"
            raise InvalidInput(f"A webhook with a bad {field_name}.", field=field_name) from None
        events = []
        for n, event in enumerate(webhook.events):
            status = sandbox_status(event.status)
            if status is None:  # its words are ours to know: a new one is a change to map
                raise InvalidInput(
                    f"Unknown sandbox carrier status {event.status!r}.", field=f"events.{n}.status"
                )
            note = " · ".join(part for part in (event.location, event.reason) if part)
            events.append(
                CarrierEvent(
                    event_id=event.id,
                    waybill=event.waybill,
                    status=status,
                    happened_at=event.time,
                    note=note or None,
                )
            )
        return events


# The registry: carriers we book with and hear from, by name.
REGISTRY: Mapping[str, Carrier] = {SANDBOX: SandboxCarrier()}


def registered(name: str) -> Carrier | None:
    """The carrier of that name (in any case) if we work with it, else None."""
    return REGISTRY.get(name.strip().casefold())


def carrier_for(name: str) -> Carrier:
    """The carrier a merchant named: a registered one, else a manual one by that name."""
    return registered(name) or ManualCarrier(name)


def webhook_secrets(settings: Settings) -> dict[str, bytes]:
    """Each registered carrier's webhook secret, by its name."""
    if settings.sandbox_carrier_secret:
        sandbox = settings.sandbox_carrier_secret.encode()
    else:  # derived, so that a fresh deployment is signed with no setting, yet not guessably
        key = settings.resolved_secret_key.encode()
        sandbox = hmac.new(key, b"sandbox-carrier-webhook", hashlib.sha256).digest()
    return {SANDBOX: sandbox}


# The sandbox carrier's schedule and its courier


@dataclass(frozen=True, slots=True)
class Planned:
    """An event of the sandbox carrier's schedule for a waybill."""

    event_id: str
    waybill: str
    status: str  # the carrier's own word (``SANDBOX_STATUSES``)
    at: datetime
    location: str
    reason: str | None = None

    def body(self) -> bytes:
        """The webhook the courier posts for it."""
        event = {
            "id": self.event_id,
            "waybill": self.waybill,
            "status": self.status,
            "time": self.at.isoformat(),
            "location": self.location,
        }
        if self.reason is not None:
            event["reason"] = self.reason
        return json.dumps({"events": [event]}, ensure_ascii=False).encode()


_OUT = ("OUT_FOR_DELIVERY", "派送站", None)
_ROUND = (
    ("ACCEPTED", "发货地揽收点", None),
    ("DEPARTED", "始发分拨中心", None),
    ("ARRIVED", "目的分拨中心", None),
    _OUT,
)
_FAILED = (("DELIVERY_FAILED", "派送站", "无人在家，改日再派"), _OUT)
_SIGNED = ("SIGNED", "收件人", None)


def fails_once(waybill: str) -> bool:
    """Whether the sandbox finds nobody home the first time: a waybill ending in 9."""
    return waybill.endswith("9")


def plan(waybill: str, *, handed_at: datetime, step: timedelta) -> list[Planned]:
    """What the sandbox carrier will say of a waybill handed over at ``handed_at``, in order:
    collected, in transit, arrived, out for delivery (once more after a failed attempt) and
    signed for, ``step`` apart."""
    words = (*_ROUND, *(_FAILED if fails_once(waybill) else ()), _SIGNED)
    return [
        Planned(f"sbx-{waybill}-{n}", waybill, status, handed_at + step * n, location, reason)
        for n, (status, location, reason) in enumerate(words, start=1)
    ]


@dataclass
class Retries:
    """What the courier remembers between rounds: when it may post a refused event again,
    and the events the platform answered 4xx, which it gave up on (a carrier retries on 5xx,
    and when it could not reach us, only)."""

    waiting: dict[str, tuple[int, datetime]] = field(default_factory=dict)
    abandoned: set[str] = field(default_factory=set)

    def may_post(self, event_id: str, now: datetime) -> bool:
        return self.waiting.get(event_id, (0, now))[1] <= now

    def failed(self, event_id: str, now: datetime) -> None:
        attempts, _ = self.waiting.get(event_id, (0, now))
        wait = timedelta(seconds=min(2**attempts, MAX_BACKOFF_SECONDS))
        self.waiting[event_id] = (attempts + 1, now + wait)


async def deliver_due(
    engine: AsyncEngine,
    client: httpx.AsyncClient,
    *,
    url: str,
    secret: bytes,
    step: timedelta,
    now: datetime | None = None,
    retries: Retries | None = None,
    limit: int = 500,
) -> int:
    """Post every event of the sandbox carrier's schedule whose time has come (by ``now``,
    the carrier's clock) and that the platform has not recorded, each waybill's in order;
    returns how many were acknowledged."""
    now = now or utcnow()
    retries = retries or Retries()
    final = [s for s in ParcelStatus if s.final]
    async with engine.connect() as conn:
        parcels = (
            await conn.execute(
                select(Parcel.id, Parcel.carrier_tracking, Parcel.created_at)
                .where(
                    Parcel.carrier == SANDBOX,
                    Parcel.carrier_tracking.is_not(None),
                    Parcel.status.not_in(final),
                )
                .order_by(Parcel.id)
                .limit(limit)
            )
        ).all()
        if not parcels:
            return 0
        recorded = (
            await conn.execute(
                select(TrackingEvent.parcel_id, TrackingEvent.scan_id).where(
                    TrackingEvent.parcel_id.in_([p.id for p in parcels]),
                    TrackingEvent.source == "carrier",
                )
            )
        ).all()
    seen: dict[int, set[str]] = {p.id: set() for p in parcels}
    for parcel_id, scan_id in recorded:
        seen[parcel_id].add(scan_id)
    waybills: dict[str, tuple[datetime, set[str]]] = {}
    for p in parcels:  # a waybill's event is in once every parcel on it has it
        handed_at, acked = waybills.get(p.carrier_tracking, (p.created_at, seen[p.id]))
        waybills[p.carrier_tracking] = (min(handed_at, p.created_at), acked & seen[p.id])
    delivered = 0
    for waybill, (handed_at, acked) in waybills.items():
        for event in plan(waybill, handed_at=handed_at, step=step):
            if event.at > now:
                break
            if event.event_id in acked or event.event_id in retries.abandoned:
                continue
            if not retries.may_post(event.event_id, now):
                break
            error, retry = await _post(client, url, secret, event)
            if error is None:
                retries.waiting.pop(event.event_id, None)
                delivered += 1
                continue
            log.warning("sandbox carrier event %s not acknowledged: %s", event.event_id, error)
            if not retry:
                retries.abandoned.add(event.event_id)
                continue
            retries.failed(event.event_id, now)
            break  # the waybill's later events wait for this one
    return delivered


async def _post(
    client: httpx.AsyncClient, url: str, secret: bytes, event: Planned
) -> tuple[str | None, bool]:
    """The error of posting the event, if any, and whether to try again later."""
    body = event.body()
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(secret, body, int(time.time())),
    }
    try:
        response = await client.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"[:500], True
    if response.is_success:
        return None, False
    again = response.status_code >= 500 or response.status_code == 429  # busy, not refused
    return f"HTTP {response.status_code}: {response.text[:200]}", again


class SandboxCourier:
    """The sandbox carrier's courier: posts its due events to the platform's webhook."""

    def __init__(
        self, engine: AsyncEngine, *, url: str, secret: bytes, step_seconds: float
    ) -> None:
        self._engine = engine
        self._url = url
        self._secret = secret
        self._step = timedelta(seconds=step_seconds)
        self._client = httpx.AsyncClient(timeout=10)
        self._retries = Retries()

    async def run(self, *, interval_seconds: float) -> None:
        """Deliver forever, every ``interval_seconds``; errors are logged."""
        while True:
            try:
                await deliver_due(
                    self._engine, self._client, url=self._url, secret=self._secret,
                    step=self._step, retries=self._retries,
                )  # fmt: skip
            except Exception:
                log.exception("sandbox carrier delivery failed")
            await asyncio.sleep(interval_seconds)

    async def close(self) -> None:
        await self._client.aclose()
