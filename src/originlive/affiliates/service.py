"""Rules of the selection library: shops' commission plans, anchors joining them, the library.

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

import datetime as dt
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
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
    LineupItem,
    PlanKind,
    PlanMembership,
    PlanScope,
    PlanStatus,
    SampleRequest,
)
from originlive.catalog.models import Product, ProductStatus, Shop, ShopStatus
from originlive.db import utcnow
from originlive.errors import Conflict, Forbidden, InvalidInput
from originlive.regions import service as regions

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


async def audit(
    session: AsyncSession,
    *,
    actor: User,
    action: str,
    target: CommissionPlan | SampleRequest | LineupItem,
    **detail: Any,
) -> None:
    """Record what an operator did to a plan, a sample request or a line-up item (invariant 7)."""
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
    await audit(session, actor=actor, action="plan.create", target=plan, rate_bp=plan.rate_bp)
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
        await _refuse_clash(session, replace(current, ends_at=changes["ends_at"]))
    for name, value in changes.items():
        if value is not None or name == "ends_at":
            setattr(plan, name, value)
    await session.flush()
    await audit(session, actor=actor, action="plan.update", target=plan, fields=sorted(changes))
    return plan


async def end_plan(session: AsyncSession, *, plan: CommissionPlan, actor: User) -> CommissionPlan:
    """End the plan now: it pays for no sale from here on (ending it twice is harmless)."""
    if plan.status == PlanStatus.ACTIVE:
        now = utcnow()
        plan.status = PlanStatus.ENDED
        if plan.ends_at is None or plan.ends_at > now:
            plan.ends_at = max(now, plan.starts_at + dt.timedelta(microseconds=1))
        await session.flush()
        await audit(session, actor=actor, action="plan.end", target=plan)
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
