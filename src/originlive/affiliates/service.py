"""Rules of the selection library: shops' commission plans, anchors joining them, samples.

Which plan pays an anchor for a sale (:func:`effective_plan`, the one rule; the order path
reads the figures with :func:`plan_figures` in its batch and asks it):

1. Only an active plan of the product's shop counts, whose window contains the moment of the
   sale (``starts_at <= at < ends_at``, or no end), which covers the product (a shop plan
   every product, a group or product plan those it lists), and which the anchor has joined.
   A targeted plan counts only for the anchors it names.
2. Of those, a targeted plan beats an open one: it is the shop's own deal with the anchor.
3. Within a kind, the narrower scope beats the wider: a product plan beats a group plan
   beats a shop plan, so a shop can carve out exceptions from its shop-wide rate.
4. Two plans left level would be a clash, which :func:`create_plan` refuses (409): two
   active plans of a shop of the same kind and scope, covering a product in common, for an
   anchor in common (every anchor, for open plans), with overlapping windows. Targeted plans
   for different anchors may overlap, and so may plans of different kinds or scopes. Should
   a tie reach the rule all the same, the older plan wins.
"""

import dataclasses
import datetime as dt
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.accounts import service as accounts
from originlive.accounts.models import Role, User, UserRole
from originlive.affiliates import schemas
from originlive.affiliates.models import (
    CommissionPlan,
    CommissionPlanAnchor,
    CommissionPlanProduct,
    PlanKind,
    PlanMembership,
    PlanScope,
    PlanStatus,
    SampleRequest,
    SampleStatus,
)
from originlive.batching import OrderWriter
from originlive.catalog.models import Product, ProductStatus, Shop, ShopStatus, Sku
from originlive.db import utcnow
from originlive.errors import Conflict, Forbidden, InvalidInput, NotFound, OriginliveError
from originlive.logistics import service as logistics
from originlive.logistics.schemas import ShipmentCreate
from originlive.orders import service as orders
from originlive.orders.models import Order, OrderEvent, OrderItem, OrderStatus
from originlive.regions import service as regions


class KeyReused(OriginliveError):
    status = 422
    title = "Idempotency key reused"
    slug = "idempotency-key-reused"  # as for orders


class OutOfStock(Conflict):
    title = "Out of stock"
    slug = "sold-out"  # as for orders


# The rule


@dataclass(frozen=True, slots=True)
class PlanFigures:
    """What the rule reads of one active plan: ``product_ids`` of a group or product plan,
    ``anchor_ids`` named by a targeted plan, ``members``: the anchors who joined it (those
    asked about, as :func:`plan_figures` reads them)."""

    plan_id: int
    shop_id: int
    kind: PlanKind
    scope: PlanScope
    rate_bp: int
    starts_at: dt.datetime
    ends_at: dt.datetime | None
    product_ids: frozenset[int] = field(default=frozenset())
    anchor_ids: frozenset[int] = field(default=frozenset())
    members: frozenset[int] = field(default=frozenset())


_KIND_RANK = {PlanKind.OPEN: 0, PlanKind.TARGETED: 1}
_SCOPE_RANK = {PlanScope.SHOP: 0, PlanScope.GROUP: 1, PlanScope.PRODUCT: 2}


def _precedence(plan: PlanFigures) -> tuple[int, int, int]:
    return _KIND_RANK[plan.kind], _SCOPE_RANK[plan.scope], -plan.plan_id


def in_window(plan: PlanFigures, at: dt.datetime) -> bool:
    """Whether the plan runs at that moment."""
    return plan.starts_at <= at and (plan.ends_at is None or at < plan.ends_at)


def covers(plan: PlanFigures, product_id: int) -> bool:
    """Whether the plan covers the product (of its own shop)."""
    return plan.scope == PlanScope.SHOP or product_id in plan.product_ids


def offered_to(plan: PlanFigures, anchor_id: int) -> bool:
    """Whether the anchor may join the plan: open, or naming them."""
    return plan.kind == PlanKind.OPEN or anchor_id in plan.anchor_ids


