"""Rules of offers and orders as the API sees them: reads on the session, changes via the writer.

Every change of stock or order state goes through an ``OrderWriter`` (see ``batching.py``), which
commits on its own before answering; new orders go through an ``OrderPlacer`` (the writer on
SQLite, per-process batches on PostgreSQL: ``bulk.py``), behind the ``Gate`` (Redis, when
configured: ``gate.py``). Reads use the request's session.
"""

import asyncio
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from originlive.accounts import service as accounts
from originlive.accounts.models import User
from originlive.batching import OrderWriter
from originlive.catalog.models import Shop, ShopStatus, Sku, product_on_sale
from originlive.db import utcnow
from originlive.errors import Conflict, Forbidden
from originlive.orders import placing, schemas, stock
from originlive.orders.bulk import OrderPlacer
from originlive.orders.gate import Gate
from originlive.orders.models import (
    PAID_IN,
    FlashOffer,
    OfferStatus,
    Order,
    OrderItem,
    OrderStatus,
    ShippingRate,
)
from originlive.regions import service as regions

log = logging.getLogger(__name__)


# Offers


async def get_offer(session: AsyncSession, *, offer_id: int) -> FlashOffer | None:
    """The offer, or None."""
    return await session.get(FlashOffer, offer_id, populate_existing=True)


async def list_offers(
    session: AsyncSession, *, shop_id: int, status: OfferStatus | None
) -> Sequence[FlashOffer]:
    """A shop's offers, newest first, in one state or all."""
    query = select(FlashOffer).where(FlashOffer.shop_id == shop_id)
    if status is not None:
        query = query.where(FlashOffer.status == status)
    return (await session.scalars(query.order_by(FlashOffer.id.desc()).limit(100))).all()


async def open_offer(
    writer: OrderWriter,
    *,
    sku: Sku,
    data: schemas.OfferCreate,
    sold_by: placing.Attribution | None = None,
) -> int:
    """Put units of the SKU on sale at the offer price, sold by ``sold_by`` (a session's
    anchor, under a plan); returns the offer's id. The SKU's product and shop must be on sale
    (``sku.product.shop`` loaded)."""
    product = sku.product
    if product.shop.status != ShopStatus.APPROVED:
        raise Forbidden("The shop sells once an operator approves it.")
    if not product_on_sale(product.status, product.shop.status):
        raise Conflict(f"Product {product.id} is hidden: put it on sale to open an offer.")
    return await writer.run(
        stock.open_offer,
        sku_id=sku.id,
        price_cents=data.price_cents,
        quantity=data.quantity,
        per_buyer_limit=data.per_buyer_limit,
        ends_at=data.ends_at,
        sold_by=sold_by,
        now=utcnow(),
    )


async def end_offer(writer: OrderWriter, gate: Gate, *, offer: FlashOffer) -> int:
    """Close the offer now; returns the units that went back to the SKU."""
    returned = await writer.run(stock.end_offer, offer_id=offer.id, now=utcnow())
    await gate.ended(offer.id)
    return returned


async def close_offer(
    session: AsyncSession, writer: OrderWriter, gate: Gate, *, offer: FlashOffer, actor: User
) -> int:
    """Close the offer by hand now (audited if an operator does it); returns the units that
    went back to the SKU."""
    returned = await end_offer(writer, gate, offer=offer)
    await accounts.record_operator_act(
        session, actor=actor, action="offer.end", target_type="flash_offer",
        target_id=offer.id, detail={"returned": returned},
    )  # fmt: skip
    return returned


# Orders


