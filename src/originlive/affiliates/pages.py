"""HTML routes of the selection library.

- ``/console/shops/{shop_id}/plans``: a shop's commission plans, a form for a new one, and the
  sample requests and line-up items waiting for its answer (the shop's managers).
- ``/anchor/library``: the products offered to the signed-in anchor, with the best plan for
  each and the one paying them now, a button to join, and their sample requests.
- ``/anchor/live/{session_id}/lineup``: a session's line-up, as its anchor proposes products
  of the plans they joined and sees what the shops made of them.

The work is the API's (``service``); these pages only read forms into its schemas.
"""

from typing import Annotated, Any

from fastapi import Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select

from originlive.accounts.deps import CurrentUser
from originlive.accounts.models import User
from originlive.affiliates import anchors, lineup, samples, schemas, service
from originlive.affiliates.deps import Anchor, OwnedPlan, ShopLineupItem, ShopSample, VisiblePlan
from originlive.affiliates.models import LineupStatus, PlanKind, PlanScope, SampleStatus
from originlive.catalog import service as catalog
from originlive.catalog.deps import OwnedShop
from originlive.catalog.models import Shop, Sku
from originlive.catalog.pages import PageParam
from originlive.db import SessionDep
from originlive.errors import OriginliveError
from originlive.inputs import row_id
from originlive.live.deps import RunSession
from originlive.live.models import LiveSession
from originlive.orders.deps import Writer
from originlive.routing import Router
from originlive.web.deps import get_viewer
from originlive.web.forms import cents, field_errors, moment, typed, whole
from originlive.web.templating import N_, render
from originlive.web.templating import gettext as _

router = Router(tags=["pages"], include_in_schema=False, dependencies=[Depends(get_viewer)])

Line = Annotated[str, Form(max_length=500)]
Many = Annotated[list[str], Form(max_length=200)]
LIBRARY_PAGE = 20
LINEUP_CHOICES = 100  # products of the plans an anchor joined, newest first
KINDS = {PlanKind.OPEN: N_("Open to every anchor"), PlanKind.TARGETED: N_("For named anchors")}
SCOPES = {
    PlanScope.SHOP: N_("The whole shop"),
    PlanScope.GROUP: N_("A group of products"),
    PlanScope.PRODUCT: N_("One product"),
}
SAMPLE_STATES = {
    SampleStatus.REQUESTED: N_("Requested"),
    SampleStatus.APPROVED: N_("Approved"),
    SampleStatus.REJECTED: N_("Turned down"),
    SampleStatus.SHIPPED: N_("Shipped"),
}
MESSAGES = {
    "name": N_("Give the plan a name."),
    "rate_bp": N_("Enter a rate in per cent, from 0 to 100."),
    "starts_at": N_("Enter a start date and time, or leave it empty for now."),
    "ends_at": N_("The end must come after the start."),
    "anchor_ids": N_("List the anchors' numbers, separated by commas."),
    "product_ids": N_("Choose products of this shop."),
    "": N_(
        "A whole-shop plan lists no products, a product plan one, a group plan one or more; "
        "a plan for named anchors names at least one, an open plan none."
    ),
}
FLASHES = {
    "created": N_("The plan is offered to anchors."),
    "ended": N_("The plan has ended."),
    "approved": N_("The sample is approved: its free order is with your orders, to ship."),
    "rejected": N_("The request is turned down."),
    "joined": N_("You joined the plan."),
    "proposed": N_("Proposed: the shop decides whether it joins your session."),
    "in_session": N_("In your session: its offer is open, ready to pin."),
    "lineup_approved": N_("Approved: the offer is open in the anchor's session."),
    "lineup_rejected": N_("Turned down for that session."),
}
LINEUP_STATES = {
    LineupStatus.PROPOSED: N_("Waiting for the shop"),
    LineupStatus.APPROVED: N_("In the session"),
    LineupStatus.REJECTED: N_("Turned down"),
}
LINEUP_MESSAGES = {
    "sku_id": N_("Choose a product of a plan you joined."),
    "price_cents": N_("Enter a price in yuan above 0, such as 29.90."),
    "quantity": N_("Enter how many to put on sale, at least 1."),
    "per_buyer_limit": N_("Enter how many one buyer may take, from 1 to 999."),
}


def percent(rate_bp: int) -> str:
    """Basis points as a per cent, in integers: 1250 → "12.5%"."""
    whole, rest = divmod(rate_bp, 100)
    return f"{whole}.{rest:02d}".rstrip("0").rstrip(".") + "%"


