"""HTML routes of the selection library.

- ``/console/shops/{shop_id}/plans``: a shop's commission plans, a form for a new one, and the
  sample requests waiting for its answer (the shop's managers).
- ``/anchor/library``: the products offered to the signed-in anchor, with the best plan for
  each and the one paying them now, a button to join, and their sample requests.

The work is the API's (``service``); these pages only read forms into its schemas.
"""

from typing import Annotated, Any

from fastapi import Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from originlive.accounts.deps import CurrentUser
from originlive.affiliates import samples, schemas, service
from originlive.affiliates.deps import Anchor, OwnedPlan, ShopSample, VisiblePlan
from originlive.affiliates.models import PlanKind, PlanScope, SampleStatus
from originlive.catalog import service as catalog
from originlive.catalog.deps import OwnedShop
from originlive.catalog.models import Shop
from originlive.catalog.pages import PageParam
from originlive.db import SessionDep
from originlive.errors import OriginliveError
from originlive.inputs import row_id
from originlive.orders.deps import Writer
from originlive.routing import Router
from originlive.web.deps import get_viewer
from originlive.web.forms import cents, field_errors, moment
from originlive.web.templating import N_, render
from originlive.web.templating import gettext as _

router = Router(tags=["pages"], include_in_schema=False, dependencies=[Depends(get_viewer)])

Line = Annotated[str, Form(max_length=500)]
Many = Annotated[list[str], Form(max_length=200)]
LIBRARY_PAGE = 20
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
    context = {
        "shop": shop, "tab": "plans", "plans": plans, "products": products,
        "samples": await samples.sample_views(session, waiting), "flash": flash,
        "values": values or {"kind": "open", "scope": "shop", "samples_allowed": "on"},
        "errors": errors or {}, "message": message, **_labels(),
    }  # fmt: skip
    code = 200 if not (errors or message) else 409 if message else 422
    return render(request, "affiliates/plans.html", context, status_code=code)


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
