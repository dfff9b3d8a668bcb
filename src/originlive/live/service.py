"""Rules of live sessions: scheduling, going live, pins, reminders, moderation and replay.

These change the database in the request's transaction; what the room should show is
published by the routes once it has committed (``rooms.Hub``).
"""

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.accounts import service as accounts
from originlive.accounts.models import Role, User
from originlive.catalog import service as catalog
from originlive.catalog.models import Shop, ShopStatus, Sku
from originlive.db import utcnow
from originlive.errors import Conflict, InvalidInput
from originlive.live import schemas
from originlive.live.models import (
    LiveComment,
    LivePin,
    LiveReminder,
    LiveSession,
    RoomSanction,
    SanctionKind,
    SessionStatus,
)
from originlive.orders.models import FlashOffer, Order, OrderItem
from originlive.regions import service as regions
from originlive.regions.models import Region, RegionLevel

MAX_REPLAY_EVENTS = 20_000


def new_stream_key() -> str:
    """A secret no one guesses: 192 random bits."""
    return "live_" + secrets.token_urlsafe(24)


# Sessions


async def get_session(session: AsyncSession, *, session_id: int) -> LiveSession | None:
    """The live session, or None."""
    return await session.get(LiveSession, session_id, populate_existing=True)


def shows(shop: Shop | None) -> bool:
    """Whether anyone may see a session of this shop (None: an anchor's own): its shop is
    approved, or it has none."""
    return shop is None or shop.status == ShopStatus.APPROVED


def _shown() -> ColumnElement[bool]:
    """:func:`shows` in SQL, for a query joined to the session's shop (outer)."""
    return or_(LiveSession.shop_id.is_(None), Shop.status == ShopStatus.APPROVED)


@dataclass(frozen=True)
class Host:
    """Whose session it is, as pages and the API name it: its shop, or (an anchor's own
    session) its anchor."""

    name: str
    anchor_name: str
    shop: Shop | None


async def create_session(
    session: AsyncSession, *, shop: Shop | None, anchor: User, data: schemas.LiveSessionCreate
) -> LiveSession:
    """Schedule a session of the shop (None: the anchor's own) with the caller as its anchor."""
    live = LiveSession(
        shop_id=shop.id if shop is not None else None,
        anchor_id=anchor.id,
        title=data.title,
        description=data.description,
        cover_url=data.cover_url,
        scheduled_at=data.scheduled_at,
        stream_key=new_stream_key(),
        likes=0,
    )
    session.add(live)
    if not anchor.has_role(Role.ANCHOR):
        await accounts.grant_role(session, user=anchor, role=Role.ANCHOR)
    await session.flush()
    return live


async def update_session(
    session: AsyncSession, *, live: LiveSession, data: schemas.LiveSessionUpdate
) -> LiveSession:
    """Change what buyers read of the session before or while it runs."""
    if live.status == SessionStatus.ENDED:
        raise Conflict("The session has ended.")
    for name, value in data.model_dump(exclude_unset=True).items():
        setattr(live, name, value if name != "description" else (value or ""))
    await session.flush()
    return live


async def list_sessions(
    session: AsyncSession,
    *,
    statuses: Sequence[SessionStatus],
    region_code: str | None,
    limit: int,
    offset: int,
) -> tuple[Sequence[LiveSession], int]:
    """Sessions anyone may see (:func:`shows`) in those states, in a region's subtree if one is
    given (sessions of its shops: an anchor's own carries goods from anywhere): live ones
    first (newest first), then upcoming (soonest first), then ended."""
    query = (
        select(LiveSession)
        .outerjoin(Shop, Shop.id == LiveSession.shop_id)
        .where(_shown(), LiveSession.status.in_(statuses))
    )
    if region_code is not None:
        region = await regions.get_or_404(session, code=region_code, field="region")
        query = query.where(regions.within(region, Shop.region_code.expression))
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    order: list[ColumnElement[Any]] = [
        (LiveSession.status != SessionStatus.LIVE),
        (LiveSession.status != SessionStatus.SCHEDULED),
        # Live and ended ones newest first; upcoming ones (not started) by their time.
        LiveSession.started_at.desc(),
        LiveSession.scheduled_at.is_(None),
        LiveSession.scheduled_at.asc(),
        LiveSession.id.desc(),
    ]
    rows = (await session.scalars(query.order_by(*order).limit(limit).offset(offset))).all()
    return rows, int(total or 0)


