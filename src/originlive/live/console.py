"""The merchant's console, live part: the shop's sessions (an anchor's own, at
``/anchor/live``), scheduling one, and the control
room of a session: where to point OBS (the RTMP server and stream key), going live and
ending, opening and pinning flash offers, and the sales as they come in.

Forms post plainly and redirect (303); the sales panel refreshes itself with htmx where
JavaScript runs, and with the page where it does not. The work is ``live.control``'s, the
same as the JSON API's, so both tell the room the same things.
"""

import datetime as dt
from typing import Annotated, Any

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from originlive.accounts.deps import CurrentUser
from originlive.accounts.models import User
from originlive.catalog import service as catalog
from originlive.catalog.deps import OwnedShop
from originlive.catalog.models import Shop
from originlive.db import SessionDep
from originlive.errors import InvalidInput, OriginliveError
from originlive.live import control, schemas, service
from originlive.live.deps import Anchor, RoomHub, RunSession, SessionOffer, shop_of
from originlive.live.models import LiveSession
from originlive.orders import service as orders
from originlive.orders.deps import StockGate, Writer
from originlive.routing import Router
from originlive.web.assets import static_url
from originlive.web.deps import get_viewer
from originlive.web.forms import cents, error_on, field_errors, moment, refused_field, typed, whole
from originlive.web.templating import N_, render
from originlive.web.templating import gettext as _

router = Router(tags=["pages"], include_in_schema=False, dependencies=[Depends(get_viewer)])

Line = Annotated[str, Form(max_length=200)]
Text = Annotated[str, Form(max_length=6000)]
SESSIONS_PAGE = 50
RECENT_ORDERS = 10
PAST = dt.timedelta(minutes=5)  # "now", typed a little late, is still now
HTMX = "vendor/htmx.org-2.0.11/htmx.min.js"  # npm htmx.org 2.0.11

MESSAGES = {
    "title": N_("Enter a title of up to 120 characters."),
    "description": N_("The description is too long."),
    "scheduled_at": N_("Choose a time from now on."),
    "sku_id": N_("Choose what to sell."),
    "price": N_("Enter a price in yuan, such as 29.90."),
    "quantity": N_("Enter how many to put on sale, at least 1, no more than you have."),
    "per_buyer_limit": N_("Enter how many one buyer may take, from 1 to 999."),
    "minutes": N_("Enter for how many minutes the offer runs, or leave it empty."),
}
FLASHES = {
    "scheduled": N_("The session is scheduled. Point your encoder at the address below."),
    "live": N_("You are live."),
    "ended": N_("The session has ended."),
    "key": N_("A new stream key: the old one no longer works."),
    "offer": N_("The offer is open."),
    "pinned": N_("Pinned: every viewer sees it."),
    "unpinned": N_("Taken down."),
    "offer_ended": N_("The offer has ended; what it had left is back in stock."),
}


def _back(live: LiveSession, flash: str) -> RedirectResponse:
    return RedirectResponse(f"/console/live/{live.id}?done={flash}", status_code=303)


# The shop's sessions


async def _sessions_page(
    request: Request,
    session: SessionDep,
    shop: Shop | None,
    values: dict[str, str],
    errors: dict[str, str],
    *,
    anchor: User | None = None,
) -> Response:
    """A shop's sessions, or (no shop) those the anchor anchors, and a form to schedule one."""
    if shop is not None:
        lives = await service.shop_sessions(session, shop_id=shop.id, limit=SESSIONS_PAGE)
    else:
        assert anchor is not None
        lives = await service.shop_sessions(session, anchor_id=anchor.id, limit=SESSIONS_PAGE)
    context = {"shop": shop, "lives": lives, "values": values, "errors": errors, "tab": "live"}
    status = 422 if errors else 200
    return render(request, "live/console/sessions.html", context, status_code=status)


@router.get("/console/shops/{shop_id}/live", response_class=HTMLResponse)
async def sessions(request: Request, shop: OwnedShop, session: SessionDep) -> Response:
    """The shop's sessions, live and upcoming first; a form to schedule one."""
    return await _sessions_page(request, session, shop, {}, {})


@router.post("/console/shops/{shop_id}/live", response_class=HTMLResponse)
async def schedule(
    request: Request,
    shop: OwnedShop,
    session: SessionDep,
    user: CurrentUser,
    title: Line = "",
    description: Text = "",
    scheduled_at: Line = "",
) -> Response:
    """Schedule a session; the one who schedules it is its anchor."""
    return await _schedule(request, session, shop, user, title, description, scheduled_at)