def _applies(
    plan: PlanFigures, *, anchor_id: int, product_id: int, shop_id: int, at: dt.datetime
) -> bool:
    return (
        plan.shop_id == shop_id
        and offered_to(plan, anchor_id)
        and in_window(plan, at)
        and covers(plan, product_id)
    )


def effective_plan(
    plans: Iterable[PlanFigures], *, anchor_id: int, product_id: int, shop_id: int, at: dt.datetime
) -> tuple[int, int] | None:
    """The plan paying the anchor for a sale of the product at ``at``, and its rate in basis
    points; None if no plan does (the precedence is the module's)."""
    paying = [
        p
        for p in plans
        if anchor_id in p.members
        and _applies(p, anchor_id=anchor_id, product_id=product_id, shop_id=shop_id, at=at)
    ]
    if not paying:
        return None
    best = max(paying, key=_precedence)
    return best.plan_id, best.rate_bp


def best_offer(
    plans: Iterable[PlanFigures], *, anchor_id: int, product_id: int, shop_id: int, at: dt.datetime
) -> tuple[int, int] | None:
    """The plan with the highest rate the anchor may join for the product now (joining it
    alone would make it the one that pays), and its rate; None if none is offered."""
    offered = [
        p
        for p in plans
        if _applies(p, anchor_id=anchor_id, product_id=product_id, shop_id=shop_id, at=at)
    ]
    if not offered:
        return None
    best = max(offered, key=lambda p: (p.rate_bp, _precedence(p)))
    return best.plan_id, best.rate_bp


def _windows_meet(a: PlanFigures, b: PlanFigures) -> bool:
    return (a.ends_at is None or b.starts_at < a.ends_at) and (
        b.ends_at is None or a.starts_at < b.ends_at
    )


def clash(a: PlanFigures, b: PlanFigures) -> bool:
    """Whether two active plans would leave the rule level for some sale (rule 4)."""
    if (a.shop_id, a.kind, a.scope) != (b.shop_id, b.kind, b.scope):
        return False
    products_meet = a.scope == PlanScope.SHOP or bool(a.product_ids & b.product_ids)
    anchors_meet = a.kind == PlanKind.OPEN or bool(a.anchor_ids & b.anchor_ids)
    return products_meet and anchors_meet and _windows_meet(a, b)


# The rule's reader


def _running(at: dt.datetime) -> ColumnElement[bool]:
    return and_(
        CommissionPlan.starts_at <= at,
        or_(CommissionPlan.ends_at.is_(None), CommissionPlan.ends_at > at),
    )


def _pairs(
    conn: Connection, left: Any, right: Any, plan_ids: list[int], only: Collection[int] | None
) -> dict[int, frozenset[int]]:
    query = select(left, right).where(left.in_(plan_ids))
    if only is not None:
        query = query.where(right.in_(list(only)))
    found: dict[int, set[int]] = {}
    for plan_id, other in conn.execute(query):
        found.setdefault(plan_id, set()).add(other)
    return {k: frozenset(v) for k, v in found.items()}


def _read(
    conn: Connection, conditions: Sequence[ColumnElement[bool]], anchor_ids: Collection[int] | None
) -> list[PlanFigures]:
    """Figures of the active plans meeting the conditions; named anchors and members among
    ``anchor_ids`` (all, if None)."""
    rows = conn.execute(
        select(
            CommissionPlan.id, CommissionPlan.shop_id, CommissionPlan.kind, CommissionPlan.scope,
            CommissionPlan.rate_bp, CommissionPlan.starts_at, CommissionPlan.ends_at,
        )
        .where(CommissionPlan.status == PlanStatus.ACTIVE, *conditions)
        .order_by(CommissionPlan.id)
    ).all()  # fmt: skip
    ids = [row.id for row in rows]
    if not ids:
        return []
    products = _pairs(
        conn, CommissionPlanProduct.plan_id, CommissionPlanProduct.product_id, ids, None
    )
    named = _pairs(
        conn, CommissionPlanAnchor.plan_id, CommissionPlanAnchor.anchor_id, ids, anchor_ids
    )
    members = _pairs(conn, PlanMembership.plan_id, PlanMembership.anchor_id, ids, anchor_ids)
    empty: frozenset[int] = frozenset()
    return [
        PlanFigures(
            plan_id=row.id, shop_id=row.shop_id, kind=row.kind, scope=row.scope,
            rate_bp=row.rate_bp, starts_at=row.starts_at, ends_at=row.ends_at,
            product_ids=products.get(row.id, empty), anchor_ids=named.get(row.id, empty),
            members=members.get(row.id, empty),
        )
        for row in rows
    ]  # fmt: skip


