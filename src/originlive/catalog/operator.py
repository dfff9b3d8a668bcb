"""HTML routes of the operator's shop review: the shops waiting for approval (and those
approved or rejected), each approved or rejected with a reason, as the JSON API does it.

Every form works as a plain POST answered with a 303 back to the list; where htmx has loaded,
the answer's list replaces the page's own (``operator/_htmx.html``)."""

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.accounts.deps import Operator
from originlive.accounts.models import User
from originlive.catalog import schemas, service
from originlive.catalog.deps import OffSaleDep, RowId
from originlive.catalog.models import Shop, ShopStatus
from originlive.catalog.pages import MAX_PAGE, PageParam
from originlive.db import SessionDep
from originlive.errors import NotFound
from originlive.inputs import MAX_ID
from originlive.routing import Router
from originlive.web.deps import get_viewer
from originlive.web.templating import N_, gettext, render

router = Router(
    prefix="/operator", tags=["pages"], include_in_schema=False, dependencies=[Depends(get_viewer)]
)

PAGE_SIZE = 20
REASON_NEEDED = N_("Tell the merchant why, in one line of at most 500 characters.")
DONE = {
    "approved": N_("%(name)s is approved: its products are on sale."),
    "rejected": N_("%(name)s is rejected; its owner sees your reason."),
}

# Which tab and page a form came from, so that its answer goes back there.
TabField = Annotated[ShopStatus, Form()]
PageField = Annotated[int, Form(ge=1, le=MAX_PAGE)]


async def _shop(session: AsyncSession, shop_id: int) -> Shop:
    shop = await service.get_shop(session, shop_id=shop_id)
    if shop is None:
        raise NotFound(f"No shop {shop_id}.")
    return shop


async def _owners(session: AsyncSession, shops: Sequence[Shop]) -> dict[int, User]:
    """The shops' owners by id, in one query."""
    rows = await session.scalars(select(User).where(User.id.in_({s.owner_id for s in shops})))
    return {user.id: user for user in rows}


async def _list(
    request: Request,
    session: AsyncSession,
    *,
    status: ShopStatus,
    page: int,
    status_code: int = 200,
    **extra: Any,
) -> HTMLResponse:
    """The review list of one tab (``extra``: a notice, or a refused form to show again)."""
    shops, total = await service.list_shops(
        session, statuses=(status,), limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
    )
    context = {
        "status": status.value,
        "shops": shops,
        "total": total,
        "page": page,
        "has_next": page * PAGE_SIZE < total and page < MAX_PAGE,
        "places": await service.place_names(session, places=(s.region for s in shops)),
        "owners": await _owners(session, shops),
        "notice": None,
        "failed": None,
        "reason": "",
        "message": None,
    }
    return render(request, "catalog/operator/shops.html", context | extra, status_code=status_code)


def _back(tab: ShopStatus, page: int, *, done: str, shop: Shop) -> RedirectResponse:
    query = f"status={tab.value}&page={page}&done={done}&shop={shop.id}"
    return RedirectResponse(f"/operator/shops?{query}", status_code=303)


@router.get("/shops", response_class=HTMLResponse)
async def shops(
    request: Request,
    operator: Operator,
    session: SessionDep,
    status: ShopStatus = ShopStatus.PENDING,
    page: PageParam = 1,
    done: Annotated[str, Query(max_length=20)] = "",
    shop: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> HTMLResponse:
    """Shops by review state, waiting ones first, with what an operator decides on."""
    notice = None
    if done in DONE and shop is not None:  # what the last form did, said after its redirect
        acted = await service.get_shop(session, shop_id=shop)
        if acted is not None:
            notice = gettext(DONE[done], name=acted.name)
    return await _list(request, session, status=status, page=page, notice=notice)


@router.post("/shops/{shop_id}/approve", response_class=HTMLResponse)
async def approve(
    operator: Operator,
    shop_id: RowId,
    session: SessionDep,
    tab: TabField = ShopStatus.PENDING,
    page: PageField = 1,
) -> RedirectResponse:
    """Approve the shop so that it sells."""
    shop = await _shop(session, shop_id)
    await service.approve_shop(session, shop=shop, operator=operator)
    return _back(tab, page, done="approved", shop=shop)


@router.post("/shops/{shop_id}/reject", response_class=HTMLResponse)
async def reject(
    request: Request,
    operator: Operator,
    shop_id: RowId,
    session: SessionDep,
    off_sale: OffSaleDep,
    # Longer than the rule allows, so that a long reason is shown again with the message;
    # the body limit bounds it anyway.
    reason: Annotated[str, Form(max_length=5000)] = "",
    tab: TabField = ShopStatus.PENDING,
    page: PageField = 1,
) -> Response:
    """Reject the shop (or stop an approved one) with a reason its owner reads."""
    shop = await _shop(session, shop_id)
    try:
        data = schemas.ShopReject(reason=reason)
    except ValidationError:
        message = gettext(REASON_NEEDED)
        return await _list(
            request, session, status=tab, page=page, status_code=422,
            failed=shop.id, reason=reason, message=message,
        )  # fmt: skip
    await service.reject_shop(
        session, shop=shop, operator=operator, reason=data.reason, off_sale=off_sale
    )
    return _back(tab, page, done="rejected", shop=shop)
