"""HTML routes of room moderation: the live (and ended) sessions for operators, and each
room's moderation page for whoever runs it (its anchor, its shop's managers, operators):
recent comments to delete, their authors to mute or ban, and the sanctions to lift.

The changes are ``live.control``'s, as the JSON routes make them, so the room hears of them
the same way once they have committed. Every form works as a plain POST answered with a 303
back to the page; where htmx has loaded, the answer's section replaces the page's own."""

from typing import Annotated, Any

from fastapi import Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.accounts.deps import CurrentUser, Operator
from originlive.accounts.models import Role, User
from originlive.catalog.pages import MAX_PAGE, PageParam
from originlive.db import SessionDep
from originlive.errors import NotFound, OriginliveError
from originlive.inputs import MAX_ID
from originlive.live import control, schemas, service
from originlive.live.api import Seq
from originlive.live.deps import RoomHub, RunSession
from originlive.live.models import LiveSession, SanctionKind, SessionStatus
from originlive.live.rooms import Hub
from originlive.routing import Router
from originlive.web.deps import get_viewer
from originlive.web.templating import N_, gettext, render

router = Router(
    prefix="/operator/live",
    tags=["pages"],
    include_in_schema=False,
    dependencies=[Depends(get_viewer)],
)

SESSIONS_PAGE = 20
COMMENTS_PAGE = 50
MUTE_MINUTES = 10
DONE = {
    "deleted": N_("The comment is deleted."),
    "muted": N_("The user is muted for %(minutes)s minutes."),
    "banned": N_("The user is banned from this room."),
    "unmuted": N_("The mute is lifted."),
    "unbanned": N_("The ban is lifted."),
}
CANNOT_SANCTION = N_("That user cannot be muted or banned in this room.")
NOTHING_TO_LIFT = N_("That user is no longer muted or banned here.")

UserField = Annotated[int, Form(ge=1, le=MAX_ID)]


async def _viewers(hub: Hub, live: LiveSession) -> int | None:
    """Viewers of a live room in every process (None once it has ended)."""
    if live.status != SessionStatus.LIVE:
        return None
    room = hub.rooms.get(live.id)
    # The broker's count is every process's report; this one's is what it holds (the room
    # ticker reports the same each second), so asking writes nothing new.
    return await hub.broker.viewers(live.id, len(room.viewers) if room else 0)


@router.get("", response_class=HTMLResponse)
async def sessions(
    request: Request, operator: Operator, session: SessionDep, hub: RoomHub, page: PageParam = 1
) -> HTMLResponse:
    """Live rooms first, then those that ended, newest first, each with its moderation link."""
    statuses = [SessionStatus.LIVE, SessionStatus.ENDED]
    offset = (page - 1) * SESSIONS_PAGE
    lives, total = await service.list_sessions(
        session, statuses=statuses, region_code=None, limit=SESSIONS_PAGE, offset=offset
    )
    hosts = await service.hosts_of(session, lives)
    context = {
        "sessions": [(live, hosts[live.id], await _viewers(hub, live)) for live in lives],
        "page": page,
        "has_next": page * SESSIONS_PAGE < total and page < MAX_PAGE,
    }
    return render(request, "live/operator/sessions.html", context)


async def _names(session: AsyncSession, user_ids: set[int]) -> dict[int, str]:
    rows = await session.execute(select(User.id, User.display_name).where(User.id.in_(user_ids)))
    return {user_id: name for user_id, name in rows}


async def _room(
    request: Request,
    session: AsyncSession,
    hub: Hub,
    live: LiveSession,
    user: User,
    *,
    before: int | None = None,
    status_code: int = 200,
    **extra: Any,
) -> HTMLResponse:
    """The moderation page (``extra``: a notice, or why the last form was refused)."""
    comments = await service.recent_comments(
        session, session_id=live.id, before_seq=before, limit=COMMENTS_PAGE + 1
    )
    sanctions = await service.sanctions(session, session_id=live.id)
    context = {
        "live": live,
        "host": await service.host_of(session, live),
        "viewers": await _viewers(hub, live),
        "comments": comments[:COMMENTS_PAGE],
        "older": comments[COMMENTS_PAGE - 1].seq if len(comments) > COMMENTS_PAGE else None,
        "before": before,
        "sanctions": sanctions,
        "sanctioned": {(s.user_id, s.kind.value) for s in sanctions},
        "names": await _names(session, {s.user_id for s in sanctions}),
        "unsanctionable": {live.anchor_id, user.id},  # the service refuses these
        "is_operator": user.has_role(Role.OPERATOR),
        "mute_minutes": MUTE_MINUTES,
        "notice": None,
        "message": None,
    }
    return render(request, "live/operator/room.html", context | extra, status_code=status_code)


