"""Which live session a request may reach, and the room hub."""

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.accounts.deps import CurrentUser, OptionalUser
from originlive.accounts.models import Role, User
from originlive.catalog import service as catalog
from originlive.catalog.deps import RowId, can_manage
from originlive.catalog.models import Shop
from originlive.db import SessionDep
from originlive.errors import Forbidden, NotFound
from originlive.live import service
from originlive.live.models import LiveSession
from originlive.live.rooms import Hub
from originlive.orders import service as orders
from originlive.orders.models import FlashOffer


def get_hub(request: Request) -> Hub:
    """This process's live rooms."""
    hub: Hub = request.app.state.hub
    return hub


RoomHub = Annotated[Hub, Depends(get_hub)]


async def get_anchor(user: CurrentUser) -> User:
    """The signed-in anchor; 403 for everyone else."""
    if not user.has_role(Role.ANCHOR):
        raise Forbidden("Only anchors may do this: run a live session first.")
    return user


async def shop_of(session: AsyncSession, live: LiveSession) -> Shop | None:
    """The session's shop (a foreign key keeps it); None for an anchor's own session."""
    if live.shop_id is None:
        return None
    shop = await catalog.get_shop(session, shop_id=live.shop_id)
    assert shop is not None
    return shop


def can_run(user: User | None, live: LiveSession, shop: Shop | None) -> bool:
    """The anchor runs the session; so do operators, and the managers of its shop if any."""
    if user is None:
        return False
    if shop is None:
        return user.id == live.anchor_id or user.has_role(Role.OPERATOR)
    return user.id == live.anchor_id or can_manage(user, shop)


async def get_visible_session(
    session_id: RowId, session: SessionDep, user: OptionalUser
) -> LiveSession:
    """The session if anyone may see it (``service.shows``) or the caller runs it; else 404."""
    live = await service.get_session(session, session_id=session_id)
    if live is None:
        raise NotFound(f"No live session {session_id}.")
    shop = await shop_of(session, live)
    if not service.shows(shop) and not can_run(user, live, shop):
        raise NotFound(f"No live session {session_id}.")
    return live


async def get_run_session(
    live: Annotated[LiveSession, Depends(get_visible_session)],
    session: SessionDep,
    user: CurrentUser,
) -> LiveSession:
    """The session if the caller is its anchor, manages its shop or is an operator; else 403."""
    if not can_run(user, live, await shop_of(session, live)):
        raise Forbidden(f"You do not run live session {live.id}.")
    return live


async def get_session_offer(
    offer_id: RowId,
    live: Annotated[LiveSession, Depends(get_run_session)],
    session: SessionDep,
) -> FlashOffer:
    """One of the offers of the session the caller runs; else 404."""
    offer = await orders.get_offer(session, offer_id=offer_id)
    if offer is None or offer.live_session_id != live.id:
        raise NotFound(f"No offer {offer_id} in live session {live.id}.")
    return offer


Anchor = Annotated[User, Depends(get_anchor)]
VisibleSession = Annotated[LiveSession, Depends(get_visible_session)]
RunSession = Annotated[LiveSession, Depends(get_run_session)]
SessionOffer = Annotated[FlashOffer, Depends(get_session_offer)]
