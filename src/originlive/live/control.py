"""Running a session as the JSON routes, the console pages and the media ingest all do it:
going live, ending, the stream key, offers and pins, and moderating its room (the JSON routes
and the moderation pages). Each makes the change, then (once committed) tells the room,
closes the session's open offers or puts the encoder out."""

from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from originlive.accounts import service as accounts
from originlive.accounts.models import User
from originlive.batching import OrderWriter
from originlive.catalog import service as catalog
from originlive.db import after_commit
from originlive.errors import Forbidden, InvalidInput, NotFound
from originlive.live import schemas, service
from originlive.live.models import LiveSession, RoomSanction, SanctionKind, SessionStatus
from originlive.live.rooms import Hub, offer_event
from originlive.orders import service as orders
from originlive.orders.gate import Gate
from originlive.orders.models import FlashOffer, OfferStatus
from originlive.orders.placing import Attribution


class Ingest(Protocol):
    """What running a session needs of the media ingest (``media.ingest.Media``)."""

    async def put_out(self, session_id: int) -> None: ...


async def audit(
    session: AsyncSession, user: User, action: str, live: LiveSession, **detail: Any
) -> None:
    """Record what an operator did to a session (owners' own acts are not)."""
    await accounts.record_operator_act(
        session, actor=user, action=action, target_type="live_session", target_id=live.id,
        detail=detail or None,
    )  # fmt: skip


def put_out(session: AsyncSession, media: Ingest, live: LiveSession) -> None:
    """Once committed, the session's encoder is put out: with an external media server,
    through it (the media ingest's ``put_out``; in the embedded mode its sweep does so within
    a second). Best effort: the request has succeeded whatever it answers."""
    session_id = live.id

    async def put_out() -> None:
        await media.put_out(session_id)

    after_commit(session, put_out)


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
    session: AsyncSession,
    hub: Hub,
    writer: OrderWriter,
    gate: Gate,
    *,
    live: LiveSession,
    closed: bool = False,
) -> LiveSession:
    """End the session: the room is told (``closed``: it shuts for good, everyone in it put
    out), and its open offers end (their unsold units go back to the SKUs)."""
    live = await service.end(session, live=live)
    announce(session, hub, live, "pin", offer=None)
    shut = {"closed": True} if closed else {}
    announce(session, hub, live, "status", status=live.status.value, **shut)
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


@dataclass(frozen=True)
class StopSelling:
    """What follows when a shop or product stops selling (``catalog.service.OffSale``): its
    rooms close or its pin comes down at once, and once committed the order sweep ends its
    offers (units back to the SKUs) and cancels a stopped shop's unpaid orders. The sweep
    also runs every few seconds, so a crash between the two loses nothing."""

    hub: Hub
    writer: OrderWriter
    gate: Gate
    media: Ingest

    async def shop_stopped(self, session: AsyncSession, *, shop_id: int) -> None:
        """The shop's live sessions end and their rooms close: everyone in them is put out
        and no one gets in again (the rooms of a shop not approved are not there)."""
        for live in await service.live_of_shop(session, shop_id=shop_id):
            await end(session, self.hub, self.writer, self.gate, live=live, closed=True)
            put_out(session, self.media, live)
        # Anchors' own sessions carry on without its goods: its pin comes down there.
        for live in await service.pinning_shop(session, shop_id=shop_id):
            await take_down(session, self.hub, live=live)
        self._sweep(session)

    async def product_hidden(self, session: AsyncSession, *, product_id: int) -> None:
        """Rooms pinning an offer of the product take it down."""
        for live in await service.pinning_product(session, product_id=product_id):
            await take_down(session, self.hub, live=live)
        self._sweep(session)

    def _sweep(self, session: AsyncSession) -> None:
        async def sweep() -> None:
            await orders.sweep(self.writer, self.gate)

        after_commit(session, sweep)


async def start(session: AsyncSession, hub: Hub, *, live: LiveSession, user: User) -> LiveSession:
    """Go live by hand (without video, or before the encoder connects)."""
    if live.shop_id is not None:  # an anchor's own session has no shop to wait for
        shop = await catalog.get_shop(session, shop_id=live.shop_id)
        if shop is None or not service.shows(shop):
            raise Forbidden("The shop goes live once an operator approves it.")
    live = await go_live(session, hub, live=live)
    await audit(session, user, "live.start", live)
    return live


async def finish(
    session: AsyncSession,
    hub: Hub,
    writer: OrderWriter,
    gate: Gate,
    media: Ingest,
    *,
    live: LiveSession,
    user: User,
) -> LiveSession:
    """End the session by hand, and put its encoder out."""
    live = await end(session, hub, writer, gate, live=live)
    put_out(session, media, live)
    await audit(session, user, "live.end", live)
    return live