async def shop_sessions(
    session: AsyncSession, *, shop_id: int | None = None, anchor_id: int | None = None, limit: int
) -> Sequence[LiveSession]:
    """A shop's sessions, or those an anchor anchors, in any state, for its console: live,
    upcoming, then past ones."""
    query = select(LiveSession)
    if shop_id is not None:
        query = query.where(LiveSession.shop_id == shop_id)
    if anchor_id is not None:
        query = query.where(LiveSession.anchor_id == anchor_id)
    order: list[ColumnElement[Any]] = [
        (LiveSession.status != SessionStatus.LIVE),
        (LiveSession.status != SessionStatus.SCHEDULED),
        LiveSession.id.desc(),
    ]
    return (await session.scalars(query.order_by(*order).limit(limit))).all()


async def start(session: AsyncSession, *, live: LiveSession) -> LiveSession:
    """Scheduled -> live."""
    if live.status != SessionStatus.SCHEDULED:
        raise Conflict(f"The session is {live.status.value}; only a scheduled one can start.")
    live.status = SessionStatus.LIVE
    live.started_at = utcnow()
    await session.flush()
    return live


async def end(session: AsyncSession, *, live: LiveSession) -> LiveSession:
    """Live (or scheduled, cancelled) -> ended; the pinned offer comes down."""
    if live.status == SessionStatus.ENDED:
        raise Conflict("The session has already ended.")
    now = utcnow()
    live.status = SessionStatus.ENDED
    live.ended_at = now
    live.started_at = live.started_at or now
    await _unpin(session, live=live, now=now)
    await session.flush()
    return live


async def rotate_stream_key(session: AsyncSession, *, live: LiveSession) -> LiveSession:
    """A new stream key; the old one no longer publishes."""
    if live.status == SessionStatus.ENDED:
        raise Conflict("The session has ended.")
    live.stream_key = new_stream_key()
    await session.flush()
    return live


async def shops_of(session: AsyncSession, lives: Iterable[LiveSession]) -> dict[int, Shop]:
    """The shops of these sessions (anchors' own have none), by id."""
    ids = {live.shop_id for live in lives if live.shop_id is not None}
    rows = await session.scalars(select(Shop).where(Shop.id.in_(ids)))
    return {shop.id: shop for shop in rows}


async def hosts_of(session: AsyncSession, lives: Iterable[LiveSession]) -> dict[int, Host]:
    """Whose each of these sessions is, by session id."""
    lives = list(lives)
    shops = await shops_of(session, lives)
    anchor_ids = {live.anchor_id for live in lives}
    rows = await session.execute(select(User.id, User.display_name).where(User.id.in_(anchor_ids)))
    names: dict[int, str] = {user_id: name for user_id, name in rows}
    hosts: dict[int, Host] = {}
    for live in lives:
        shop = shops[live.shop_id] if live.shop_id is not None else None
        anchor_name = names.get(live.anchor_id, "")
        hosts[live.id] = Host(shop.name if shop else anchor_name, anchor_name, shop)
    return hosts


async def host_of(session: AsyncSession, live: LiveSession) -> Host:
    """Whose the session is."""
    return (await hosts_of(session, [live]))[live.id]


async def live_of_shop(session: AsyncSession, *, shop_id: int) -> Sequence[LiveSession]:
    """The shop's sessions that are live now."""
    query = select(LiveSession).where(
        LiveSession.shop_id == shop_id, LiveSession.status == SessionStatus.LIVE
    )
    return (await session.scalars(query)).all()