async def place_order(
    placer: OrderPlacer,
    gate: Gate,
    *,
    buyer_id: int,
    idempotency_key: str,
    data: schemas.OrderCreate,
    ttl_seconds: int,
) -> placing.Placed:
    """Reserve the units and record a pending order; a retry with the same key replays it."""
    command = placing.PlaceOrder(
        buyer_id=buyer_id,
        idempotency_key=idempotency_key,
        lines=tuple(
            placing.Line(offer_id=i.offer_id, sku_id=i.sku_id, quantity=i.quantity)
            for i in data.items
        ),
        address=placing.Address(**data.address.model_dump()),
        now=utcnow(),
        ttl=timedelta(seconds=ttl_seconds),
    )
    reservation = await gate.reserve(command)
    if reservation is None:
        return await placer.place(command)
    try:
        placed = await placer.place(command)
    except asyncio.CancelledError:
        raise  # committed or not, unknown here: the reconciler settles it (gate.STALE_MS)
    except BaseException:
        await gate.settle(reservation, kept=False)
        raise
    # A replay's units were taken by its first order, not by this reservation.
    await gate.settle(reservation, kept=not placed.replayed)
    return placed


async def get_order(session: AsyncSession, *, order_id: int) -> Order | None:
    """The order with its items and events, read afresh, or None."""
    return await session.scalar(
        select(Order)
        .where(Order.id == order_id)
        .options(selectinload(Order.items), selectinload(Order.events))
        .execution_options(populate_existing=True)
    )


async def list_orders(
    session: AsyncSession,
    *,
    buyer_id: int | None = None,
    shop_id: int | None = None,
    status: OrderStatus | None = None,
    limit: int = 20,
    offset: int = 0,
) -> tuple[Sequence[Order], int]:
    """A page of orders, newest first, and how many match in all."""
    query = select(Order)
    if buyer_id is not None:
        query = query.where(Order.buyer_id == buyer_id)
    if shop_id is not None:
        query = query.where(Order.shop_id == shop_id)
    if status is not None:
        query = query.where(Order.status == status)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    page = query.options(selectinload(Order.items), selectinload(Order.events))
    rows = await session.scalars(page.order_by(Order.id.desc()).limit(limit).offset(offset))
    return rows.all(), total or 0


async def latest_order(session: AsyncSession, *, buyer_id: int) -> Order | None:
    """The buyer's newest order, alone (its address is where the next one most likely goes)."""
    query = select(Order).where(Order.buyer_id == buyer_id).order_by(Order.id.desc()).limit(1)
    return await session.scalar(query)


async def cancel_order(
    writer: OrderWriter, gate: Gate, *, order: Order, actor: User, reason: str | None
) -> None:
    """Cancel an unpaid order and give its units back."""
    returned = await writer.run(
        stock.release,
        order_id=order.id,
        to=OrderStatus.CANCELLED,
        actor_id=actor.id,
        now=utcnow(),
        note=reason,
    )
    await gate.returned(returned)


RECEIPT_CONFIRMED = "The buyer confirmed receipt."


async def confirm_receipt(writer: OrderWriter, *, order: Order, actor: User) -> None:
    """The buyer has the goods: the order is completed (its after-sales window starts)."""
    if actor.id != order.buyer_id:
        raise Forbidden("Only the buyer confirms receipt.")
    await writer.run(
        stock.transition,
        order_id=order.id,
        allowed=(OrderStatus.SHIPPED, OrderStatus.DELIVERED),
        to=OrderStatus.COMPLETED,
        actor_id=actor.id,
        now=utcnow(),
        note=RECEIPT_CONFIRMED,
    )


@dataclass(frozen=True)
class Sales:
    """What offers have sold: orders paid and awaiting payment, units and takings."""

    paid_orders: int = 0
    paid_units: int = 0
    paid_cents: int = 0
    pending_orders: int = 0
    pending_units: int = 0


async def offer_sales(session: AsyncSession, *, offer_ids: Collection[int]) -> Sales:
    """The offers' sales, counted from their order lines (takings exclude shipping)."""
    if not offer_ids:
        return Sales()
    rows = await session.execute(
        select(
            Order.status,
            func.count(func.distinct(Order.id)),
            func.sum(OrderItem.quantity),
            func.sum(OrderItem.quantity * OrderItem.unit_price_cents),
        )
        .join(Order, Order.id == OrderItem.order_id)
        .where(OrderItem.offer_id.in_(offer_ids))
        .group_by(Order.status)
    )
    paid = pending = (0, 0, 0)
    for status, orders, units, cents in rows:
        if status in PAID_IN:
            paid = (paid[0] + orders, paid[1] + int(units), paid[2] + int(cents))
        elif status == OrderStatus.PENDING_PAYMENT:
            pending = (orders, int(units), int(cents))
    return Sales(
        paid_orders=paid[0], paid_units=paid[1], paid_cents=paid[2],
        pending_orders=pending[0], pending_units=pending[1],
    )  # fmt: skip