async def _schedule(
    request: Request,
    session: SessionDep,
    shop: Shop | None,
    user: User,
    title: str,
    description: str,
    scheduled_at: str,
) -> Response:
    when = moment(scheduled_at) if scheduled_at.strip() else None
    try:
        if scheduled_at.strip() and (when is None or when < dt.datetime.now(dt.UTC) - PAST):
            raise ValueError  # not a time, or one gone by: a slip of the date picker
        data = schemas.LiveSessionCreate(
            shop_id=shop.id if shop else None,
            title=title,
            description=description,
            scheduled_at=when,
        )
    except ValidationError as exc:
        errors = field_errors(exc, MESSAGES)
        values = await typed(request)
        return await _sessions_page(request, session, shop, values, errors, anchor=user)
    except ValueError:
        errors = error_on(MESSAGES, "scheduled_at")
        values = await typed(request)
        return await _sessions_page(request, session, shop, values, errors, anchor=user)
    live = await service.create_session(session, shop=shop, anchor=user, data=data)
    return _back(live, "scheduled")


@router.get("/anchor/live", response_class=HTMLResponse)
async def anchor_sessions(request: Request, anchor: Anchor, session: SessionDep) -> Response:
    """The sessions the anchor anchors, live and upcoming first; a form to schedule one of
    their own, which sells through its line-up."""
    return await _sessions_page(request, session, None, {}, {}, anchor=anchor)


@router.post("/anchor/live", response_class=HTMLResponse)
async def schedule_own(
    request: Request,
    anchor: Anchor,
    session: SessionDep,
    title: Line = "",
    description: Text = "",
    scheduled_at: Line = "",
) -> Response:
    """Schedule a session of the anchor's own (no shop's)."""
    return await _schedule(request, session, None, anchor, title, description, scheduled_at)


# A session's control room


async def _control_page(
    request: Request,
    session: SessionDep,
    live: LiveSession,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    message: str | None = None,
    flash: str | None = None,
) -> Response:
    shop = await shop_of(session, live)
    context = {
        "shop": shop, "live": live, "tab": "live", "htmx": static_url(HTMX),
        "skus": await _skus(session, shop),
        "ingest_url": request.app.state.settings.ingest_url,
        "values": values or {"quantity": "", "per_buyer_limit": "1", "pin": "on"},
        "errors": errors or {}, "message": message, "flash": flash,
        **await _sales(session, live),
    }  # fmt: skip
    status = 422 if errors else 409 if message else 200
    return render(request, "live/console/control.html", context, status_code=status)


async def _skus(session: SessionDep, shop: Shop | None) -> list[tuple[int, str]]:
    """What the session may put on sale by hand: its shop's SKUs (an anchor's own session
    sells through its line-up instead)."""
    if shop is None:
        return []
    products, _total = await catalog.search_products(
        session, shop_id=shop.id, public=False, limit=100, offset=0
    )
    return [
        (sku.id, f"{product.title} · {sku.name} ({_('%(n)s in stock', n=sku.stock)})")
        for product in products
        for sku in product.skus
    ]


async def _sales(session: SessionDep, live: LiveSession) -> dict[str, Any]:
    offers = await service.offers_of(session, session_ids=[live.id])
    ids = [o.id for o in offers]
    return {
        "offers": offers,
        "sales": await orders.offer_sales(session, offer_ids=ids),
        "recent": await orders.orders_of_offers(session, offer_ids=ids, limit=RECENT_ORDERS),
    }


@router.get("/console/live/{session_id}", response_class=HTMLResponse)
async def control_room(
    request: Request, live: RunSession, session: SessionDep, done: str | None = None
) -> Response:
    """Where to stream to, the session's state, its offers and its sales."""
    flash = _(FLASHES[done]) if done in FLASHES else None
    return await _control_page(request, session, live, flash=flash)


@router.get("/console/live/{session_id}/sales", response_class=HTMLResponse)
async def sales(request: Request, live: RunSession, session: SessionDep) -> Response:
    """The offers and sales panel alone, which the control room reloads every few seconds."""
    context = {"live": live, **await _sales(session, live)}
    return render(request, "live/console/_sales.html", context)


