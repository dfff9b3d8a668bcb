"""JSON routes of the selection library: shops' plans, the anchors' library, samples, and the
line-ups of anchors' sessions."""

from typing import Annotated

from fastapi import Header, Query, Response, status

from originlive.accounts.deps import CurrentUser
from originlive.affiliates import anchors, lineup, samples, schemas, service
from originlive.affiliates.deps import Anchor, OwnedPlan, ShopLineupItem, ShopSample, VisiblePlan
from originlive.affiliates.models import (
    CommissionPlan,
    LineupItem,
    LineupStatus,
    PlanStatus,
    SampleRequest,
    SampleStatus,
)
from originlive.catalog.api import Limit, Offset
from originlive.catalog.deps import OwnedShop
from originlive.catalog.schemas import Page
from originlive.db import SessionDep
from originlive.inputs import MAX_ID
from originlive.live.deps import RunSession
from originlive.orders.deps import Writer
from originlive.routing import Router

router = Router(prefix="/api/v1/affiliates", tags=["affiliates"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=100,
        pattern=r"^[\x21-\x7e]+$",
        description="A key of the client's choosing: a retry with the same key returns the "
        "first request; with another body it is a 422.",
    ),
]


async def _plan_view(session: SessionDep, plan: CommissionPlan) -> schemas.Plan:
    (shown,) = await service.plan_views(session, [plan])
    return shown


async def _sample_view(session: SessionDep, sample: SampleRequest) -> schemas.Sample:
    (shown,) = await samples.sample_views(session, [sample])
    return shown


async def _item_view(session: SessionDep, item: LineupItem) -> schemas.LineupItem:
    (shown,) = await lineup.item_views(session, [item])
    return shown


# Plans, for the shop


@router.post(
    "/shops/{shop_id}/plans", status_code=status.HTTP_201_CREATED, response_model=schemas.Plan
)
async def create_plan(
    body: schemas.PlanCreate, shop: OwnedShop, session: SessionDep, user: CurrentUser
) -> schemas.Plan:
    """Offer anchors a commission on the shop's products (its managers); 409 if it clashes
    with another plan of the same kind and scope."""
    plan = await service.create_plan(session, shop=shop, actor=user, data=body)
    return await _plan_view(session, plan)


@router.get("/shops/{shop_id}/plans", response_model=list[schemas.Plan])
async def list_plans(
    shop: OwnedShop, session: SessionDep, status: PlanStatus | None = None
) -> list[schemas.Plan]:
    """The shop's plans, newest first (its managers)."""
    plans = await service.list_plans(session, shop_id=shop.id, status=status)
    return await service.plan_views(session, plans)


@router.get("/shops/{shop_id}/anchors", response_model=list[schemas.ShopAnchor])
async def list_shop_anchors(shop: OwnedShop, session: SessionDep) -> list[schemas.ShopAnchor]:
    """The anchors of the shop's plans and their sales of its goods under them, in orders paid
    and not wholly refunded, best sellers first (its managers)."""
    found = await anchors.shop_anchors(session, shop_id=shop.id)
    return [schemas.ShopAnchor.model_validate(a, from_attributes=True) for a in found]


@router.get("/plans/{plan_id}", response_model=schemas.Plan)
async def get_plan(plan: VisiblePlan, session: SessionDep) -> schemas.Plan:
    """A plan: to its shop's managers and the anchors it is offered to."""
    return await _plan_view(session, plan)


@router.patch("/plans/{plan_id}", response_model=schemas.Plan)
async def update_plan(
    body: schemas.PlanUpdate, plan: OwnedPlan, session: SessionDep, user: CurrentUser
) -> schemas.Plan:
    """Change a running plan's name, rate, end or sample policy (its shop's managers)."""
    await service.update_plan(session, plan=plan, actor=user, data=body)
    return await _plan_view(session, plan)


@router.post("/plans/{plan_id}/end", response_model=schemas.Plan)
async def end_plan(plan: OwnedPlan, session: SessionDep, user: CurrentUser) -> schemas.Plan:
    """End the plan now (its shop's managers)."""
    await service.end_plan(session, plan=plan, actor=user)
    return await _plan_view(session, plan)


# The library, for anchors


@router.post("/plans/{plan_id}/join", response_model=schemas.Membership)
async def join_plan(  # the anchor first: a buyer learns they may not, not that it is hidden
    anchor: Anchor, plan: VisiblePlan, session: SessionDep, response: Response
) -> schemas.Membership:
    """Join a plan offered to the caller: 201 the first time, 200 after."""
    joined, new = await service.join_plan(session, plan=plan, anchor=anchor)
    response.status_code = status.HTTP_201_CREATED if new else status.HTTP_200_OK
    return schemas.Membership(
        plan_id=joined.plan_id, anchor_id=joined.anchor_id, joined_at=joined.joined_at
    )


@router.get("/library", response_model=Page[schemas.LibraryItem])
async def library(
    anchor: Anchor,
    session: SessionDep,
    shop_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    category: Annotated[str | None, Query(max_length=40)] = None,
    region: Annotated[str | None, Query(pattern=r"^[0-9]{6,12}$")] = None,
    limit: Limit = 20,
    offset: Offset = 0,
) -> Page[schemas.LibraryItem]:
    """The products offered to the caller now, with the best plan for each and the plan
    paying them for it (anchors)."""
    where = service.LibraryFilter(shop_id=shop_id, category=category, region_code=region)
    items, total = await service.library(
        session, anchor=anchor, where=where, limit=limit, offset=offset
    )
    return Page(items=items, total=total, limit=limit, offset=offset)