def plan_figures(
    conn: Connection, shop_ids: Collection[int], anchor_ids: Collection[int], at: dt.datetime
) -> list[PlanFigures]:
    """What :func:`effective_plan` needs for sales of these shops by these anchors at ``at``:
    the shops' active plans running then, with their members among the anchors."""
    if not shop_ids or not anchor_ids:
        return []
    joined = exists().where(
        PlanMembership.plan_id == CommissionPlan.id,
        PlanMembership.anchor_id.in_(list(anchor_ids)),
    )
    conditions = [CommissionPlan.shop_id.in_(list(shop_ids)), _running(at), joined]
    return _read(conn, conditions, anchor_ids)


async def _figures(
    session: AsyncSession,
    conditions: Sequence[ColumnElement[bool]],
    anchor_ids: Collection[int] | None,
) -> list[PlanFigures]:
    return await session.run_sync(lambda s: _read(s.connection(), conditions, anchor_ids))


# Plans


async def _audit(
    session: AsyncSession,
    *,
    actor: User,
    action: str,
    target: CommissionPlan | SampleRequest,
    **detail: Any,
) -> None:
    await accounts.record_operator_act(
        session, actor=actor, action=action, target_type=target.__tablename__,
        target_id=target.id, detail=detail,
    )  # fmt: skip


async def get_plan(session: AsyncSession, *, plan_id: int) -> CommissionPlan | None:
    """The plan, or None."""
    return await session.get(CommissionPlan, plan_id, populate_existing=True)


async def list_plans(
    session: AsyncSession, *, shop_id: int, status: PlanStatus | None = None
) -> Sequence[CommissionPlan]:
    """A shop's plans, newest first, in one state or all."""
    query = select(CommissionPlan).where(CommissionPlan.shop_id == shop_id)
    if status is not None:
        query = query.where(CommissionPlan.status == status)
    return (await session.scalars(query.order_by(CommissionPlan.id.desc()).limit(200))).all()


async def plan_views(session: AsyncSession, plans: Sequence[CommissionPlan]) -> list[schemas.Plan]:
    """The plans as the API shows them, with their products and named anchors."""
    ids = [p.id for p in plans]
    products = await session.run_sync(
        lambda s: _pairs(
            s.connection(), CommissionPlanProduct.plan_id, CommissionPlanProduct.product_id,
            ids, None,
        )
    )  # fmt: skip
    anchors = await session.run_sync(
        lambda s: _pairs(
            s.connection(), CommissionPlanAnchor.plan_id, CommissionPlanAnchor.anchor_id,
            ids, None,
        )
    )  # fmt: skip
    return [
        schemas.Plan.model_validate(plan).model_copy(
            update={
                "product_ids": sorted(products.get(plan.id, ())),
                "anchor_ids": sorted(anchors.get(plan.id, ())),
            }
        )
        for plan in plans
    ]


async def _check_products(session: AsyncSession, *, shop: Shop, product_ids: list[int]) -> None:
    if not product_ids:
        return
    found = set(
        await session.scalars(
            select(Product.id).where(Product.id.in_(product_ids), Product.shop_id == shop.id)
        )
    )
    if missing := [p for p in product_ids if p not in found]:
        raise InvalidInput(f"Shop {shop.id} has no product {missing[0]}.", field="product_ids")


async def _check_anchors(session: AsyncSession, *, anchor_ids: list[int]) -> None:
    if not anchor_ids:
        return
    found = set(
        await session.scalars(
            select(UserRole.user_id).where(
                UserRole.user_id.in_(anchor_ids), UserRole.role == Role.ANCHOR
            )
        )
    )
    if missing := [a for a in anchor_ids if a not in found]:
        raise InvalidInput(f"User {missing[0]} is not an anchor.", field="anchor_ids")


