"""JSON routes of live sessions: scheduling, going live, offers and pins, reminders,
moderation and replay. What the room should show is published once the change has committed
(``db.after_commit``)."""

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import Path, Query, Request, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.accounts.deps import CurrentUser, OptionalUser
from originlive.accounts.models import Role, User
from originlive.catalog import service as catalog
from originlive.catalog.api import Limit, Offset
from originlive.catalog.deps import RowId, can_manage
from originlive.catalog.schemas import Page, RegionCode
from originlive.db import SessionDep
from originlive.errors import Forbidden, InvalidInput, NotFound
from originlive.live import control, schemas, service
from originlive.live.deps import (
    RoomHub,
    RunSession,
    SessionOffer,
    VisibleSession,
    can_run,
    shop_of,
)
from originlive.live.models import LiveSession, SanctionKind, SessionStatus
from originlive.orders.deps import StockGate, Writer
from originlive.orders.schemas import Offer
from originlive.routing import Router

router = Router(prefix="/api/v1", tags=["live"])

# A room event's number: with Redis it starts at Redis's clock in ms (realtime/broker.py).
Seq = Annotated[int, Path(ge=1, le=2**53)]


async def _view(
    request: Request, session: AsyncSession, live: LiveSession, user: User | None
) -> schemas.LiveSession:
    return (await _views(request, session, [live], user))[0]


async def _views(
    request: Request, session: AsyncSession, lives: Sequence[LiveSession], user: User | None
) -> list[schemas.LiveSession]:
    """The sessions as the caller may see them, with three queries for all of them."""
    ids = [live.id for live in lives]
    hosts = await service.hosts_of(session, lives)
    offers: dict[int, list[Offer]] = {i: [] for i in ids}
    for offer in await service.offers_of(session, session_ids=ids):
        assert offer.live_session_id is not None
        offers[offer.live_session_id].append(Offer.model_validate(offer))
    reminders = await service.reminder_counts(session, ids)
    settings = request.app.state.settings
    views: list[schemas.LiveSession] = []
    for live in lives:
        host = hosts[live.id]
        shop = host.shop
        fields: dict[str, Any] = {
            "id": live.id,
            "shop_id": live.shop_id,
            "shop_name": shop.name if shop else None,
            "region_code": shop.region_code if shop else None,
            "anchor_id": live.anchor_id,
            "anchor_name": host.anchor_name,
            "title": live.title,
            "description": live.description,
            "cover_url": live.cover_url,
            "scheduled_at": live.scheduled_at,
            "status": live.status,
            "started_at": live.started_at,
            "ended_at": live.ended_at,
            "likes": live.likes,
            "reminders": reminders.get(live.id, 0),
            "pinned_offer": next(
                (o for o in offers[live.id] if o.id == live.pinned_offer_id), None
            ),
            "offers": offers[live.id],
            "playback_url": f"{settings.resolved_public_url}/media/hls/{live.id}/index.m3u8",
            "replay_url": (
                f"{settings.resolved_public_url}/media/recordings/{live.id}/index.m3u8"
                if live.status == SessionStatus.ENDED and live.recording_ms
                else None
            ),
            "recording_seconds": live.recording_ms / 1000 if live.recording_ms else None,
            "room_url": f"/ws/live/{live.id}",
        }
        if can_run(user, live, shop):
            managed = {"stream_key": live.stream_key, "ingest_url": settings.ingest_url}
            views.append(schemas.LiveSessionManaged(**fields, **managed))
        else:
            views.append(schemas.LiveSession(**fields))
    return views


# Sessions


@router.post(
    "/live-sessions",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.LiveSessionManaged,
)
async def create_session(
    body: schemas.LiveSessionCreate, request: Request, session: SessionDep, user: CurrentUser
) -> schemas.LiveSession:
    """Schedule a session of a shop you manage, or (no ``shop_id``) your own as an anchor,
    selling through its line-up; you are its anchor."""
    shop = None
    if body.shop_id is not None:
        shop = await catalog.get_shop(session, shop_id=body.shop_id)
        if shop is None or not can_manage(user, shop):
            raise InvalidInput(f"No shop {body.shop_id} that you manage.", field="shop_id")
    elif not user.has_role(Role.ANCHOR):
        raise Forbidden("Only anchors run sessions of their own; name a shop you manage.")
    live = await service.create_session(session, shop=shop, anchor=user, data=body)
    return await _view(request, session, live, user)