async def pinning_product(session: AsyncSession, *, product_id: int) -> Sequence[LiveSession]:
    """The sessions whose pinned offer sells the product."""
    query = (
        select(LiveSession)
        .join(FlashOffer, FlashOffer.id == LiveSession.pinned_offer_id)
        .join(Sku, Sku.id == FlashOffer.sku_id)
        .where(Sku.product_id == product_id)
    )
    return (await session.scalars(query)).all()


async def pinning_shop(session: AsyncSession, *, shop_id: int) -> Sequence[LiveSession]:
    """The sessions whose pinned offer sells the shop's goods (anchors' own among them)."""
    query = (
        select(LiveSession)
        .join(FlashOffer, FlashOffer.id == LiveSession.pinned_offer_id)
        .where(FlashOffer.shop_id == shop_id)
    )
    return (await session.scalars(query)).all()


async def offers_of(session: AsyncSession, *, session_ids: Sequence[int]) -> Sequence[FlashOffer]:
    """The flash offers opened in these sessions, oldest first."""
    query = select(FlashOffer).where(FlashOffer.live_session_id.in_(set(session_ids)))
    return (
        await session.scalars(query.order_by(FlashOffer.id).limit(200 * len(session_ids)))
    ).all()


# Reminders


async def remind(session: AsyncSession, *, live: LiveSession, user: User) -> None:
    """Ask to be reminded when the session goes live (asking twice is asking once)."""
    if live.status == SessionStatus.ENDED:
        raise Conflict("The session has ended.")
    if await session.get(LiveReminder, (live.id, user.id)) is None:
        session.add(LiveReminder(session_id=live.id, user_id=user.id))
        await session.flush()


async def forget_reminder(session: AsyncSession, *, live: LiveSession, user: User) -> None:
    """No more reminder of this session."""
    await session.execute(
        delete(LiveReminder).where(
            LiveReminder.session_id == live.id, LiveReminder.user_id == user.id
        )
    )


async def reminder_counts(session: AsyncSession, session_ids: Iterable[int]) -> dict[int, int]:
    """How many buyers asked to be reminded of each session."""
    rows = await session.execute(
        select(LiveReminder.session_id, func.count())
        .where(LiveReminder.session_id.in_(set(session_ids)))
        .group_by(LiveReminder.session_id)
    )
    return {session_id: count for session_id, count in rows}


async def reminders_of(session: AsyncSession, *, user: User) -> Sequence[LiveSession]:
    """The sessions the user asked to be reminded of that have not ended: live first."""
    query = (
        select(LiveSession)
        .join(LiveReminder, LiveReminder.session_id == LiveSession.id)
        .where(LiveReminder.user_id == user.id, LiveSession.status != SessionStatus.ENDED)
        .order_by(LiveSession.status != SessionStatus.LIVE, LiveSession.scheduled_at)
    )
    return (await session.scalars(query.limit(100))).all()


# Pins


async def pin(session: AsyncSession, *, live: LiveSession, offer: FlashOffer) -> None:
    """Pin one of the session's offers in the room (the one pinned before comes down)."""
    if live.status == SessionStatus.ENDED:
        raise Conflict("The session has ended.")
    if offer.live_session_id != live.id:
        raise InvalidInput(f"Offer {offer.id} is not one of this session's.", field="offer_id")
    if live.pinned_offer_id == offer.id:
        return
    now = utcnow()
    await _unpin(session, live=live, now=now)
    live.pinned_offer_id = offer.id
    session.add(LivePin(session_id=live.id, offer_id=offer.id, pinned_at=now))
    await session.flush()


async def unpin(session: AsyncSession, *, live: LiveSession) -> None:
    """Take the pinned offer down."""
    await _unpin(session, live=live, now=utcnow())
    await session.flush()