def _back(live: LiveSession, done: str) -> RedirectResponse:
    return RedirectResponse(f"/operator/live/{live.id}?done={done}", status_code=303)


@router.get("/{session_id}", response_class=HTMLResponse)
async def room(
    request: Request,
    live: RunSession,
    session: SessionDep,
    hub: RoomHub,
    user: CurrentUser,
    before: Annotated[int | None, Query(ge=1, le=2**53)] = None,
    done: Annotated[str, Query(max_length=20)] = "",
) -> HTMLResponse:
    """A room's recent comments, newest first, and its mutes and bans, to act on."""
    notice = gettext(DONE[done], minutes=MUTE_MINUTES) if done in DONE else None
    return await _room(request, session, hub, live, user, before=before, notice=notice)


@router.post("/{session_id}/comments/{seq}/delete", response_class=HTMLResponse)
async def delete_comment(
    seq: Seq, live: RunSession, session: SessionDep, hub: RoomHub, user: CurrentUser
) -> RedirectResponse:
    """Delete a comment: it leaves every screen and the record."""
    await control.delete_comment(session, hub, live=live, seq=seq, user=user)
    return _back(live, "deleted")


async def _sanction(
    request: Request,
    session: AsyncSession,
    hub: Hub,
    live: LiveSession,
    user: User,
    *,
    kind: SanctionKind,
    data: dict[str, Any],
) -> Response:
    try:
        sanction = schemas.SanctionCreate.model_validate(data)
        await control.sanction(session, hub, live=live, kind=kind, data=sanction, user=user)
    except (ValidationError, OriginliveError) as exc:
        # The service checks before it writes: nothing is left to roll back.
        status = exc.status if isinstance(exc, OriginliveError) else 422
        message = gettext(CANNOT_SANCTION)
        return await _room(request, session, hub, live, user, status_code=status, message=message)
    return _back(live, {SanctionKind.MUTE: "muted", SanctionKind.BAN: "banned"}[kind])


@router.post("/{session_id}/mutes", response_class=HTMLResponse)
async def mute(
    request: Request,
    live: RunSession,
    session: SessionDep,
    hub: RoomHub,
    user: CurrentUser,
    user_id: UserField,
) -> Response:
    """Mute a comment's author for ten minutes: they may watch but not comment."""
    data = {"user_id": user_id, "minutes": MUTE_MINUTES}
    return await _sanction(request, session, hub, live, user, kind=SanctionKind.MUTE, data=data)


@router.post("/{session_id}/bans", response_class=HTMLResponse)
async def ban(
    request: Request,
    live: RunSession,
    session: SessionDep,
    hub: RoomHub,
    user: CurrentUser,
    user_id: UserField,
) -> Response:
    """Ban a comment's author from the room for the rest of the session."""
    data = {"user_id": user_id}
    return await _sanction(request, session, hub, live, user, kind=SanctionKind.BAN, data=data)


@router.post("/{session_id}/lift", response_class=HTMLResponse)
async def lift(
    request: Request,
    live: RunSession,
    session: SessionDep,
    hub: RoomHub,
    user: CurrentUser,
    user_id: UserField,
    kind: Annotated[SanctionKind, Form()],
) -> Response:
    """Lift a mute or a ban."""
    try:
        await control.lift(session, hub, live=live, kind=kind, user_id=user_id, user=user)
    except NotFound:  # lifted meanwhile, or it ran out: the page shows what is in force
        message = gettext(NOTHING_TO_LIFT)
        return await _room(request, session, hub, live, user, status_code=404, message=message)
    return _back(live, {SanctionKind.MUTE: "unmuted", SanctionKind.BAN: "unbanned"}[kind])
