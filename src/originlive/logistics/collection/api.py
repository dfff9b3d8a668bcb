"""JSON routes of collection runs: a co-operative books its growers, the points weigh and
grade what each brings, the hub receives what each point sent, and every difference is
flagged."""

from fastapi import status

from originlive.accounts.deps import CurrentUser
from originlive.catalog import service as catalog
from originlive.catalog.api import Limit, Offset
from originlive.catalog.deps import can_manage
from originlive.catalog.schemas import Page
from originlive.db import SessionDep, utcnow
from originlive.errors import Forbidden, InvalidInput
from originlive.inputs import Id
from originlive.logistics.collection import schemas, service
from originlive.logistics.collection.deps import ManagedRun, VisibleRun
from originlive.logistics.collection.models import CollectionRun, RunStatus
from originlive.routing import Router

router = Router(prefix="/api/v1", tags=["collection"])


async def _shown(session: SessionDep, run: CollectionRun, user: CurrentUser) -> schemas.Run:
    (shown,) = await service.views(session, [run], user=user)
    return shown


@router.post("/collection-runs", status_code=status.HTTP_201_CREATED, response_model=schemas.Run)
async def book(body: schemas.RunCreate, session: SessionDep, user: CurrentUser) -> schemas.Run:
    """Book a collection run of a shop one manages (the co-operative): each grower with
    their village point and the grams they are expected to bring, to a county hub."""
    shop = await catalog.get_shop(session, shop_id=body.shop_id)
    if shop is None or not can_manage(user, shop):
        raise InvalidInput(f"No shop {body.shop_id} that you manage.", field="shop_id")
    run = await service.book(session, shop=shop, actor=user, data=body)
    return await _shown(session, run, user)


@router.get("/collection-runs", response_model=Page[schemas.RunSummary])
async def list_runs(
    session: SessionDep,
    user: CurrentUser,
    shop_id: Id | None = None,
    status: RunStatus | None = None,
    limit: Limit = 20,
    offset: Offset = 0,
) -> Page[schemas.RunSummary]:
    """The runs the caller may see: of the shops they manage, bound for the hub they work
    at, collecting at their point (every run, for operators); the latest day first."""
    runs, total = await service.list_runs(
        session, user=user, shop_id=shop_id, status=status, limit=limit, offset=offset
    )
    items = [
        schemas.RunSummary.model_validate(r.model_dump(exclude={"growers", "points"}))
        for r in await service.views(session, runs, user=user)
    ]
    return Page(items=items, total=total, limit=limit, offset=offset)


@router.get("/collection-runs/{run_id}", response_model=schemas.Run)
async def get_run(seen: VisibleRun, session: SessionDep, user: CurrentUser) -> schemas.Run:
    """A run with its growers, points and the differences flagged: all of it to the
    co-operative and operators, every grower (without phones) to the hub's staff, its own
    point and growers to a point's staff."""
    return await _shown(session, seen.run, user)


@router.post(
    "/collection-runs/{run_id}/weighings",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.Run,
)
async def weigh(
    body: schemas.WeighingCreate, seen: VisibleRun, session: SessionDep, user: CurrentUser
) -> schemas.Run:
    """A grower's delivery weighed and graded at the caller's point (its staff only; once a
    grower, until the run is dispatched)."""
    if seen.access.point_id is None:
        raise Forbidden("Only the staff of a point of the run weigh its growers.")
    await service.weigh(
        session, run_id=seen.run.id, node_id=seen.access.point_id, actor_id=user.id,
        data=body, now=utcnow(),
    )  # fmt: skip
    return await _shown(session, seen.run, user)


@router.post("/collection-runs/{run_id}/dispatch", response_model=schemas.Run)
async def dispatch(run: ManagedRun, session: SessionDep, user: CurrentUser) -> schemas.Run:
    """The produce has left the points for the hub: weighing is over (the co-operative)."""
    await service.dispatch(session, run_id=run.id, actor=user, now=utcnow())
    return await _shown(session, run, user)


@router.post(
    "/collection-runs/{run_id}/receipts",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.Run,
)
async def receive(
    body: schemas.ReceiptCreate, seen: VisibleRun, session: SessionDep, user: CurrentUser
) -> schemas.Run:
    """What arrived at the hub from one point of the run, in grams (the hub's staff; once a
    point). When every point that sent produce is recorded, the run is received."""
    if not seen.access.at_hub:
        raise Forbidden("Only the staff of the run's hub receive it.")
    await service.receive(
        session, run_id=seen.run.id, node_id=seen.run.hub_id, actor_id=user.id, data=body,
        now=utcnow(),
    )  # fmt: skip
    return await _shown(session, seen.run, user)


@router.post("/collection-runs/{run_id}/close", response_model=schemas.Run)
async def close(run: ManagedRun, session: SessionDep, user: CurrentUser) -> schemas.Run:
    """The co-operative has seen the differences of a received run: it is done."""
    await service.close(session, run_id=run.id, actor=user, now=utcnow())
    return await _shown(session, run, user)
