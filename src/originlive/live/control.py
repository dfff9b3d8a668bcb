"""Going live and ending, as the routes and the media ingest both do it: the change, then
(once committed) the room told and the session's open offers closed."""

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from originlive.batching import OrderWriter
from originlive.db import after_commit
from originlive.live import service
from originlive.live.models import LiveSession
from originlive.live.rooms import Hub
from originlive.orders import service as orders
from originlive.orders.gate import Gate
from originlive.orders.models import OfferStatus


def announce(session: AsyncSession, hub: Hub, live: LiveSession, kind: str, **fields: Any) -> None:
    """Publish a room event once the session's transaction has committed."""

    async def publish() -> None:
        await hub.publish(live.id, kind, fields)

    after_commit(session, publish)


async def go_live(session: AsyncSession, hub: Hub, *, live: LiveSession) -> LiveSession:
    """Scheduled -> live; the room is told."""
    live = await service.start(session, live=live)
    announce(session, hub, live, "status", status=live.status.value)
    return live


async def end(
    session: AsyncSession, hub: Hub, writer: OrderWriter, gate: Gate, *, live: LiveSession
) -> LiveSession:
    """End the session: the room is told, and its open offers end (their unsold units go
    back to the SKUs)."""
    live = await service.end(session, live=live)
    announce(session, hub, live, "pin", offer=None)
    announce(session, hub, live, "status", status=live.status.value)
    open_offers = [
        o
        for o in await service.offers_of(session, session_ids=[live.id])
        if o.status == OfferStatus.ACTIVE
    ]

    async def end_offers() -> None:
        for offer in open_offers:
            await orders.end_offer(writer, gate, offer=offer)

    after_commit(session, end_offers)
    return live