def _labels() -> dict[str, Any]:
    return {
        "kinds": {k.value: _(v) for k, v in KINDS.items()},
        "scopes": {s.value: _(v) for s, v in SCOPES.items()},
        "sample_states": {s.value: _(v) for s, v in SAMPLE_STATES.items()},
        "lineup_states": {s.value: _(v) for s, v in LINEUP_STATES.items()},
        "percent": percent,
    }


def _flash(done: str | None) -> str | None:
    return _(FLASHES[done]) if done in FLASHES else None


# The shop's plans


async def _plans_page(
    request: Request,
    session: SessionDep,
    shop: Shop,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    message: str | None = None,
    flash: str | None = None,
) -> Response:
    plans = await service.plan_views(session, await service.list_plans(session, shop_id=shop.id))
    products, _total = await catalog.search_products(
        session, shop_id=shop.id, public=False, limit=100, offset=0
    )
    waiting = await samples.list_samples(session, shop_id=shop.id, status=SampleStatus.REQUESTED)
    proposed = await lineup.list_items(session, shop_id=shop.id, status=LineupStatus.PROPOSED)
    context = {
        "shop": shop, "tab": "plans", "plans": plans, "products": products,
        "samples": await samples.sample_views(session, waiting), "flash": flash,
        "lineup": await lineup.item_views(session, proposed),
        "values": values or {"kind": "open", "scope": "shop", "samples_allowed": "on"},
        "errors": errors or {}, "message": message, **_labels(),
    }  # fmt: skip
    code = 200 if not (errors or message) else 409 if message else 422
    return render(request, "affiliates/plans.html", context, status_code=code)


@router.get("/console/shops/{shop_id}/anchors", response_class=HTMLResponse)
async def shop_anchors(request: Request, shop: OwnedShop, session: SessionDep) -> Response:
    """The anchors of the shop's plans and what they sold of its goods."""
    found = await anchors.shop_anchors(session, shop_id=shop.id)
    context = {"shop": shop, "tab": "anchors", "anchors": found}
    return render(request, "affiliates/anchors.html", context)


@router.get("/console/shops/{shop_id}/plans", response_class=HTMLResponse)
async def shop_plans(
    request: Request, shop: OwnedShop, session: SessionDep, done: str | None = None
) -> Response:
    """The shop's plans, a form for a new one, and the samples waiting for an answer."""
    return await _plans_page(request, session, shop, flash=_flash(done))


def _ids(texts: list[str]) -> list[int]:
    # 0 is no id: the schema refuses it and names the field.
    return [row_id(t.strip()) or 0 for t in texts if t.strip()]


def _rate(text: str) -> int:
    # A per cent with two decimals is a count of hundredths, as a price in yuan is of fen.
    rate = cents(text.rstrip("% "))
    return -1 if rate is None else rate


def _when(text: str) -> Any:
    # An unreadable time is handed on as the text: the schema refuses it and names the field.
    return (moment(text) or text) if text.strip() else None


@router.post("/console/shops/{shop_id}/plans", response_class=HTMLResponse)
async def create_plan(
    request: Request,
    shop: OwnedShop,
    session: SessionDep,
    user: CurrentUser,
    name: Line = "",
    kind: Line = "open",
    scope: Line = "shop",
    rate: Line = "",
    product_ids: Many = [],  # noqa: B006 - FastAPI copies the default
    anchor_ids: Line = "",
    starts_at: Line = "",
    ends_at: Line = "",
    samples_allowed: Line = "",
    sample_cost_from_commission: Line = "",
    auto_approve: Line = "",
) -> Response:
    """Offer a plan; the form comes back with what was wrong, or the clash (409)."""
    values = {
        "name": name, "kind": kind, "scope": scope, "rate": rate, "product_ids": product_ids,
        "anchor_ids": anchor_ids, "starts_at": starts_at, "ends_at": ends_at,
        "samples_allowed": samples_allowed, "auto_approve": auto_approve,
        "sample_cost_from_commission": sample_cost_from_commission,
    }  # fmt: skip
    try:
        data = schemas.PlanCreate.model_validate(
            {
                "name": name, "kind": kind, "scope": scope, "rate_bp": _rate(rate),
                "product_ids": _ids(product_ids), "anchor_ids": _ids(anchor_ids.split(",")),
                "starts_at": _when(starts_at), "ends_at": _when(ends_at),
                "samples_allowed": bool(samples_allowed), "auto_approve": bool(auto_approve),
                "sample_cost_from_commission": bool(sample_cost_from_commission),
            }
        )  # fmt: skip
        await service.create_plan(session, shop=shop, actor=user, data=data)
    except ValidationError as exc:
        errors = field_errors(exc, MESSAGES)
        return await _plans_page(request, session, shop, values=values, errors=errors)
    except OriginliveError as exc:  # a clash, or a product or anchor not found
        return await _plans_page(request, session, shop, values=values, message=exc.detail)
    return RedirectResponse(f"/console/shops/{shop.id}/plans?done=created", status_code=303)