async def _refuse_clash(session: AsyncSession, plan: PlanFigures) -> None:
    """409 if the plan would clash with another active plan of its shop (rule 4)."""
    # Plans of one shop are written one at a time, so that two clashing plans made at once
    # cannot both pass the check: a write to the shop's row that changes nothing takes its
    # row lock on PostgreSQL and the write lock on SQLite (which ignores FOR UPDATE) first.
    touch = update(Shop).where(Shop.id == plan.shop_id).values(updated_at=Shop.updated_at)
    await session.execute(touch)
    others = await _figures(
        session,
        [CommissionPlan.shop_id == plan.shop_id, CommissionPlan.id != plan.plan_id],
        None,
    )
    for other in others:
        if clash(plan, other):
            raise Conflict(
                f"Plan {other.plan_id} already covers these products for these anchors in "
                "an overlapping window; end it or change the window first."
            )


async def create_plan(
    session: AsyncSession, *, shop: Shop, actor: User, data: schemas.PlanCreate
) -> CommissionPlan:
    """Offer a commission plan for the shop's products (audited if an operator does it)."""
    await _check_products(session, shop=shop, product_ids=data.product_ids)
    await _check_anchors(session, anchor_ids=data.anchor_ids)
    starts_at = data.starts_at or utcnow()
    if data.ends_at is not None and data.ends_at <= starts_at:
        raise InvalidInput("The plan must end after it starts.", field="ends_at")
    figures = PlanFigures(
        plan_id=0, shop_id=shop.id, kind=data.kind, scope=data.scope, rate_bp=data.rate_bp,
        starts_at=starts_at, ends_at=data.ends_at, product_ids=frozenset(data.product_ids),
        anchor_ids=frozenset(data.anchor_ids),
    )  # fmt: skip
    await _refuse_clash(session, figures)
    plan = CommissionPlan(
        shop_id=shop.id,
        starts_at=starts_at,
        **data.model_dump(exclude={"product_ids", "anchor_ids", "starts_at"}),
    )
    session.add(plan)
    await session.flush()
    rows = [{"plan_id": plan.id, "product_id": p} for p in data.product_ids]
    if rows:
        await session.execute(insert(CommissionPlanProduct), rows)
    named = [{"plan_id": plan.id, "anchor_id": a} for a in data.anchor_ids]
    if named:
        await session.execute(insert(CommissionPlanAnchor), named)
    await _audit(session, actor=actor, action="plan.create", target=plan, rate_bp=plan.rate_bp)
    return plan


async def update_plan(
    session: AsyncSession, *, plan: CommissionPlan, actor: User, data: schemas.PlanUpdate
) -> CommissionPlan:
    """Change a running plan's name, rate, end or sample policy."""
    if plan.status == PlanStatus.ENDED:
        raise Conflict(f"Plan {plan.id} has ended.")
    changes = data.model_dump(exclude_unset=True)
    if changes.get("ends_at") is not None and changes["ends_at"] <= plan.starts_at:
        raise InvalidInput("The plan must end after it starts.", field="ends_at")
    if "rate_bp" in changes and changes["rate_bp"] is None:
        raise InvalidInput("A plan keeps a rate.", field="rate_bp")
    if "ends_at" in changes:  # a later end may now reach another plan's window
        (current,) = await _figures(session, [CommissionPlan.id == plan.id], None)
        await _refuse_clash(session, dataclasses.replace(current, ends_at=changes["ends_at"]))
    for name, value in changes.items():
        if value is not None or name == "ends_at":
            setattr(plan, name, value)
    await session.flush()
    await _audit(session, actor=actor, action="plan.update", target=plan, fields=sorted(changes))
    return plan


async def end_plan(session: AsyncSession, *, plan: CommissionPlan, actor: User) -> CommissionPlan:
    """End the plan now: it pays for no sale from here on (ending it twice is harmless)."""
    if plan.status == PlanStatus.ACTIVE:
        now = utcnow()
        plan.status = PlanStatus.ENDED
        if plan.ends_at is None or plan.ends_at > now:
            plan.ends_at = max(now, plan.starts_at + dt.timedelta(microseconds=1))
        await session.flush()
        await _audit(session, actor=actor, action="plan.end", target=plan)
    return plan


