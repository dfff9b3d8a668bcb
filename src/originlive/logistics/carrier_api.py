"""Where outside carriers tell us what became of their parcels: a signed webhook a carrier.

What a carrier hears back decides whether it posts again (on 5xx only, as carriers do): an
unknown carrier, or one with no webhooks, is a 404; a bad or stale signature a 403, before
the body is read; a body that is not JSON a 400, one that is not the carrier's events (or
has a status we cannot map) a 422; a waybill no parcel of that carrier has a 404 (it may
have been booked for a shipment that then failed here: nothing will ever match it). Either
way nothing is written. An event delivered again is answered 200 with ``duplicate``.
"""

from typing import Annotated

from fastapi import Path, Request
from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError

from originlive.db import utcnow
from originlive.errors import NotFound
from originlive.logistics import carriers, tracking
from originlive.logistics.models import ParcelStatus
from originlive.orders.deps import Writer
from originlive.routing import Router

router = Router(prefix="/api/v1", tags=["delivery"])


class CarrierEventRecorded(BaseModel):
    parcel_code: str
    status: ParcelStatus = Field(description="The parcel's, after the event.")
    duplicate: bool = Field(description="Delivered before: recorded then, not again.")


class CarrierWebhookResult(BaseModel):
    recorded: list[CarrierEventRecorded]


@router.post("/carriers/{name}/webhook", response_model=CarrierWebhookResult)
async def carrier_webhook(
    name: Annotated[str, Path(max_length=40)], request: Request, writer: Writer
) -> CarrierWebhookResult:
    """A carrier's events on its waybills, signed with its secret; safe to repeat. The
    parcels move to what their events imply, in whatever order the events come."""
    carrier = carriers.registered(name)
    secrets: dict[str, bytes] = request.app.state.carrier_secrets
    if carrier is None or carrier.name not in secrets:
        raise NotFound(f"No carrier {name!r} sends us webhooks.")
    events = carrier.parse_webhook(
        request.headers, await request.body(), secret=secrets[carrier.name]
    )
    record = {"carrier": carrier.name, "events": events}
    try:
        done = await writer.run(tracking.record_carrier_events, **record, now=utcnow())
    except IntegrityError:  # the same event delivered twice at once: the other one is in now
        done = await writer.run(tracking.record_carrier_events, **record, now=utcnow())
    return CarrierWebhookResult(
        recorded=[
            CarrierEventRecorded(parcel_code=d.parcel_code, status=d.status, duplicate=d.duplicate)
            for d in done
        ]
    )