@router.post("/console/plans/{plan_id}/end")
async def end_plan(plan: OwnedPlan, session: SessionDep, user: CurrentUser) -> RedirectResponse:
    """End a plan now."""
    await service.end_plan(session, plan=plan, actor=user)
    return RedirectResponse(f"/console/shops/{plan.shop_id}/plans?done=ended", status_code=303)


async def _shop_of(session: SessionDep, shop_id: int) -> Shop:
    shop = await catalog.get_shop(session, shop_id=shop_id)
    assert shop is not None  # a foreign key keeps it
    return shop


@router.post("/console/samples/{sample_id}/approve", response_class=HTMLResponse)
async def approve_sample(
    request: Request, sample: ShopSample, session: SessionDep, writer: Writer, user: CurrentUser
) -> Response:
    """Grant a sample: a free order to the anchor, shipped as any other."""
    try:
        await samples.approve_sample(session, writer, sample=sample, actor=user)
    except OriginliveError as exc:  # out of stock, or decided meanwhile
        shop = await _shop_of(session, sample.shop_id)
        return await _plans_page(request, session, shop, message=exc.detail)
    return RedirectResponse(f"/console/shops/{sample.shop_id}/plans?done=approved", 303)


@router.post("/console/samples/{sample_id}/reject", response_class=HTMLResponse)
async def reject_sample(
    request: Request, sample: ShopSample, session: SessionDep, user: CurrentUser, reason: Line = ""
) -> Response:
    """Turn a sample request down."""
    try:
        data = schemas.SampleReject(reason=reason or _("Not this time."))
        await samples.reject_sample(session, sample=sample, actor=user, reason=data.reason)
    except (ValidationError, OriginliveError):
        shop = await _shop_of(session, sample.shop_id)
        message = _("The request could not be turned down: check the reason, and try again.")
        return await _plans_page(request, session, shop, message=message)
    return RedirectResponse(f"/console/shops/{sample.shop_id}/plans?done=rejected", 303)


# The anchor's library


@router.get("/anchor/library", response_class=HTMLResponse)
async def library(
    request: Request,
    anchor: Anchor,
    session: SessionDep,
    category: Annotated[str, Query(max_length=40)] = "",
    region: Annotated[str, Query(pattern=r"^([0-9]{6,12})?$")] = "",
    page: PageParam = 1,
    done: str | None = None,
) -> Response:
    """The products offered to the anchor, with the best rate for each, and their samples."""
    where = service.LibraryFilter(category=category or None, region_code=region or None)
    items, total = await service.library(
        session, anchor=anchor, where=where, limit=LIBRARY_PAGE, offset=(page - 1) * LIBRARY_PAGE
    )
    requests = await samples.list_samples(session, anchor_id=anchor.id)
    context = {
        "items": items, "page": page, "has_next": page * LIBRARY_PAGE < total,
        "params": {"category": category, "region": region}, "flash": _flash(done),
        "samples": await samples.sample_views(session, requests), **_labels(),
    }  # fmt: skip
    return render(request, "affiliates/library.html", context)


@router.post("/anchor/plans/{plan_id}/join")
async def join_plan(anchor: Anchor, plan: VisiblePlan, session: SessionDep) -> RedirectResponse:
    """Join a plan offered to the anchor."""
    await service.join_plan(session, plan=plan, anchor=anchor)
    return RedirectResponse("/anchor/library?done=joined", status_code=303)