async def named_anchors(session: AsyncSession, *, plan_id: int) -> set[int]:
    """The anchors a targeted plan names."""
    query = select(CommissionPlanAnchor.anchor_id).where(CommissionPlanAnchor.plan_id == plan_id)
    return set(await session.scalars(query))


async def may_join(session: AsyncSession, *, plan: CommissionPlan, anchor: User) -> bool:
    """Whether the plan is offered to the anchor: open, or naming them."""
    return plan.kind == PlanKind.OPEN or anchor.id in await named_anchors(session, plan_id=plan.id)


# Members


async def membership(
    session: AsyncSession, *, plan_id: int, anchor_id: int
) -> PlanMembership | None:
    """The anchor's membership of the plan, or None."""
    return await session.get(PlanMembership, (plan_id, anchor_id))


async def join_plan(
    session: AsyncSession, *, plan: CommissionPlan, anchor: User
) -> tuple[PlanMembership, bool]:
    """Join the plan; returns the membership and whether it is new (joining twice is one)."""
    if not await may_join(session, plan=plan, anchor=anchor):
        raise Forbidden(f"Plan {plan.id} is meant for other anchors.")
    if plan.status != PlanStatus.ACTIVE or (plan.ends_at is not None and plan.ends_at <= utcnow()):
        raise Conflict(f"Plan {plan.id} has ended.")
    found = await membership(session, plan_id=plan.id, anchor_id=anchor.id)
    if found is not None:
        return found, False
    joined = PlanMembership(plan_id=plan.id, anchor_id=anchor.id, joined_at=utcnow())
    try:
        async with session.begin_nested():  # the same anchor's second click, at once
            session.add(joined)
    except IntegrityError:
        found = await membership(session, plan_id=plan.id, anchor_id=anchor.id)
        assert found is not None
        return found, False
    return joined, True


async def joined_plan_ids(session: AsyncSession, *, anchor_id: int) -> set[int]:
    """The plans the anchor joined."""
    query = select(PlanMembership.plan_id).where(PlanMembership.anchor_id == anchor_id)
    return set(await session.scalars(query))


# The library


@dataclass(frozen=True)
class LibraryFilter:
    """What an anchor narrows the library to."""

    shop_id: int | None = None
    category: str | None = None
    region_code: str | None = None


async def library(
    session: AsyncSession, *, anchor: User, where: LibraryFilter, limit: int, offset: int
) -> tuple[list[schemas.LibraryItem], int]:
    """A page of the products offered to the anchor now (of approved shops, on sale), newest
    first, each with the best plan they may join and the plan paying them now; and how many
    there are in all."""
    now = utcnow()
    named = exists().where(
        CommissionPlanAnchor.plan_id == CommissionPlan.id,
        CommissionPlanAnchor.anchor_id == anchor.id,
    )
    approved = select(Shop.id).where(Shop.status == ShopStatus.APPROVED)
    conditions = [
        _running(now),
        or_(CommissionPlan.kind == PlanKind.OPEN, named),
        CommissionPlan.shop_id.in_(approved),
    ]
    if where.shop_id is not None:
        conditions.append(CommissionPlan.shop_id == where.shop_id)
    plans = await _figures(session, conditions, [anchor.id])
    query = await _offered_products(session, plans, where)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.execute(query.order_by(Product.id.desc()).limit(limit).offset(offset))
    items = [_library_item(plans, anchor.id, product, shop, now) for product, shop in rows]
    return items, total or 0


async def _offered_products(
    session: AsyncSession, plans: list[PlanFigures], where: LibraryFilter
) -> Any:
    whole_shops = {p.shop_id for p in plans if p.scope == PlanScope.SHOP}
    listed = {product for p in plans for product in p.product_ids}
    query = (
        select(Product, Shop)
        .join(Shop, Shop.id == Product.shop_id)
        .where(
            Product.status == ProductStatus.ACTIVE,
            Shop.status == ShopStatus.APPROVED,
            or_(Product.shop_id.in_(whole_shops), Product.id.in_(listed)),
        )
    )
    if where.category:
        query = query.where(Product.category == where.category)
    if where.region_code:
        region = await regions.get_or_404(session, code=where.region_code, field="region")
        query = query.where(regions.within(region, Product.origin_region_code.expression))
    return query