# Samples


@router.post("/samples", response_model=schemas.Sample)
async def request_sample(
    body: schemas.SampleCreate,
    anchor: Anchor,
    session: SessionDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> schemas.Sample:
    """Ask for a free sample of a joined plan's SKU: 201; the same Idempotency-Key again 200
    with the first request; another open request for the product 409."""
    sample, new = await samples.request_sample(
        session, anchor=anchor, data=body, idempotency_key=idempotency_key
    )
    response.status_code = status.HTTP_201_CREATED if new else status.HTTP_200_OK
    return await _sample_view(session, sample)


@router.get("/samples", response_model=list[schemas.Sample])
async def my_samples(user: CurrentUser, session: SessionDep) -> list[schemas.Sample]:
    """The caller's own sample requests, newest first."""
    requests = await samples.list_samples(session, anchor_id=user.id)
    return await samples.sample_views(session, requests)


@router.get("/shops/{shop_id}/samples", response_model=list[schemas.Sample])
async def shop_samples(
    shop: OwnedShop, session: SessionDep, status: SampleStatus | None = None
) -> list[schemas.Sample]:
    """Sample requests asked of the shop, newest first (its managers)."""
    requests = await samples.list_samples(session, shop_id=shop.id, status=status)
    return await samples.sample_views(session, requests)


@router.post("/samples/{sample_id}/approve", response_model=schemas.Sample)
async def approve_sample(
    sample: ShopSample, session: SessionDep, writer: Writer, user: CurrentUser
) -> schemas.Sample:
    """Grant the sample: a free paid order to the anchor, to ship like any other."""
    fresh = await samples.approve_sample(session, writer, sample=sample, actor=user)
    return await _sample_view(session, fresh)


@router.post("/samples/{sample_id}/reject", response_model=schemas.Sample)
async def reject_sample(
    body: schemas.SampleReject, sample: ShopSample, session: SessionDep, user: CurrentUser
) -> schemas.Sample:
    """Turn the request down, saying why."""
    await samples.reject_sample(session, sample=sample, actor=user, reason=body.reason)
    return await _sample_view(session, sample)


@router.post("/samples/{sample_id}/ship", response_model=schemas.Sample)
async def ship_sample(
    sample: ShopSample, session: SessionDep, writer: Writer, user: CurrentUser
) -> schemas.Sample:
    """Send an approved sample through the delivery network, to the point serving the anchor."""
    await samples.ship_sample(session, writer, sample=sample, actor=user)
    fresh = await samples.get_sample(session, sample_id=sample.id)
    assert fresh is not None
    return await _sample_view(session, fresh)


# Line-ups


@router.post(
    "/sessions/{session_id}/lineup",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.LineupItem,
)
async def propose(
    body: schemas.LineupItemCreate,
    anchor: Anchor,
    live: RunSession,
    session: SessionDep,
    writer: Writer,
) -> schemas.LineupItem:
    """Put a product into a session you anchor, under the plan you joined that pays for it
    now (403 if none): proposed to its shop, or approved at once, its offer open in the
    session, if the plan approves by itself."""
    item = await lineup.propose(session, writer, live=live, anchor=anchor, data=body)
    return await _item_view(session, item)


@router.get("/sessions/{session_id}/lineup", response_model=list[schemas.LineupItem])
async def session_lineup(live: RunSession, session: SessionDep) -> list[schemas.LineupItem]:
    """The session's line-up, newest first (those who run the session)."""
    items = await lineup.list_items(session, session_id=live.id)
    return await lineup.item_views(session, items)


@router.get("/shops/{shop_id}/lineup", response_model=list[schemas.LineupItem])
async def shop_lineup(
    shop: OwnedShop, session: SessionDep, status: LineupStatus | None = LineupStatus.PROPOSED
) -> list[schemas.LineupItem]:
    """Products anchors proposed for their sessions under the shop's plans, newest first:
    those waiting for an answer unless another ``status`` is asked (its managers)."""
    items = await lineup.list_items(session, shop_id=shop.id, status=status)
    return await lineup.item_views(session, items)


@router.post("/lineup/{item_id}/approve", response_model=schemas.LineupItem)
async def approve_lineup_item(
    item: ShopLineupItem, session: SessionDep, writer: Writer, user: CurrentUser
) -> schemas.LineupItem:
    """Take the product into the anchor's session: its offer opens there, at the rate of the
    plan paying the anchor now; 409 if already decided."""
    fresh = await lineup.approve(session, writer, item=item, actor=user)
    return await _item_view(session, fresh)


@router.post("/lineup/{item_id}/reject", response_model=schemas.LineupItem)
async def reject_lineup_item(
    item: ShopLineupItem, session: SessionDep, user: CurrentUser
) -> schemas.LineupItem:
    """Turn the product down for the session; 409 if already decided."""
    await lineup.reject(session, item=item, actor=user)
    return await _item_view(session, item)