@router.post("/console/lineup/{item_id}/approve", response_class=HTMLResponse)
async def approve_lineup_item(
    request: Request,
    item: ShopLineupItem,
    session: SessionDep,
    writer: Writer,
    user: CurrentUser,
) -> Response:
    """Take a product into an anchor's session: its offer opens there."""
    (shop_id,) = [view.shop_id for view in await lineup.item_views(session, [item])]
    try:
        await lineup.approve(session, writer, item=item, actor=user)
    except OriginliveError as exc:  # out of stock, the session ended, decided meanwhile
        if exc.status >= 500:
            raise
        shop = await _shop_of(session, shop_id)
        return await _plans_page(request, session, shop, message=exc.detail)
    return RedirectResponse(f"/console/shops/{shop_id}/plans?done=lineup_approved", 303)


@router.post("/console/lineup/{item_id}/reject")
async def reject_lineup_item(
    item: ShopLineupItem, session: SessionDep, user: CurrentUser
) -> RedirectResponse:
    """Turn a product down for an anchor's session."""
    (shop_id,) = [view.shop_id for view in await lineup.item_views(session, [item])]
    await lineup.reject(session, item=item, actor=user)
    return RedirectResponse(f"/console/shops/{shop_id}/plans?done=lineup_rejected", 303)


# A session's line-up, for its anchor


async def _candidates(session: SessionDep, anchor: User) -> list[tuple[int, str]]:
    """The SKUs the anchor may propose: of the products a plan they joined pays them for."""
    where = service.LibraryFilter()
    items, _total = await service.library(
        session, anchor=anchor, where=where, limit=LINEUP_CHOICES, offset=0
    )
    joined = {i.product_id: i for i in items if i.joined_rate_bp is not None}
    skus = await session.scalars(
        select(Sku).where(Sku.product_id.in_(joined)).order_by(Sku.product_id.desc(), Sku.id)
    )
    return [(sku.id, _choice(joined[sku.product_id], sku)) for sku in skus]


def _choice(item: schemas.LibraryItem, sku: Sku) -> str:
    rate = percent(item.joined_rate_bp or 0)
    return f"{item.title} · {sku.name} · {item.shop_name} · {rate}"


async def _lineup_page(
    request: Request,
    session: SessionDep,
    live: LiveSession,
    anchor: User,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    message: str | None = None,
    flash: str | None = None,
    status_code: int = 200,
) -> Response:
    items = await lineup.list_items(session, session_id=live.id)
    context = {
        "live": live, "items": await lineup.item_views(session, items),
        "skus": await _candidates(session, anchor), "flash": flash, "message": message,
        "values": values or {"per_buyer_limit": "1"}, "errors": errors or {}, **_labels(),
    }  # fmt: skip
    return render(request, "affiliates/lineup.html", context, status_code=status_code)


@router.get("/anchor/live/{session_id}/lineup", response_class=HTMLResponse)
async def session_lineup(
    request: Request, anchor: Anchor, live: RunSession, session: SessionDep, done: str | None = None
) -> Response:
    """The session's line-up and a form to propose a product of a plan the anchor joined."""
    return await _lineup_page(request, session, live, anchor, flash=_flash(done))


@router.post("/anchor/live/{session_id}/lineup", response_class=HTMLResponse)
async def propose(
    request: Request,
    anchor: Anchor,
    live: RunSession,
    session: SessionDep,
    writer: Writer,
    sku_id: Line = "",
    price: Line = "",
    quantity: Line = "",
    per_buyer_limit: Line = "",
) -> Response:
    """Propose a product for the session; the form comes back with what was wrong."""
    values = await typed(request)
    # The form's text as the schema's numbers; what is not a number is named at once.
    numbers = {"sku_id": whole(sku_id), "price_cents": cents(price), "quantity": whole(quantity),
               "per_buyer_limit": whole(per_buyer_limit)}  # fmt: skip
    errors = {name: _(LINEUP_MESSAGES[name]) for name, n in numbers.items() if n is None}
    try:
        data = schemas.LineupItemCreate.model_validate(numbers)
    except ValidationError as exc:
        errors = errors or field_errors(exc, LINEUP_MESSAGES)
    if errors:
        return await _lineup_page(
            request, session, live, anchor, values=values, errors=errors, status_code=422
        )
    try:
        item = await lineup.propose(session, writer, live=live, anchor=anchor, data=data)
    except OriginliveError as exc:  # no plan pays for it, the session ended, a stranger's
        if exc.status >= 500:
            raise
        return await _lineup_page(
            request, session, live, anchor, values=values, message=exc.detail,
            status_code=exc.status,
        )  # fmt: skip
    done = "in_session" if item.status == LineupStatus.APPROVED else "proposed"
    return RedirectResponse(f"/anchor/live/{live.id}/lineup?done={done}", status_code=303)