def _library_item(
    plans: list[PlanFigures], anchor_id: int, product: Product, shop: Shop, now: dt.datetime
) -> schemas.LibraryItem:
    best = best_offer(plans, anchor_id=anchor_id, product_id=product.id, shop_id=shop.id, at=now)
    assert best is not None  # the product was listed for a plan offering it
    joined = effective_plan(
        plans, anchor_id=anchor_id, product_id=product.id, shop_id=shop.id, at=now
    )
    return schemas.LibraryItem(
        product_id=product.id, title=product.title, category=product.category,
        origin_region_code=product.origin_region_code, shop_id=shop.id, shop_name=shop.name,
        best_plan_id=best[0], best_rate_bp=best[1],
        joined_plan_id=joined[0] if joined else None, joined_rate_bp=joined[1] if joined else None,
    )  # fmt: skip


# Samples


async def get_sample(session: AsyncSession, *, sample_id: int) -> SampleRequest | None:
    """The sample request, read afresh, or None."""
    return await session.get(SampleRequest, sample_id, populate_existing=True)


async def _replay(
    session: AsyncSession, *, anchor: User, key: str, data: schemas.SampleCreate
) -> SampleRequest | None:
    """The request first made with this key, if any; 422 if it asked for something else."""
    first = await session.scalar(
        select(SampleRequest).where(
            SampleRequest.anchor_id == anchor.id, SampleRequest.idempotency_key == key
        )
    )
    if first is not None and (first.plan_id, first.sku_id) != (data.plan_id, data.sku_id):
        raise KeyReused("This Idempotency-Key was used for another sample request; use a new key.")
    return first


async def _sample_sku(session: AsyncSession, *, plan: CommissionPlan, sku_id: int) -> Sku:
    """The SKU, if it is of a product on sale that the plan covers; else 422."""
    row = (
        await session.execute(
            select(Sku, Product).join(Product, Product.id == Sku.product_id).where(Sku.id == sku_id)
        )
    ).first()
    covered = row is not None and row.Product.shop_id == plan.shop_id
    if covered and plan.scope != PlanScope.SHOP:
        listed = select(CommissionPlanProduct.product_id).where(
            CommissionPlanProduct.plan_id == plan.id
        )
        covered = row is not None and row.Product.id in set(await session.scalars(listed))
    if row is None or not covered or row.Product.status != ProductStatus.ACTIVE:
        raise InvalidInput(f"Plan {plan.id} offers no SKU {sku_id}.", field="sku_id")
    sku: Sku = row.Sku
    return sku


async def _open_request(
    session: AsyncSession, *, anchor_id: int, product_id: int
) -> SampleRequest | None:
    return await session.scalar(
        select(SampleRequest).where(
            SampleRequest.anchor_id == anchor_id,
            SampleRequest.product_id == product_id,
            SampleRequest.status.in_((SampleStatus.REQUESTED, SampleStatus.APPROVED)),
        )
    )


def _already(sample: SampleRequest) -> Conflict:
    return Conflict(
        f"Sample request {sample.id} for this product is still open ({sample.status.value})."
    )