@router.get("/live-sessions", response_model=Page[schemas.LiveSession])
async def list_sessions(
    request: Request,
    session: SessionDep,
    user: OptionalUser,
    status_: Annotated[list[SessionStatus] | None, Query(alias="status")] = None,
    region: RegionCode | None = None,
    limit: Limit = 20,
    offset: Offset = 0,
) -> Page[schemas.LiveSession]:
    """Live sessions first, then upcoming ones (by default both), of approved shops, in a
    region and the regions below it if one is given."""
    statuses = status_ or [SessionStatus.LIVE, SessionStatus.SCHEDULED]
    rows, total = await service.list_sessions(
        session, statuses=statuses, region_code=region, limit=limit, offset=offset
    )
    items = await _views(request, session, rows, user)
    return Page(items=items, total=total, limit=limit, offset=offset)


@router.get(
    "/live-sessions/{session_id}", response_model=schemas.LiveSessionManaged | schemas.LiveSession
)
async def get_session(
    live: VisibleSession, request: Request, session: SessionDep, user: OptionalUser
) -> schemas.LiveSession:
    """A session with its offers and playback URL (and stream key, for those who run it)."""
    return await _view(request, session, live, user)


@router.patch("/live-sessions/{session_id}", response_model=schemas.LiveSessionManaged)
async def update_session(
    body: schemas.LiveSessionUpdate,
    live: RunSession,
    request: Request,
    session: SessionDep,
    user: CurrentUser,
) -> schemas.LiveSession:
    """Change the title, description, cover or time."""
    live = await service.update_session(session, live=live, data=body)
    return await _view(request, session, live, user)


@router.post("/live-sessions/{session_id}/start", response_model=schemas.LiveSessionManaged)
async def start_session(
    live: RunSession, request: Request, session: SessionDep, hub: RoomHub, user: CurrentUser
) -> schemas.LiveSession:
    """Go live (without video, or before the encoder connects); the room is told."""
    live = await control.start(session, hub, live=live, user=user)
    return await _view(request, session, live, user)


@router.post("/live-sessions/{session_id}/end", response_model=schemas.LiveSessionManaged)
async def end_session(
    live: RunSession,
    request: Request,
    session: SessionDep,
    hub: RoomHub,
    writer: Writer,
    gate: StockGate,
    user: CurrentUser,
) -> schemas.LiveSession:
    """End the session: the room is told, the session's open offers end with it (their
    unsold units go back to the SKUs), and its encoder is put out."""
    live = await control.finish(
        session, hub, writer, gate, request.app.state.media, live=live, user=user
    )
    return await _view(request, session, live, user)


@router.post("/live-sessions/{session_id}/stream-key", response_model=schemas.LiveSessionManaged)
async def rotate_stream_key(
    live: RunSession, request: Request, session: SessionDep, user: CurrentUser
) -> schemas.LiveSession:
    """A new stream key; the old one is refused from now on, and an encoder publishing with
    it is put out."""
    live = await control.rotate_key(session, request.app.state.media, live=live, user=user)
    return await _view(request, session, live, user)


# Reminders


@router.put("/live-sessions/{session_id}/reminder", status_code=status.HTTP_204_NO_CONTENT)
async def remind(live: VisibleSession, session: SessionDep, user: CurrentUser) -> Response:
    """Remind me when this session goes live."""
    await service.remind(session, live=live, user=user)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete("/live-sessions/{session_id}/reminder", status_code=status.HTTP_204_NO_CONTENT)
async def forget_reminder(live: VisibleSession, session: SessionDep, user: CurrentUser) -> Response:
    """No reminder of this session after all."""
    await service.forget_reminder(session, live=live, user=user)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me/reminders", response_model=list[schemas.Reminder])
async def my_reminders(session: SessionDep, user: CurrentUser) -> list[schemas.Reminder]:
    """The sessions I asked to be reminded of that have not ended, live ones first."""
    return [
        schemas.Reminder(
            session_id=live.id, title=live.title, status=live.status, scheduled_at=live.scheduled_at
        )
        for live in await service.reminders_of(session, user=user)
    ]


# Offers and pins


@router.post(
    "/live-sessions/{session_id}/offers", status_code=status.HTTP_201_CREATED, response_model=Offer
)
async def open_offer(
    body: schemas.SessionOfferCreate,
    live: RunSession,
    session: SessionDep,
    writer: Writer,
    hub: RoomHub,
    user: CurrentUser,
) -> Offer:
    """Open a flash offer of the session's shop in the room (and pin it, if asked)."""
    offer = await control.open_offer(session, writer, hub, live=live, user=user, data=body)
    return Offer.model_validate(offer)