async def _unpin(session: AsyncSession, *, live: LiveSession, now: datetime) -> None:
    if live.pinned_offer_id is None:
        return
    await session.execute(
        update(LivePin)
        .where(LivePin.session_id == live.id, LivePin.unpinned_at.is_(None))
        .values(unpinned_at=now)
    )
    live.pinned_offer_id = None


# Moderation


async def sanction(
    session: AsyncSession,
    *,
    live: LiveSession,
    kind: SanctionKind,
    data: schemas.SanctionCreate,
    by: User,
) -> RoomSanction:
    """Mute or ban a user in the room (again: the new term replaces the old)."""
    if data.user_id in (live.anchor_id, by.id):
        raise InvalidInput("The anchor and you cannot be muted or banned.", field="user_id")
    if await session.get(User, data.user_id) is None:
        raise InvalidInput(f"No user {data.user_id}.", field="user_id")
    until = utcnow() + timedelta(minutes=data.minutes) if data.minutes else None
    row = await session.get(RoomSanction, (live.id, data.user_id, kind))
    if row is None:
        row = RoomSanction(session_id=live.id, user_id=data.user_id, kind=kind, by_id=by.id)
        session.add(row)
    row.until, row.by_id, row.created_at = until, by.id, utcnow()
    await session.flush()
    return row


