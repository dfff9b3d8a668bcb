"""The line-up: the products an anchor puts into a session they anchor, each of a shop whose
plan they joined. The plan is the one paying them for the product at that moment
(``service.effective_plan``); none, and the product is refused.

A proposed product waits for the shop's managers, unless its plan approves by itself
(``auto_approve``). Approval opens the flash offer in the session, sold by its anchor under
the plan at the plan's rate then, so every order line of it records the session, the anchor,
the plan and the rate; the anchor pins it as any offer of the session.

The item is decided in the order writer's transaction that opens its offer (``_Deciding``):
two approvals at once open one offer, and an offer refused (too few units in stock) leaves the
item as it was.
"""

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.accounts.models import User
from originlive.affiliates import schemas, service
from originlive.affiliates.models import CommissionPlan, LineupItem, LineupStatus
from originlive.batching import OrderWriter
from originlive.catalog import service as catalog
from originlive.catalog.deps import on_sale
from originlive.catalog.models import Product, Shop, Sku
from originlive.db import utcnow
from originlive.errors import Conflict, Forbidden, InvalidInput
from originlive.live.models import LiveSession, SessionStatus
from originlive.orders import service as orders
from originlive.orders.placing import Attribution
from originlive.orders.schemas import OfferCreate

T = TypeVar("T")


async def get_item(session: AsyncSession, *, item_id: int) -> LineupItem | None:
    """The line-up item, read afresh, or None."""
    return await session.get(LineupItem, item_id, populate_existing=True)


async def list_items(
    session: AsyncSession,
    *,
    session_id: int | None = None,
    shop_id: int | None = None,
    status: LineupStatus | None = None,
    limit: int = 200,
) -> Sequence[LineupItem]:
    """A session's line-up, or the items proposed to a shop, newest first."""
    query = select(LineupItem)
    if session_id is not None:
        query = query.where(LineupItem.session_id == session_id)
    if shop_id is not None:
        plans = select(CommissionPlan.id).where(CommissionPlan.shop_id == shop_id)
        query = query.where(LineupItem.plan_id.in_(plans))
    if status is not None:
        query = query.where(LineupItem.status == status)
    return (await session.scalars(query.order_by(LineupItem.id.desc()).limit(limit))).all()


async def item_views(
    session: AsyncSession, items: Sequence[LineupItem]
) -> list[schemas.LineupItem]:
    """The items as the API shows them, with their shop, product and anchor (one query)."""
    rows = await session.execute(
        select(
            LineupItem.id, LiveSession.anchor_id, CommissionPlan.shop_id, Shop.name,
            Product.id.label("product_id"), Product.title, Sku.name.label("sku_name"),
        )
        .join(LiveSession, LiveSession.id == LineupItem.session_id)
        .join(CommissionPlan, CommissionPlan.id == LineupItem.plan_id)
        .join(Shop, Shop.id == CommissionPlan.shop_id)
        .join(Sku, Sku.id == LineupItem.sku_id)
        .join(Product, Product.id == Sku.product_id)
        .where(LineupItem.id.in_([i.id for i in items]))
    )  # fmt: skip
    more = {row.id: row for row in rows}
    return [
        schemas.LineupItem(
            id=i.id, session_id=i.session_id, anchor_id=more[i.id].anchor_id,
            plan_id=i.plan_id, shop_id=more[i.id].shop_id, shop_name=more[i.id].name,
            product_id=more[i.id].product_id, sku_id=i.sku_id,
            title=f"{more[i.id].title} {more[i.id].sku_name}", price_cents=i.price_cents,
            quantity=i.quantity, per_buyer_limit=i.per_buyer_limit, status=i.status,
            offer_id=i.offer_id, rate_bp=i.rate_bp, created_at=i.created_at,
            decided_at=i.decided_at, decided_by=i.decided_by,
        )
        for i in items
    ]  # fmt: skip


async def _sku(session: AsyncSession, sku_id: int) -> Sku:
    """The SKU with its product and shop, if it is on sale; else 422."""
    sku = await catalog.get_sku(session, sku_id=sku_id)
    if sku is None or not on_sale(sku.product):
        raise InvalidInput(f"No SKU {sku_id} on sale.", field="sku_id")
    return sku


async def paying_plan(
    session: AsyncSession, *, anchor_id: int, sku: Sku, at: dt.datetime
) -> tuple[int, int]:
    """The plan paying the anchor for the SKU's product at ``at`` and its rate (the rule's);
    403 if none does: they have joined none of the shop's plans covering it."""
    product = sku.product
    plans = await session.run_sync(
        lambda s: service.plan_figures(s.connection(), [product.shop_id], [anchor_id], at)
    )
    paying = service.effective_plan(
        plans, anchor_id=anchor_id, product_id=product.id, shop_id=product.shop_id, at=at
    )
    if paying is None:
        raise Forbidden(
            f"No plan you joined pays for product {product.id} now: join one of its shop's "
            "plans in the library first."
        )
    return paying


def _check_open(live: LiveSession) -> None:
    if live.status == SessionStatus.ENDED:
        raise Conflict(f"Live session {live.id} has ended.")