async def rotate_key(
    session: AsyncSession, media: Ingest, *, live: LiveSession, user: User
) -> LiveSession:
    """A new stream key; an encoder on the old one is put out and refused if it returns."""
    live = await service.rotate_stream_key(session, live=live)
    put_out(session, media, live)
    await audit(session, user, "live.stream_key", live)
    return live


async def open_offer(
    session: AsyncSession,
    writer: OrderWriter,
    hub: Hub,
    *,
    live: LiveSession,
    user: User,
    data: schemas.SessionOfferCreate,
) -> FlashOffer:
    """Open a flash offer of the session's shop in the room (and pin it, if asked)."""
    if live.shop_id is None:
        raise InvalidInput(
            "An anchor's own session sells what its line-up's shops approve: propose it there.",
            field="sku_id",
        )
    sku = await catalog.get_sku(session, sku_id=data.sku_id)
    if sku is None or sku.product.shop_id != live.shop_id:
        raise InvalidInput(f"No SKU {data.sku_id} of this session's shop.", field="sku_id")
    if live.status == SessionStatus.ENDED:
        raise InvalidInput("The session has ended.", field="session_id")
    sold_by = Attribution(live_session_id=live.id, anchor_id=live.anchor_id)
    offer_id = await orders.open_offer(writer, sku=sku, data=data, sold_by=sold_by)
    offer = await orders.get_offer(session, offer_id=offer_id)
    assert offer is not None
    if data.pin:
        await pin(session, hub, live=live, offer=offer, user=user)
    return offer


async def pin(
    session: AsyncSession, hub: Hub, *, live: LiveSession, offer: FlashOffer, user: User
) -> None:
    """Pin one of the session's open offers: every viewer sees it."""
    if offer.status != OfferStatus.ACTIVE:
        raise InvalidInput(f"Offer {offer.id} has ended.", field="offer_id")
    await service.pin(session, live=live, offer=offer)
    announce(session, hub, live, "pin", offer=offer_event(offer))
    await audit(session, user, "live.pin", live, offer_id=offer.id)


async def take_down(session: AsyncSession, hub: Hub, *, live: LiveSession) -> None:
    """Take the pinned offer down; the room is told once committed."""
    await service.unpin(session, live=live)
    announce(session, hub, live, "pin", offer=None)


async def unpin(session: AsyncSession, hub: Hub, *, live: LiveSession, user: User) -> None:
    """Take the pinned offer down by hand."""
    await take_down(session, hub, live=live)
    await audit(session, user, "live.unpin", live)


# Moderation


async def sanction(
    session: AsyncSession,
    hub: Hub,
    *,
    live: LiveSession,
    kind: SanctionKind,
    data: schemas.SanctionCreate,
    user: User,
) -> RoomSanction:
    """Mute or ban a user in the room; every process's room enforces it once committed."""
    row = await service.sanction(session, live=live, kind=kind, data=data, by=user)
    until = row.until.isoformat() if row.until else None
    announce(session, hub, live, "moderation", action=kind.value, user_id=row.user_id, until=until)
    await audit(session, user, f"live.{kind.value}", live, user_id=row.user_id, until=until)
    return row


async def lift(
    session: AsyncSession,
    hub: Hub,
    *,
    live: LiveSession,
    kind: SanctionKind,
    user_id: int,
    user: User,
) -> None:
    """Lift a mute or ban; 404 if the user is under none."""
    if not await service.lift(session, live=live, kind=kind, user_id=user_id):
        raise NotFound(f"User {user_id} is not under a {kind.value} in this room.")
    announce(session, hub, live, "moderation", action=f"un{kind.value}", user_id=user_id)
    await audit(session, user, f"live.un{kind.value}", live, user_id=user_id)


async def delete_comment(
    session: AsyncSession, hub: Hub, *, live: LiveSession, seq: int, user: User
) -> None:
    """Delete a comment: once committed it leaves the room's recent comments and every screen."""
    await service.delete_comment(session, session_id=live.id, seq=seq)

    async def forget() -> None:
        await hub.broker.forget(live.id, seq)
        await hub.publish(live.id, "moderation", {"action": "delete", "comment_seq": seq})

    after_commit(session, forget)
    await audit(session, user, "live.delete_comment", live, seq=seq)


async def end_offer(
    session: AsyncSession,
    hub: Hub,
    writer: OrderWriter,
    gate: Gate,
    *,
    live: LiveSession,
    offer: FlashOffer,
    user: User,
) -> int:
    """Close one of the session's offers now (and take it down if pinned); returns the units
    that went back to its SKU."""
    # The writer commits on its own: first, before this request's transaction writes (on
    # SQLite a second writer would wait for it to commit, which comes after this returns).
    returned = await orders.close_offer(session, writer, gate, offer=offer, actor=user)
    if live.pinned_offer_id == offer.id:
        await unpin(session, hub, live=live, user=user)
    return returned