async def request_sample(
    session: AsyncSession, *, anchor: User, data: schemas.SampleCreate, idempotency_key: str | None
) -> tuple[SampleRequest, bool]:
    """Ask a plan's shop for a sample of one of its SKUs; returns the request and whether it
    is new. The same Idempotency-Key answers the first request again; without one, a second
    open request for the same product is refused (409)."""
    if idempotency_key is not None:
        first = await _replay(session, anchor=anchor, key=idempotency_key, data=data)
        if first is not None:
            return first, False
    plan = await get_plan(session, plan_id=data.plan_id)
    if plan is None:
        raise InvalidInput(f"No plan {data.plan_id}.", field="plan_id")
    if await membership(session, plan_id=plan.id, anchor_id=anchor.id) is None:
        raise Forbidden(f"Join plan {plan.id} before asking for its samples.")
    if plan.status != PlanStatus.ACTIVE or not plan.samples_allowed:
        raise Conflict(f"Plan {plan.id} gives no samples.")
    sku = await _sample_sku(session, plan=plan, sku_id=data.sku_id)
    address = data.address
    await regions.get_or_404(session, code=address.region_code, field="address.region_code")
    if open_one := await _open_request(session, anchor_id=anchor.id, product_id=sku.product_id):
        raise _already(open_one)
    sample = SampleRequest(
        plan_id=plan.id, anchor_id=anchor.id, shop_id=plan.shop_id, product_id=sku.product_id,
        sku_id=sku.id, ship_name=address.name, ship_phone=address.phone,
        ship_region_code=address.region_code, ship_detail=address.detail, note=data.note,
        idempotency_key=idempotency_key, created_at=utcnow(),
    )  # fmt: skip
    try:
        async with session.begin_nested():  # a double click racing this one
            session.add(sample)
    except IntegrityError:
        return await _raced(session, anchor=anchor, data=data, key=idempotency_key, sku=sku)
    return sample, True


async def _raced(
    session: AsyncSession, *, anchor: User, data: schemas.SampleCreate, key: str | None, sku: Sku
) -> tuple[SampleRequest, bool]:
    """The request that won a race with this one: the same key's, or the open one's 409."""
    if key is not None and (first := await _replay(session, anchor=anchor, key=key, data=data)):
        return first, False
    open_one = await _open_request(session, anchor_id=anchor.id, product_id=sku.product_id)
    assert open_one is not None  # the only other unique key
    raise _already(open_one)


async def list_samples(
    session: AsyncSession,
    *,
    anchor_id: int | None = None,
    shop_id: int | None = None,
    status: SampleStatus | None = None,
    limit: int = 50,
) -> Sequence[SampleRequest]:
    """Sample requests of an anchor or of a shop, newest first."""
    query = select(SampleRequest)
    if anchor_id is not None:
        query = query.where(SampleRequest.anchor_id == anchor_id)
    if shop_id is not None:
        query = query.where(SampleRequest.shop_id == shop_id)
    if status is not None:
        query = query.where(SampleRequest.status == status)
    return (await session.scalars(query.order_by(SampleRequest.id.desc()).limit(limit))).all()


async def sample_views(
    session: AsyncSession, samples: Sequence[SampleRequest]
) -> list[schemas.Sample]:
    """The requests as the API shows them, with the state of each one's free order."""
    order_ids = [s.order_id for s in samples if s.order_id is not None]
    states: dict[int, OrderStatus] = {}
    if order_ids:
        query = select(Order.id, Order.status).where(Order.id.in_(order_ids))
        states = {order_id: status for order_id, status in await session.execute(query)}
    return [_sample_view(s, states.get(s.order_id) if s.order_id else None) for s in samples]


def _sample_view(sample: SampleRequest, order_status: OrderStatus | None) -> schemas.Sample:
    return schemas.Sample(
        id=sample.id, plan_id=sample.plan_id, anchor_id=sample.anchor_id,
        shop_id=sample.shop_id, product_id=sample.product_id, sku_id=sample.sku_id,
        status=sample.status,
        address={"name": sample.ship_name, "phone": sample.ship_phone,
                 "region_code": sample.ship_region_code, "detail": sample.ship_detail},
        note=sample.note, reject_reason=sample.reject_reason, order_id=sample.order_id,
        order_status=order_status, created_at=sample.created_at, decided_at=sample.decided_at,
    )  # fmt: skip


async def reject_sample(
    session: AsyncSession, *, sample: SampleRequest, actor: User, reason: str
) -> SampleRequest:
    """Turn the request down, saying why."""
    if sample.status != SampleStatus.REQUESTED:
        raise Conflict(f"Sample request {sample.id} is {sample.status.value} already.")
    sample.status = SampleStatus.REJECTED
    sample.reject_reason = reason
    sample.decided_at = utcnow()
    await session.flush()
    await _audit(session, actor=actor, action="sample.reject", target=sample)
    return sample