async def orders_of_offers(
    session: AsyncSession, *, offer_ids: Collection[int], limit: int
) -> Sequence[Order]:
    """The latest orders that took units of these offers, with their items."""
    if not offer_ids:
        return []
    taken = select(OrderItem.order_id).where(OrderItem.offer_id.in_(offer_ids))
    query = (
        select(Order)
        .where(Order.id.in_(taken))
        .options(selectinload(Order.items))
        .order_by(Order.id.desc())
        .limit(limit)
    )
    return (await session.scalars(query)).all()


# Shipping


async def shipping_rates(session: AsyncSession, *, shop: Shop) -> Sequence[ShippingRate]:
    """The shop's rates, the default (no region) first."""
    rows = await session.scalars(
        select(ShippingRate)
        .where(ShippingRate.shop_id == shop.id)
        .order_by(ShippingRate.region_code.is_not(None), ShippingRate.region_code)
    )
    return rows.all()


async def set_shipping_rates(
    session: AsyncSession, *, shop: Shop, data: schemas.ShippingRates
) -> Sequence[ShippingRate]:
    """Replace the shop's rates with these."""
    for i, rate in enumerate(data.rates):
        if rate.region_code is not None:
            await regions.get_or_404(session, code=rate.region_code, field=f"rates.{i}.region_code")
    await session.execute(delete(ShippingRate).where(ShippingRate.shop_id == shop.id))
    if data.rates:
        await session.execute(
            insert(ShippingRate),
            [{"shop_id": shop.id, **r.model_dump()} for r in data.rates],
        )
    await session.flush()
    return await shipping_rates(session, shop=shop)


# Background


async def sweep(writer: OrderWriter, gate: Gate) -> tuple[list[int], list[int]]:
    """Expire unpaid orders whose time is up, end offers no longer on sale (time up, product
    hidden, shop stopped), and cancel unpaid orders of shops that stopped selling; returns
    the ids of the orders expired and of the offers ended.

    Each order and each offer is a job of its own: on PostgreSQL one transaction that released
    many orders would hold many buyers' counters and offers at once, and deadlock with the
    orders being placed meanwhile. (The SQLite writer still commits them together.) Offers
    end before a stopped shop's orders are cancelled, so that their units go back to the
    SKUs, not to offers about to end.
    """
    now = utcnow()
    due = await writer.run(stock.due_orders, now=now)
    done = await asyncio.gather(*(writer.run(stock.expire, order_id=o, now=now) for o in due))
    await gate.returned([unit for units in done if units for unit in units])
    offers = await writer.run(stock.due_offers, now=now)
    await asyncio.gather(*(writer.run(stock.end_offer, offer_id=o, now=now) for o in offers))
    for offer_id in offers:
        await gate.ended(offer_id)
    stopped = await writer.run(stock.withdrawn_orders)
    cancelled = await asyncio.gather(
        *(writer.run(stock.cancel_withdrawn, order_id=o, now=now) for o in stopped)
    )
    await gate.returned([unit for units in cancelled if units for unit in units])
    return [o for o, units in zip(due, done, strict=True) if units is not None], offers


async def run_sweeper(writer: OrderWriter, gate: Gate, *, interval_seconds: float) -> None:
    """Sweep forever, every ``interval_seconds``; errors are logged, never fatal."""
    while True:
        try:
            expired, ended = await sweep(writer, gate)
            if expired or ended:
                log.info("expired %d orders, ended %d offers", len(expired), len(ended))
        except Exception:
            log.exception("order sweep failed")
        await asyncio.sleep(interval_seconds)