async def propose(
    session: AsyncSession,
    writer: OrderWriter,
    *,
    live: LiveSession,
    anchor: User,
    data: schemas.LineupItemCreate,
) -> LineupItem:
    """Put a product of a plan the anchor joined into their session's line-up: proposed to
    the shop, or approved at once (its offer open) if the plan approves by itself."""
    if live.anchor_id != anchor.id:
        raise Forbidden(f"Only the anchor of live session {live.id} puts goods into it.")
    _check_open(live)
    sku = await _sku(session, data.sku_id)
    now = utcnow()
    plan_id, rate_bp = await paying_plan(session, anchor_id=anchor.id, sku=sku, at=now)
    plan = await service.get_plan(session, plan_id=plan_id)
    assert plan is not None  # the rule read it
    values = data.model_dump() | {"session_id": live.id, "plan_id": plan_id, "created_at": now}
    if not plan.auto_approve:
        item = LineupItem(**values, status=LineupStatus.PROPOSED)
        session.add(item)
        await session.flush()
        return item

    def add(conn: Connection) -> int:
        return int(
            conn.execute(
                insert(LineupItem)
                .values(**values, status=LineupStatus.APPROVED, rate_bp=rate_bp, decided_at=now)
                .returning(LineupItem.id)
            ).scalar_one()
        )

    item_id = await _open(
        writer, decide=add, live=live, sku=sku, data=data, paying=(plan_id, rate_bp)
    )
    added = await get_item(session, item_id=item_id)
    assert added is not None
    return added


async def approve(
    session: AsyncSession, writer: OrderWriter, *, item: LineupItem, actor: User
) -> LineupItem:
    """The shop takes the product into the session: its offer opens there, under the plan
    paying the anchor for it now, at that plan's rate; 409 if decided already."""
    if item.status != LineupStatus.PROPOSED:
        raise Conflict(f"Line-up item {item.id} is {item.status.value} already.")
    live = await session.get(LiveSession, item.session_id, populate_existing=True)
    assert live is not None  # a foreign key keeps it
    _check_open(live)
    sku = await _sku(session, item.sku_id)
    now = utcnow()
    try:
        plan_id, rate_bp = await paying_plan(session, anchor_id=live.anchor_id, sku=sku, at=now)
    except Forbidden as exc:  # the plan ended, or the anchor was removed, since proposing
        raise Conflict(f"No plan pays the anchor for line-up item {item.id} any more.") from exc
    item_id = item.id

    def claim(conn: Connection) -> int:
        moved = conn.execute(
            update(LineupItem)
            .where(LineupItem.id == item_id, LineupItem.status == LineupStatus.PROPOSED)
            .values(status=LineupStatus.APPROVED, plan_id=plan_id, rate_bp=rate_bp,
                    decided_at=now, decided_by=actor.id)
        )  # fmt: skip
        if moved.rowcount != 1:
            raise Conflict(f"Line-up item {item_id} was decided meanwhile.")
        return item_id

    data = schemas.LineupItemCreate(
        sku_id=item.sku_id, price_cents=item.price_cents, quantity=item.quantity,
        per_buyer_limit=item.per_buyer_limit,
    )  # fmt: skip
    await _open(writer, decide=claim, live=live, sku=sku, data=data, paying=(plan_id, rate_bp))
    fresh = await get_item(session, item_id=item_id)
    assert fresh is not None
    await service.audit(session, actor=actor, action="lineup.approve", target=fresh)
    return fresh


async def reject(session: AsyncSession, *, item: LineupItem, actor: User) -> LineupItem:
    """The shop turns the product down for the session; 409 if decided already."""
    if item.status != LineupStatus.PROPOSED:
        raise Conflict(f"Line-up item {item.id} is {item.status.value} already.")
    item.status = LineupStatus.REJECTED
    item.decided_at = utcnow()
    item.decided_by = actor.id
    await session.flush()
    await service.audit(session, actor=actor, action="lineup.reject", target=item)
    return item


async def _open(
    writer: OrderWriter,
    *,
    decide: Callable[[Connection], int],
    live: LiveSession,
    sku: Sku,
    data: schemas.LineupItemCreate,
    paying: tuple[int, int],
) -> int:
    """Open the item's offer in the session, deciding the item (``decide``, which returns its
    id) in the same transaction; returns the item's id."""
    plan_id, rate_bp = paying
    sold_by = Attribution(
        live_session_id=live.id, anchor_id=live.anchor_id, plan_id=plan_id, commission_bp=rate_bp
    )
    deciding = _Deciding(writer, decide)
    offer = OfferCreate(
        sku_id=data.sku_id, price_cents=data.price_cents, quantity=data.quantity,
        per_buyer_limit=data.per_buyer_limit,
    )  # fmt: skip
    await orders.open_offer(deciding, sku=sku, data=offer, sold_by=sold_by)
    assert deciding.item_id is not None
    return deciding.item_id


@dataclass
class _Deciding:
    """The order writer, running ``decide`` before the offer opens and recording the offer on
    the item it returns, all in the one transaction."""

    writer: OrderWriter
    decide: Callable[[Connection], int]
    item_id: int | None = None

    async def run(self, fn: Callable[..., T], /, **kwargs: Any) -> T:
        decided: tuple[T, int] = await self.writer.run(
            _decided, decide=self.decide, fn=fn, kwargs=kwargs
        )
        result, self.item_id = decided
        return result

    async def close(self) -> None:
        """The writer is the application's: it stays open."""


def _decided(
    conn: Connection, *, decide: Callable[[Connection], int], fn: Callable[..., Any], kwargs: Any
) -> tuple[Any, int]:
    item_id = decide(conn)
    offer_id = fn(conn, **kwargs)
    conn.execute(update(LineupItem).where(LineupItem.id == item_id).values(offer_id=offer_id))
    return offer_id, item_id