async def approve_sample(
    session: AsyncSession, writer: OrderWriter, *, sample: SampleRequest, actor: User
) -> SampleRequest:
    """Grant the request: a free order of one unit to the anchor's address, paid at once, that
    the shop ships like any other (``ship_sample``)."""
    if sample.status != SampleStatus.REQUESTED:
        raise Conflict(f"Sample request {sample.id} is {sample.status.value} already.")
    await writer.run(grant_sample, sample_id=sample.id, actor_id=actor.id, now=utcnow())
    fresh = await get_sample(session, sample_id=sample.id)
    assert fresh is not None
    await _audit(session, actor=actor, action="sample.approve", target=fresh)
    return fresh


def grant_sample(conn: Connection, *, sample_id: int, actor_id: int, now: dt.datetime) -> int:
    """The order writer's part of an approval: the request becomes approved, one unit leaves
    the SKU's stock, and a paid order of it at 0 fen is made for the anchor; returns its id.
    Each step checks the state it changes, so a second approval at once changes nothing."""
    sample = conn.execute(select(SampleRequest).where(SampleRequest.id == sample_id)).one()
    moved = conn.execute(
        update(SampleRequest)
        .where(SampleRequest.id == sample_id, SampleRequest.status == SampleStatus.REQUESTED)
        .values(status=SampleStatus.APPROVED, decided_at=now)
    )
    if moved.rowcount != 1:
        raise Conflict(f"Sample request {sample_id} was decided meanwhile.")
    sku = conn.execute(
        select(Sku.currency, Product.title, Sku.name)
        .join(Product, Product.id == Sku.product_id)
        .where(Sku.id == sample.sku_id)
    ).one()
    taken = conn.execute(update(Sku).where(Sku.id == sample.sku_id, Sku.stock >= 1).values(
        stock=Sku.stock - 1))  # fmt: skip
    if taken.rowcount != 1:
        raise OutOfStock(f"{sku.title} is out of stock: there is no unit to send.")
    order_id = _free_order(conn, sample, currency=sku.currency, now=now)
    conn.execute(
        insert(OrderItem).values(
            order_id=order_id, sku_id=sample.sku_id, offer_id=None,
            title=f"{sku.title} {sku.name}", unit_price_cents=0, quantity=1,
        )
    )  # fmt: skip
    conn.execute(
        insert(OrderEvent).values(
            order_id=order_id, from_status=None, to_status=OrderStatus.PAID, actor_id=actor_id,
            note=f"free sample, request {sample_id}", created_at=now,
        )
    )  # fmt: skip
    conn.execute(
        update(SampleRequest).where(SampleRequest.id == sample_id).values(order_id=order_id)
    )
    return order_id


def _free_order(conn: Connection, sample: Any, *, currency: str, now: dt.datetime) -> int:
    # Paid at once with nothing to pay: it never waits for money, so it never expires.
    order_id: int = conn.execute(
        insert(Order)
        .values(
            buyer_id=sample.anchor_id, shop_id=sample.shop_id, status=OrderStatus.PAID,
            currency=currency, items_cents=0, shipping_cents=0, total_cents=0,
            refunded_cents=0, ship_name=sample.ship_name, ship_phone=sample.ship_phone,
            ship_region_code=sample.ship_region_code, ship_detail=sample.ship_detail,
            idempotency_key=f"sample:{sample.id}", request_hash="", created_at=now,
            expires_at=now, updated_at=now,
        )
        .returning(Order.id)
    ).scalar_one()  # fmt: skip
    return order_id


async def ship_sample(
    session: AsyncSession, writer: OrderWriter, *, sample: SampleRequest, actor: User
) -> SampleRequest:
    """Send an approved sample's order through the delivery network, as any paid order."""
    if sample.status != SampleStatus.APPROVED or sample.order_id is None:
        raise Conflict(f"Sample request {sample.id} is {sample.status.value}, not approved.")
    order = await _order(session, sample.order_id)
    await logistics.ship(session, writer, order=order, actor=actor, data=ShipmentCreate())
    sample.status = SampleStatus.SHIPPED
    await session.flush()
    return sample


async def _order(session: AsyncSession, order_id: int) -> Order:
    order = await orders.get_order(session, order_id=order_id)
    if order is None:
        raise NotFound(f"No order {order_id}.")
    return order