async def lift(
    session: AsyncSession, *, live: LiveSession, kind: SanctionKind, user_id: int
) -> bool:
    """Lift a mute or ban; whether there was one."""
    result = await session.execute(
        delete(RoomSanction).where(
            RoomSanction.session_id == live.id,
            RoomSanction.user_id == user_id,
            RoomSanction.kind == kind,
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def sanctions(session: AsyncSession, *, session_id: int) -> Sequence[RoomSanction]:
    """The room's mutes and bans still in force."""
    query = select(RoomSanction).where(
        RoomSanction.session_id == session_id,
        or_(RoomSanction.until.is_(None), RoomSanction.until > utcnow()),
    )
    return (await session.scalars(query.order_by(RoomSanction.created_at))).all()


async def list_comments(
    session: AsyncSession, *, session_id: int, after_seq: int, limit: int
) -> Sequence[LiveComment]:
    """The room's comments after a ``seq``, deleted ones included, oldest first."""
    query = (
        select(LiveComment)
        .where(LiveComment.session_id == session_id, LiveComment.seq > after_seq)
        .order_by(LiveComment.seq)
        .limit(limit)
    )
    return (await session.scalars(query)).all()


async def recent_comments(
    session: AsyncSession, *, session_id: int, before_seq: int | None, limit: int
) -> Sequence[LiveComment]:
    """The room's latest comments (before a ``seq``, if given), deleted ones included,
    newest first: what a moderator looks at."""
    query = select(LiveComment).where(LiveComment.session_id == session_id)
    if before_seq is not None:
        query = query.where(LiveComment.seq < before_seq)
    return (await session.scalars(query.order_by(LiveComment.seq.desc()).limit(limit))).all()


async def delete_comment(session: AsyncSession, *, session_id: int, seq: int) -> None:
    """Take a comment off the record (the room takes it off every screen). A comment not yet
    written down, or being written as this runs, is struck by the room's writer once the
    deletion is announced (see ``rooms.Hub``)."""
    await session.execute(
        update(LiveComment)
        .where(
            LiveComment.session_id == session_id,
            LiveComment.seq == seq,
            LiveComment.deleted_at.is_(None),
        )
        .values(deleted_at=utcnow())
    )


# What the rooms write and read


async def store_comments(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Write down a batch of comments said in rooms."""
    if rows:
        await session.execute(insert(LiveComment), rows)


async def add_likes(session: AsyncSession, counts: dict[int, int]) -> dict[int, int]:
    """Add likes to sessions; their new totals."""
    totals = {}
    for session_id, count in sorted(counts.items()):
        total = await session.scalar(
            update(LiveSession)
            .where(LiveSession.id == session_id)
            .values(likes=LiveSession.likes + count)
            .returning(LiveSession.likes)
        )
        if total is not None:
            totals[session_id] = int(total)
    return totals


async def room_of_offers(session: AsyncSession, offer_ids: Iterable[int]) -> dict[int, int | None]:
    """Each offer's session (None for an offer on its own)."""
    rows = await session.execute(
        select(FlashOffer.id, FlashOffer.live_session_id).where(FlashOffer.id.in_(set(offer_ids)))
    )
    return dict(rows.all())


async def remaining(session: AsyncSession, offer_ids: Iterable[int]) -> dict[int, int]:
    """The units each offer has left."""
    rows = await session.execute(
        select(FlashOffer.id, FlashOffer.remaining).where(FlashOffer.id.in_(set(offer_ids)))
    )
    return dict(rows.all())


async def county_names(session: AsyncSession, codes: Iterable[str]) -> dict[str, str]:
    """For each region code, the name of its county (of the region itself, above a county)."""
    places = await session.scalars(select(Region).where(Region.code.in_(set(codes))))
    names = await catalog.place_names(session, places=places)
    depth = RegionLevel.COUNTY.depth
    return {code: path[min(depth, len(path) - 1)] for code, path in names.items() if path}


# Replay


async def replay(session: AsyncSession, *, live: LiveSession) -> list[schemas.ReplayEvent]:
    """The session's comments, pins and purchases, by time from the start of the stream."""
    start = live.started_at or live.created_at
    events: list[tuple[datetime, str, dict[str, Any]]] = []
    comments = await session.execute(
        select(
            LiveComment.seq,
            LiveComment.user_id,
            LiveComment.author,
            LiveComment.text,
            LiveComment.created_at,
        )
        .where(LiveComment.session_id == live.id, LiveComment.deleted_at.is_(None))
        .order_by(LiveComment.seq)
        .limit(MAX_REPLAY_EVENTS)
    )
    for seq, user_id, author, text, at in comments:
        user = {"id": user_id, "name": author}
        events.append((at, "comment", {"seq": seq, "user": user, "text": text}))
    pins = await session.execute(
        select(LivePin.offer_id, LivePin.pinned_at, LivePin.unpinned_at, FlashOffer.title)
        .join(FlashOffer, FlashOffer.id == LivePin.offer_id)
        .where(LivePin.session_id == live.id)
    )
    for offer_id, pinned_at, unpinned_at, title in pins:
        events.append((pinned_at, "pin", {"offer_id": offer_id, "title": title}))
        if unpinned_at is not None:
            events.append((unpinned_at, "unpin", {"offer_id": offer_id}))
    bought = await session.execute(
        select(
            Order.created_at,
            Order.ship_region_code,
            OrderItem.title,
            OrderItem.quantity,
            OrderItem.offer_id,
        )
        .join(OrderItem, OrderItem.order_id == Order.id)
        .join(FlashOffer, FlashOffer.id == OrderItem.offer_id)
        .where(FlashOffer.live_session_id == live.id)
        .order_by(Order.id)
        .limit(MAX_REPLAY_EVENTS)
    )
    purchases = bought.all()
    counties = await county_names(session, {p[1] for p in purchases})
    for at, code, title, quantity, bought_offer in purchases:
        county = counties.get(code, code)
        data = {"offer_id": bought_offer, "county": county, "item": title, "quantity": quantity}
        events.append((at, "purchase", data))
    events.sort(key=lambda e: e[0])
    return [
        schemas.ReplayEvent(
            offset_ms=max(0, int((at - start).total_seconds() * 1000)), type=kind, data=data
        )
        for at, kind, data in events
    ]


async def is_public(session: AsyncSession, *, live: LiveSession) -> bool:
    """Whether anyone may see the session (:func:`shows`)."""
    if live.shop_id is None:
        return shows(None)
    shop = await catalog.get_shop(session, shop_id=live.shop_id)
    return shop is not None and shows(shop)