@router.post("/live-sessions/{session_id}/offers/{offer_id}/pin", response_model=Offer)
async def pin_offer(
    offer: SessionOffer, live: RunSession, session: SessionDep, hub: RoomHub, user: CurrentUser
) -> Offer:
    """Pin one of the session's offers: every viewer sees it, with its price and units left."""
    await control.pin(session, hub, live=live, offer=offer, user=user)
    return Offer.model_validate(offer)


@router.post("/live-sessions/{session_id}/unpin", status_code=status.HTTP_204_NO_CONTENT)
async def unpin_offer(
    live: RunSession, session: SessionDep, hub: RoomHub, user: CurrentUser
) -> Response:
    """Take the pinned offer down."""
    await control.unpin(session, hub, live=live, user=user)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# Moderation


@router.get("/live-sessions/{session_id}/sanctions", response_model=list[schemas.Sanction])
async def list_sanctions(live: RunSession, session: SessionDep) -> list[schemas.Sanction]:
    """The room's mutes and bans in force."""
    rows = await service.sanctions(session, session_id=live.id)
    return [schemas.Sanction.model_validate(r) for r in rows]


@router.post(
    "/live-sessions/{session_id}/mutes",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.Sanction,
)
async def mute(
    body: schemas.SanctionCreate,
    live: RunSession,
    session: SessionDep,
    hub: RoomHub,
    user: CurrentUser,
) -> schemas.Sanction:
    """Mute a user in the room: they may watch but not comment, for a while or the session."""
    kind = SanctionKind.MUTE
    row = await control.sanction(session, hub, live=live, kind=kind, data=body, user=user)
    return schemas.Sanction.model_validate(row)


@router.post(
    "/live-sessions/{session_id}/bans",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.Sanction,
)
async def ban(
    body: schemas.SanctionCreate,
    live: RunSession,
    session: SessionDep,
    hub: RoomHub,
    user: CurrentUser,
) -> schemas.Sanction:
    """Ban a user from the room: their sockets are closed and they may not come back."""
    kind = SanctionKind.BAN
    row = await control.sanction(session, hub, live=live, kind=kind, data=body, user=user)
    return schemas.Sanction.model_validate(row)


@router.delete(
    "/live-sessions/{session_id}/mutes/{user_id}", status_code=status.HTTP_204_NO_CONTENT
)
async def unmute(
    user_id: RowId, live: RunSession, session: SessionDep, hub: RoomHub, user: CurrentUser
) -> Response:
    """Lift a mute."""
    await control.lift(session, hub, live=live, kind=SanctionKind.MUTE, user_id=user_id, user=user)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete("/live-sessions/{session_id}/bans/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
async def unban(
    user_id: RowId, live: RunSession, session: SessionDep, hub: RoomHub, user: CurrentUser
) -> Response:
    """Lift a ban."""
    await control.lift(session, hub, live=live, kind=SanctionKind.BAN, user_id=user_id, user=user)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/live-sessions/{session_id}/comments", response_model=list[schemas.Comment])
async def list_comments(
    live: RunSession,
    session: SessionDep,
    after_seq: Annotated[int, Query(ge=0, le=2**53)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[schemas.Comment]:
    """The room's comments for review, deleted ones included, oldest first: page on with
    ``after_seq`` (the last one's ``seq``). Written down within half a second of being said."""
    rows = await service.list_comments(
        session, session_id=live.id, after_seq=after_seq, limit=limit
    )
    return [schemas.Comment.model_validate(r) for r in rows]


@router.delete("/live-sessions/{session_id}/comments/{seq}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_comment(
    seq: Seq, live: RunSession, session: SessionDep, hub: RoomHub, user: CurrentUser
) -> Response:
    """Delete a comment: it leaves every screen and the record."""
    await control.delete_comment(session, hub, live=live, seq=seq, user=user)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# Replay


@router.get("/live-sessions/{session_id}/replay", response_model=schemas.Replay)
async def replay(live: VisibleSession, session: SessionDep, user: OptionalUser) -> schemas.Replay:
    """After the session: its comments, pins and purchases, by time from the stream's start
    (those who run it may read it during the session too)."""
    if live.status != SessionStatus.ENDED and not can_run(user, live, await shop_of(session, live)):
        raise NotFound(f"The replay of live session {live.id} is ready once it ends.")
    events = await service.replay(session, live=live)
    return schemas.Replay(
        session_id=live.id, started_at=live.started_at, ended_at=live.ended_at, events=events
    )
