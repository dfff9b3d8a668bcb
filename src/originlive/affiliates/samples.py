"""Samples: an anchor asks a plan's shop for a free unit of a product to try before selling
it; the shop turns the request down or grants it, and a granted sample is a paid order of 0 fen
to the anchor's address, which the shop ships through the delivery network like any other.

An anchor has one open request (requested or approved) per product: a double click is one
request, and so is a retry with the same Idempotency-Key. Whether a sample's price is taken
from the anchor's commission is the plan's ``sample_cost_from_commission``, for the ledger.
"""

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.accounts.models import User
from originlive.affiliates import schemas, service
from originlive.affiliates.models import (
    CommissionPlan,
    CommissionPlanProduct,
    PlanScope,
    PlanStatus,
    SampleRequest,
    SampleStatus,
)
from originlive.batching import OrderWriter
from originlive.catalog.models import Product, ProductStatus, Sku
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
    if first is not None and _asked(first) != data:
        raise KeyReused("This Idempotency-Key was used for another sample request; use a new key.")
    return first


def _asked(sample: SampleRequest) -> schemas.SampleCreate:
    """What the request asked for, as its body said it."""
    address = {"name": sample.ship_name, "phone": sample.ship_phone,
               "region_code": sample.ship_region_code, "detail": sample.ship_detail}  # fmt: skip
    return schemas.SampleCreate(
        plan_id=sample.plan_id, sku_id=sample.sku_id, address=address, note=sample.note
    )


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
    plan = await service.get_plan(session, plan_id=data.plan_id)
    if plan is None:
        raise InvalidInput(f"No plan {data.plan_id}.", field="plan_id")
    if await service.membership(session, plan_id=plan.id, anchor_id=anchor.id) is None:
        raise Forbidden(f"Join plan {plan.id} before asking for its samples.")
    if plan.status != PlanStatus.ACTIVE or not plan.samples_allowed:
        raise Conflict(f"Plan {plan.id} gives no samples.")
    sku = await _sample_sku(session, plan=plan, sku_id=data.sku_id)
    address = data.address
    await regions.get_or_404(session, code=address.region_code, field="address.region_code")
    if await _open_request(session, anchor_id=anchor.id, product_id=sku.product_id):
        # Perhaps this key's own first request, committed since the look above (PostgreSQL:
        # another process, a moment ago): its answer, else the 409.
        return await _raced(session, anchor=anchor, data=data, key=idempotency_key, sku=sku)
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
    await service.audit(session, actor=actor, action="sample.reject", target=sample)
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
    await service.audit(session, actor=actor, action="sample.approve", target=fresh)
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