@router.post("/console/live/{session_id}/start")
async def start(live: RunSession, session: SessionDep, hub: RoomHub, user: CurrentUser) -> Response:
    """Go live by hand (an encoder publishing with the key does it by itself)."""
    await control.start(session, hub, live=live, user=user)
    return _back(live, "live")


@router.post("/console/live/{session_id}/end")
async def end(
    request: Request,
    live: RunSession,
    session: SessionDep,
    hub: RoomHub,
    writer: Writer,
    gate: StockGate,
    user: CurrentUser,
) -> Response:
    """End the session: its open offers close and the encoder is put out."""
    media = request.app.state.media
    await control.finish(session, hub, writer, gate, media, live=live, user=user)
    return _back(live, "ended")


@router.post("/console/live/{session_id}/stream-key")
async def rotate_key(
    request: Request, live: RunSession, session: SessionDep, user: CurrentUser
) -> Response:
    """A new stream key, for one that leaked."""
    await control.rotate_key(session, request.app.state.media, live=live, user=user)
    return _back(live, "key")


@router.post("/console/live/{session_id}/offers", response_class=HTMLResponse)
async def open_offer(
    request: Request,
    live: RunSession,
    session: SessionDep,
    writer: Writer,
    hub: RoomHub,
    user: CurrentUser,
    sku_id: Line = "",
    price: Line = "",
    quantity: Line = "",
    per_buyer_limit: Line = "",
    minutes: Line = "",
    pin: Line = "",
) -> Response:
    """Put units of a SKU on sale in the room at a live price (and pin it, if ticked)."""
    values = await typed(request)
    # The form's text as the schema's numbers; what is not a number is named at once.
    numbers = {"sku_id": whole(sku_id), "price": cents(price), "quantity": whole(quantity),
               "per_buyer_limit": whole(per_buyer_limit)}  # fmt: skip
    errors = {name: _(MESSAGES[name]) for name, number in numbers.items() if number is None}
    fields: dict[str, Any] = {
        "sku_id": numbers["sku_id"],
        "price_cents": numbers["price"],
        "quantity": numbers["quantity"],
        "per_buyer_limit": numbers["per_buyer_limit"],
        "pin": bool(pin),
    }
    if minutes.strip():
        count = whole(minutes)
        if not count or count > 24 * 60:
            errors |= error_on(MESSAGES, "minutes")
        else:
            fields["ends_at"] = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=count)
    if errors:
        return await _control_page(request, session, live, values=values, errors=errors)
    try:
        data = schemas.SessionOfferCreate.model_validate(fields)
    except ValidationError as exc:
        errors = field_errors(exc, MESSAGES, {"price_cents": "price"})
        return await _control_page(request, session, live, values=values, errors=errors)
    try:
        await control.open_offer(session, writer, hub, live=live, user=user, data=data)
    except InvalidInput as exc:  # a SKU of another shop, an ended session
        field = refused_field(exc)
        if field in MESSAGES:
            errors = error_on(MESSAGES, field)
            return await _control_page(request, session, live, values=values, errors=errors)
        return await _control_page(request, session, live, values=values, message=exc.detail)
    except OriginliveError as exc:  # more than the stock, a shop not yet approved
        if exc.status >= 500:
            raise
        return await _control_page(request, session, live, values=values, message=exc.detail)
    return _back(live, "offer")


@router.post("/console/live/{session_id}/offers/{offer_id}/pin")
async def pin(
    offer: SessionOffer, live: RunSession, session: SessionDep, hub: RoomHub, user: CurrentUser
) -> Response:
    """Pin one of the session's open offers."""
    await control.pin(session, hub, live=live, offer=offer, user=user)
    return _back(live, "pinned")


@router.post("/console/live/{session_id}/unpin")
async def unpin(live: RunSession, session: SessionDep, hub: RoomHub, user: CurrentUser) -> Response:
    """Take the pinned offer down."""
    await control.unpin(session, hub, live=live, user=user)
    return _back(live, "unpinned")


@router.post("/console/live/{session_id}/offers/{offer_id}/end")
async def end_offer(
    offer: SessionOffer,
    live: RunSession,
    session: SessionDep,
    hub: RoomHub,
    writer: Writer,
    gate: StockGate,
    user: CurrentUser,
) -> Response:
    """Stop selling an offer now; its unsold units go back to the variant's stock."""
    await control.end_offer(session, hub, writer, gate, live=live, offer=offer, user=user)
    return _back(live, "offer_ended")
