"""Rules of collection runs: booking growers, weighing at their points, dispatching, receiving
at the hub, closing; who may see and do what; the runs as the API shows them.

Every change of a run locks its row first (``_locked``), so two points weighing at once, or
two receipts arriving together, each see the other's and the run's status follows them
exactly.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.accounts import service as accounts
from originlive.accounts.models import Role, User
from originlive.catalog import service as catalog
from originlive.catalog.deps import can_manage
from originlive.catalog.models import Product, Shop, Sku
from originlive.errors import Conflict, Forbidden, InvalidInput, NotFound
from originlive.logistics import service as logistics
from originlive.logistics.collection import differences as diff
from originlive.logistics.collection import schemas
from originlive.logistics.collection.models import (
    CollectionGrower,
    CollectionReceipt,
    CollectionRun,
    Grade,
    RunStatus,
)
from originlive.logistics.models import DeliveryNode, NodeKind

WEIGHING = frozenset({RunStatus.BOOKED, RunStatus.COLLECTING})

# Who may see a run


@dataclass(frozen=True, slots=True)
class Access:
    """What the caller is to a run: the co-operative (its shop's managers, operators), the
    staff of its hub, or the staff of a point where some of its growers bring produce."""

    manages: bool = False
    at_hub: bool = False
    point_id: int | None = None  # the caller's point, when growers of the run bring there

    @property
    def sees(self) -> bool:
        """Whether the run is the caller's to see at all (else: 404)."""
        return self.manages or self.at_hub or self.point_id is not None


def _access(
    user: User, shop: Shop, run: CollectionRun, node: DeliveryNode | None, points: set[int]
) -> Access:
    return Access(
        manages=can_manage(user, shop),
        at_hub=node is not None and node.id == run.hub_id,
        point_id=node.id if node is not None and node.id in points else None,
    )


async def _node_of(session: AsyncSession, user: User) -> DeliveryNode | None:
    if not user.has_role(Role.STATION):
        return None
    return await logistics.staff_node(session, user=user)


async def access(session: AsyncSession, *, run: CollectionRun, user: User) -> Access:
    """What the user is to the run."""
    shop = await session.get(Shop, run.shop_id)
    assert shop is not None  # kept by a foreign key
    points = await session.scalars(
        select(CollectionGrower.point_id).where(CollectionGrower.run_id == run.id).distinct()
    )
    return _access(user, shop, run, await _node_of(session, user), set(points))


async def get_run(session: AsyncSession, *, run_id: int) -> CollectionRun | None:
    """The run, or None."""
    return await session.get(CollectionRun, run_id)


async def _locked(session: AsyncSession, run_id: int) -> CollectionRun:
    """The run, read anew under a lock held until the commit: ``FOR UPDATE`` on PostgreSQL.
    SQLite's driver begins a transaction at its first write, so a write to the run's row comes
    first there: it takes the database's write lock, and what is read after it is current."""
    if session.get_bind().dialect.name == "sqlite":
        await session.execute(
            update(CollectionRun)
            .where(CollectionRun.id == run_id)
            .values(status=CollectionRun.status)
            .execution_options(synchronize_session=False)
        )
    run = await session.scalar(
        select(CollectionRun)
        .where(CollectionRun.id == run_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if run is None:
        raise NotFound(f"No collection run {run_id}.")
    return run


async def _audit(session: AsyncSession, *, actor: User, action: str, run: CollectionRun) -> None:
    await accounts.record_operator_act(
        session, actor=actor, action=action, target_type="collection_run", target_id=run.id,
        detail={"shop_id": run.shop_id, "status": run.status.value},
    )  # fmt: skip


# Booking


async def book(
    session: AsyncSession, *, shop: Shop, actor: User, data: schemas.RunCreate
) -> CollectionRun:
    """Book a run of the shop's: its growers, each with their village point and what they
    are expected to bring, to a county hub."""
    sku = await catalog.get_sku(session, sku_id=data.sku_id)
    if sku is None or sku.product.shop_id != shop.id:
        raise InvalidInput(f"Shop {shop.id} has no SKU {data.sku_id}.", field="sku_id")
    hub = await session.get(DeliveryNode, data.hub_id)
    if hub is None or hub.kind is not NodeKind.COUNTY_HUB or not hub.active:
        raise InvalidInput(f"No open county hub {data.hub_id}.", field="hub_id")
    wanted = {g.point_id for g in data.growers}
    points = {
        n.id: n
        for n in await session.scalars(select(DeliveryNode).where(DeliveryNode.id.in_(wanted)))
    }
    seen: set[tuple[str, str, int]] = set()
    for i, grower in enumerate(data.growers):
        point = points.get(grower.point_id)
        if point is None or point.kind is not NodeKind.VILLAGE_POINT or not point.active:
            raise InvalidInput(
                f"No open village point {grower.point_id}.", field=f"growers.{i}.point_id"
            )
        key = (grower.name, grower.phone, grower.point_id)
        if key in seen:
            raise InvalidInput(f"{grower.name} is listed twice.", field=f"growers.{i}.name")
        seen.add(key)
    run = CollectionRun(
        shop_id=shop.id, sku_id=sku.id, hub_id=hub.id, collect_on=data.collect_on,
        note=data.note, tolerance_percent=data.tolerance_percent, status=RunStatus.BOOKED,
        booked_by_id=actor.id,
    )  # fmt: skip
    session.add(run)
    await session.flush()
    session.add_all(
        CollectionGrower(
            run_id=run.id,
            point_id=g.point_id,
            name=g.name,
            phone=g.phone,
            expected_grams=g.expected_grams,
        )
        for g in data.growers
    )
    await session.flush()
    await _audit(session, actor=actor, action="collection.book", run=run)
    return run


# At the point, on the road, at the hub


async def weigh(
    session: AsyncSession,
    *,
    run_id: int,
    node_id: int,
    actor_id: int,
    data: schemas.WeighingCreate,
    now: datetime,
) -> CollectionGrower:
    """A grower's delivery weighed and graded at the caller's point; once a grower, and only
    until the run is dispatched."""
    run = await _locked(session, run_id)
    grower = await session.get(CollectionGrower, data.grower_id, populate_existing=True)
    if grower is None or grower.run_id != run.id:
        raise InvalidInput(f"Run {run.id} has no grower {data.grower_id}.", field="grower_id")
    if grower.point_id != node_id:
        raise Forbidden(f"Grower {grower.id} is weighed at their own point, not this one.")
    if grower.weighed_at is not None:
        raise Conflict(f"Grower {grower.id} was weighed already.")
    if run.status not in WEIGHING:
        raise Conflict(f"Run {run.id} is {run.status.value}: weighing is over.")
    grower.weighed_grams, grower.grade = data.weight_grams, data.grade
    grower.weighed_at, grower.weighed_by_id = now, actor_id
    run.status = RunStatus.COLLECTING
    await session.flush()
    return grower


async def dispatch(
    session: AsyncSession, *, run_id: int, actor: User, now: datetime
) -> CollectionRun:
    """The produce leaves the points for the hub: weighing is over (the co-operative)."""
    run = await _locked(session, run_id)
    if run.status not in WEIGHING:
        raise Conflict(f"Run {run.id} is {run.status.value} already.")
    sent = await session.scalar(
        select(func.count())
        .select_from(CollectionGrower)
        .where(
            CollectionGrower.run_id == run.id,
            CollectionGrower.weighed_grams.is_not(None),
            CollectionGrower.grade != Grade.REJECTED,
        )
    )
    if not sent:
        raise Conflict(f"Nothing of run {run.id} has been weighed and accepted: nothing to send.")
    run.status, run.dispatched_at = RunStatus.IN_TRANSIT, now
    await session.flush()
    await _audit(session, actor=actor, action="collection.dispatch", run=run)
    return run


async def _differences(session: AsyncSession, run: CollectionRun) -> diff.RunDifferences:
    growers = await session.scalars(
        select(CollectionGrower).where(CollectionGrower.run_id == run.id)
    )
    receipts = await session.scalars(
        select(CollectionReceipt).where(CollectionReceipt.run_id == run.id)
    )
    return diff.differences(
        [_figures(g) for g in growers],
        {r.point_id: r.weight_grams for r in receipts},
        status=run.status,
        tolerance_percent=run.tolerance_percent,
    )


async def receive(
    session: AsyncSession,
    *,
    run_id: int,
    node_id: int,
    actor_id: int,
    data: schemas.ReceiptCreate,
    now: datetime,
) -> CollectionReceipt:
    """What arrived at the caller's hub from one point of the run; once a point. When every
    point that sent produce on is recorded, the run is received."""
    run = await _locked(session, run_id)
    if run.hub_id != node_id:
        raise Forbidden(f"Run {run.id} is bound for another hub.")
    at_point = await session.scalar(
        select(func.count())
        .select_from(CollectionGrower)
        .where(CollectionGrower.run_id == run.id, CollectionGrower.point_id == data.point_id)
    )
    if not at_point:
        raise InvalidInput(f"Run {run.id} collects at no point {data.point_id}.", field="point_id")
    if await session.get(CollectionReceipt, (run.id, data.point_id)) is not None:
        raise Conflict(f"What came from point {data.point_id} was received already.")
    if run.status is not RunStatus.IN_TRANSIT:
        raise Conflict(f"Run {run.id} is {run.status.value}: it is not on its way.")
    receipt = CollectionReceipt(
        run_id=run.id, point_id=data.point_id, weight_grams=data.weight_grams, note=data.note,
        received_at=now, received_by_id=actor_id,
    )  # fmt: skip
    session.add(receipt)
    await session.flush()
    found = await _differences(session, run)
    received = [p.point_id for p in found.points if p.received_grams is not None]
    if not diff.awaited(found.points, received):
        run.status, run.received_at = RunStatus.RECEIVED, now
        await session.flush()
    return receipt


async def close(session: AsyncSession, *, run_id: int, actor: User, now: datetime) -> CollectionRun:
    """The co-operative has seen what was received and the differences: the run is done."""
    run = await _locked(session, run_id)
    if run.status is not RunStatus.RECEIVED:
        raise Conflict(f"Run {run.id} is {run.status.value}: only a received run is closed.")
    run.status, run.closed_at = RunStatus.CLOSED, now
    await session.flush()
    await _audit(session, actor=actor, action="collection.close", run=run)
    return run


# Reading


async def list_runs(
    session: AsyncSession,
    *,
    user: User,
    shop_id: int | None = None,
    status: RunStatus | None = None,
    limit: int,
    offset: int,
) -> tuple[Sequence[CollectionRun], int]:
    """The runs the user may see (of shops they manage, bound for their hub, collecting at
    their point; every run for operators), the latest collection day first."""
    query = select(CollectionRun)
    if not user.has_role(Role.OPERATOR):
        mine: list[ColumnElement[bool]] = [
            CollectionRun.shop_id.in_(select(Shop.id).where(Shop.owner_id == user.id))
        ]
        node = await _node_of(session, user)
        if node is not None:
            at_point = select(CollectionGrower.run_id).where(CollectionGrower.point_id == node.id)
            mine += [CollectionRun.hub_id == node.id, CollectionRun.id.in_(at_point)]
        query = query.where(or_(*mine))
    if shop_id is not None:
        query = query.where(CollectionRun.shop_id == shop_id)
    if status is not None:
        query = query.where(CollectionRun.status == status)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(
        query.order_by(CollectionRun.collect_on.desc(), CollectionRun.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return rows.all(), total or 0


def _figures(grower: CollectionGrower) -> diff.Grower:
    return diff.Grower(
        grower.id, grower.point_id, grower.expected_grams, grower.weighed_grams, grower.grade
    )


async def views(
    session: AsyncSession, runs: Sequence[CollectionRun], *, user: User
) -> list[schemas.Run]:
    """Runs as the API shows them to the user, with their differences: the co-operative sees
    everything; the hub's staff every grower but not their phones; a point's staff only their
    own point and its growers. Totals add up what the user is shown."""
    if not runs:
        return []
    ids = [r.id for r in runs]
    growers = (
        await session.scalars(
            select(CollectionGrower)
            .where(CollectionGrower.run_id.in_(ids))
            .order_by(CollectionGrower.id)
        )
    ).all()
    receipts = (
        await session.scalars(select(CollectionReceipt).where(CollectionReceipt.run_id.in_(ids)))
    ).all()
    node_ids = {r.hub_id for r in runs} | {g.point_id for g in growers}
    named = await session.execute(
        select(DeliveryNode.id, DeliveryNode.name).where(DeliveryNode.id.in_(node_ids))
    )
    nodes = {node_id: name for node_id, name in named.all()}
    shop_ids = {r.shop_id for r in runs}
    shops = {s.id: s for s in await session.scalars(select(Shop).where(Shop.id.in_(shop_ids)))}
    titled = await session.execute(
        select(Sku.id, Product.title, Sku.name)
        .join(Product, Product.id == Sku.product_id)
        .where(Sku.id.in_({r.sku_id for r in runs}))
    )
    skus = {sku_id: f"{title} · {name}" for sku_id, title, name in titled.all()}
    node = await _node_of(session, user)
    shown = []
    for run in runs:
        mine = [g for g in growers if g.run_id == run.id]
        got = {r.point_id: r for r in receipts if r.run_id == run.id}
        shop = shops[run.shop_id]
        who = _access(user, shop, run, node, {g.point_id for g in mine})
        shown.append(_view(run, mine, got, who, nodes=nodes, shop=shop, sku=skus[run.sku_id]))
    return shown


def _view(
    run: CollectionRun,
    growers: Sequence[CollectionGrower],
    receipts: dict[int, CollectionReceipt],
    who: Access,
    *,
    nodes: dict[int, str],
    shop: Shop,
    sku: str,
) -> schemas.Run:
    found = diff.differences(
        [_figures(g) for g in growers],
        {p: r.weight_grams for p, r in receipts.items()},
        status=run.status,
        tolerance_percent=run.tolerance_percent,
    )
    everything = who.manages or who.at_hub
    shown_growers = [
        schemas.Grower(
            id=g.id,
            point_id=g.point_id,
            point_name=nodes[g.point_id],
            name=g.name,
            phone=g.phone if who.manages or g.point_id == who.point_id else None,
            expected_grams=g.expected_grams,
            weighed_grams=g.weighed_grams,
            grade=g.grade,
            weighed_at=g.weighed_at,
            accepted_grams=found.growers[g.id].accepted_grams,
            difference_grams=found.growers[g.id].difference_grams,
            flag=found.growers[g.id].flag,
        )
        for g in growers
        if everything or g.point_id == who.point_id
    ]
    shown_points = [p for p in found.points if everything or p.point_id == who.point_id]
    by_grade: dict[Grade, int] = {}
    for point in shown_points:
        for grade, grams in point.by_grade.items():
            by_grade[grade] = by_grade.get(grade, 0) + grams
    totals = schemas.Totals(
        expected_grams=sum(p.expected_grams for p in shown_points),
        weighed_grams=sum(p.weighed_grams for p in shown_points),
        sent_grams=sum(p.sent_grams for p in shown_points),
        rejected_grams=sum(p.rejected_grams for p in shown_points),
        received_grams=sum(p.received_grams or 0 for p in shown_points),
        by_grade=by_grade,
    )
    return schemas.Run(
        id=run.id,
        shop_id=run.shop_id,
        shop_name=shop.name,
        sku_id=run.sku_id,
        sku_name=sku,
        hub_id=run.hub_id,
        hub_name=nodes[run.hub_id],
        collect_on=run.collect_on,
        note=run.note,
        tolerance_percent=run.tolerance_percent,
        status=run.status,
        created_at=run.created_at,
        dispatched_at=run.dispatched_at,
        received_at=run.received_at,
        closed_at=run.closed_at,
        totals=totals,
        flagged=sum(g.flag is not None for g in shown_growers)
        + sum(p.flag is not None for p in shown_points),
        growers=shown_growers,
        points=[
            schemas.Point(
                id=p.point_id,
                name=nodes[p.point_id],
                growers=p.growers,
                expected_grams=p.expected_grams,
                weighed_grams=p.weighed_grams,
                sent_grams=p.sent_grams,
                rejected_grams=p.rejected_grams,
                received_grams=p.received_grams,
                received_at=receipts[p.point_id].received_at if p.point_id in receipts else None,
                difference_grams=p.difference_grams,
                flag=p.flag,
            )
            for p in shown_points
        ],
    )
