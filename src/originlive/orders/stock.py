"""The rules that move units besides placing orders: open and end offers, release orders, and
what may be sold. One copy of each. (Placing is ``placing``'s rule, run by ``bulk``.)

Every function here takes a synchronous SQLAlchemy ``Connection`` inside a transaction and
decides with conditional updates, so the database is the judge whatever runs it: the embedded
order writer (SQLite, many jobs per commit) or ``AsyncConnection.run_sync`` on PostgreSQL
(one transaction per call, correct across processes). Nothing here commits.

Units only ever move in one statement that checks what it takes from (``stock >= q`` when an
offer opens) or locks the rows it moves in the order every rule locks them: offers by id
(each before its buyers' counts), then SKUs by id.
"""

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, text, update

from originlive import rawsql
from originlive.catalog.models import (
    Product,
    ProductStatus,
    Shop,
    ShopStatus,
    Sku,
    product_on_sale,
)
from originlive.db import utcnow
from originlive.errors import Conflict, NotFound
from originlive.orders.models import (
    FlashOffer,
    OfferPurchase,
    OfferStatus,
    Order,
    OrderEvent,
    OrderItem,
    OrderStatus,
)
from originlive.orders.placing import Attribution, attributed


class WrongState(Conflict):
    """The order is not in a state that allows the change."""


@dataclass(frozen=True)
class Returned:
    """Units of a released order that went back to an offer still on sale (for the gate)."""

    offer_id: int
    buyer_id: int
    quantity: int


@dataclass(frozen=True)
class OfferState:
    """What the Redis gate needs of an offer, read from the database (``gate_state``)."""

    offer_id: int
    remaining: int
    per_buyer_limit: int
    ends_at: datetime | None
    active: bool
    held: dict[int, int]  # buyer id -> units in live orders (the per-buyer counter)
    keys: list[tuple[int, str]]  # (buyer id, Idempotency-Key) of every order with the offer


# What may be sold: one rule, in Python and as SQL


def on_sale(
    *,
    offer_status: OfferStatus | None,
    ends_at: datetime | None,
    product_status: ProductStatus,
    shop_status: ShopStatus,
    now: datetime,
) -> bool:
    """Whether units may be sold now: of an approved shop's product on sale, and for an offer
    (``offer_status`` not None) one still open. Every path that sells asks this rule, in this
    form or as ``OFFER_ON_SALE`` / ``SKU_ON_SALE`` (tested to answer alike)."""
    if not product_on_sale(product_status, shop_status):
        return False
    if offer_status is None:
        return True
    return offer_status == OfferStatus.ACTIVE and (ends_at is None or ends_at > now)


# ``on_sale`` for a plain SKU's line (``catalog.models.product_on_sale``), over ``products``
# and ``shops`` joined to the SKU.
SKU_ON_SALE = "products.status = :on_sale AND shops.status = :approved"
# ``on_sale`` for a row of ``flash_offers``, usable in a SELECT's columns, a WHERE and an
# UPDATE's condition: the offer open, and its SKU's product and shop on sale.
OFFER_ON_SALE = (
    "(flash_offers.status = :active"
    " AND (flash_offers.ends_at IS NULL OR flash_offers.ends_at > :now)"
    " AND EXISTS (SELECT 1 FROM skus JOIN products ON products.id = skus.product_id"
    " JOIN shops ON shops.id = products.shop_id WHERE skus.id = flash_offers.sku_id"
    f" AND {SKU_ON_SALE}))"
)


def sale_params(now: Any) -> dict[str, Any]:
    """The parameters of ``OFFER_ON_SALE`` and ``SKU_ON_SALE`` (``now`` as the column stores it)."""
    return {
        "active": OfferStatus.ACTIVE.value,
        "now": now,
        "on_sale": ProductStatus.ACTIVE.value,
        "approved": ShopStatus.APPROVED.value,
    }


# Offers


def open_offer(
    conn: Connection,
    *,
    sku_id: int,
    price_cents: int,
    quantity: int,
    per_buyer_limit: int,
    ends_at: datetime | None,
    sold_by: Attribution | None,
    now: datetime,
) -> int:
    """Move ``quantity`` units from the SKU's stock into a new offer, sold by ``sold_by`` (in
    a live session, by its anchor); returns its id."""
    row = conn.execute(
        select(Sku.name, Sku.currency, Product.title, Product.shop_id)
        .join(Product, Product.id == Sku.product_id)
        .where(Sku.id == sku_id)
    ).one()
    taken = conn.execute(
        update(Sku)
        .where(Sku.id == sku_id, Sku.stock >= quantity)
        .values(stock=Sku.stock - quantity)
    )
    if taken.rowcount != 1:
        raise Conflict(f"SKU {sku_id} has fewer than {quantity} units in stock.")
    return int(
        conn.execute(
            insert(FlashOffer)
            .values(
                shop_id=row.shop_id,
                sku_id=sku_id,
                **attributed(sold_by),
                title=f"{row.title} {row.name}",
                price_cents=price_cents,
                currency=row.currency,
                quantity=quantity,
                remaining=quantity,
                per_buyer_limit=per_buyer_limit,
                status=OfferStatus.ACTIVE,
                ends_at=ends_at,
                created_at=now,
            )
            .returning(FlashOffer.id)
        ).scalar_one()
    )


def end_offer(conn: Connection, *, offer_id: int, now: datetime) -> int:
    """End an active offer and give what remains back to the SKU; returns the units given back.

    Exactly once: only the call that finds the offer active moves its units. Orders released
    later give their units to the SKU directly (see ``_give_back``).
    """
    # FOR UPDATE (PostgreSQL): no order may take units between this read and the update.
    row = conn.execute(
        select(FlashOffer.sku_id, FlashOffer.remaining)
        .where(FlashOffer.id == offer_id, FlashOffer.status == OfferStatus.ACTIVE)
        .with_for_update()
    ).first()
    if row is None:
        return 0
    conn.execute(
        update(FlashOffer)
        .where(FlashOffer.id == offer_id)
        .values(status=OfferStatus.ENDED, ended_at=now, remaining=0)
    )
    conn.execute(update(Sku).where(Sku.id == row.sku_id).values(stock=Sku.stock + row.remaining))
    return int(row.remaining)


def due_offers(conn: Connection, *, now: datetime) -> list[int]:
    """Active offers no longer on sale: their time is up, or their product or shop stopped
    selling (hidden, rejected)."""
    return [
        row[0]
        for row in rawsql.execute(
            conn,
            f"SELECT id FROM flash_offers WHERE status = :active AND NOT {OFFER_ON_SALE}"
            " ORDER BY id",
            **sale_params(rawsql.db_time(conn, now)),
        ).fetchall()
    ]


def end_due_offers(conn: Connection, *, now: datetime) -> list[int]:
    """End every active offer no longer on sale, in this one transaction; returns their ids."""
    ended = due_offers(conn, now=now)
    for offer_id in ended:
        end_offer(conn, offer_id=offer_id, now=now)
    return ended


# Orders


def _event(
    conn: Connection,
    order_id: int,
    from_status: OrderStatus | None,
    to_status: OrderStatus,
    *,
    actor_id: int | None,
    now: datetime,
    note: str | None = None,
) -> None:
    conn.execute(
        insert(OrderEvent).values(
            order_id=order_id,
            from_status=from_status,
            to_status=to_status,
            actor_id=actor_id,
            note=note,
            created_at=now,
        )
    )


def transition(
    conn: Connection,
    *,
    order_id: int,
    allowed: Sequence[OrderStatus],
    to: OrderStatus,
    actor_id: int | None,
    now: datetime,
    note: str | None = None,
) -> OrderStatus:
    """Move the order to ``to`` if it is in one of ``allowed``, with its event; returns the old.

    The update checks the state it moves from, so two concurrent changes cannot both apply.
    """
    current = conn.execute(select(Order.status).where(Order.id == order_id)).scalar()
    if current is None:
        raise NotFound(f"No order {order_id}.")
    if current not in allowed:
        raise WrongState(f"Order {order_id} is {current.value}; it cannot become {to.value}.")
    moved = conn.execute(
        update(Order)
        .where(Order.id == order_id, Order.status == current)
        .values(status=to, updated_at=now)
    )
    if moved.rowcount != 1:  # changed under us (another process): nothing applied
        raise WrongState(f"Order {order_id} changed meanwhile; try again.")
    _event(conn, order_id, current, to, actor_id=actor_id, now=now, note=note)
    return current


def release(
    conn: Connection,
    *,
    order_id: int,
    to: OrderStatus,
    actor_id: int | None,
    now: datetime,
    note: str | None = None,
) -> list[Returned]:
    """Cancel or expire an unpaid order and give its units back, exactly once (invariant 3).

    Returns the units that went back to offers still on sale (the rest went to their SKUs).
    """
    transition(
        conn,
        order_id=order_id,
        allowed=(OrderStatus.PENDING_PAYMENT,),
        to=to,
        actor_id=actor_id,
        now=now,
        note=note,
    )
    buyer_id = conn.execute(select(Order.buyer_id).where(Order.id == order_id)).scalar_one()
    items = conn.execute(
        select(OrderItem.sku_id, OrderItem.offer_id, OrderItem.quantity).where(
            OrderItem.order_id == order_id
        )
    ).all()
    # Locks in the order every rule takes them: offers by id (each offer before its buyers'
    # counters), then SKUs by id, so that no PostgreSQL transaction waits on another in a cycle.
    returned, to_skus = [], dict.fromkeys(sorted({item.sku_id for item in items}), 0)
    for item in sorted(items, key=lambda i: (i.offer_id is None, i.offer_id or 0)):
        if item.offer_id is not None and _give_back(
            conn, item.offer_id, item.quantity, buyer_id=buyer_id
        ):
            returned.append(Returned(item.offer_id, buyer_id, item.quantity))
        else:
            to_skus[item.sku_id] += item.quantity
    for sku_id, quantity in to_skus.items():
        if quantity:
            conn.execute(update(Sku).where(Sku.id == sku_id).values(stock=Sku.stock + quantity))
    return returned


def _give_back(conn: Connection, offer_id: int, quantity: int, *, buyer_id: int) -> bool:
    """Give an offer line's units back to the offer while it is on (True); once it has ended
    they go to the SKU they came from (False: the caller does that)."""
    back = conn.execute(
        update(FlashOffer)
        .where(FlashOffer.id == offer_id, FlashOffer.status == OfferStatus.ACTIVE)
        .values(remaining=FlashOffer.remaining + quantity)
    )
    conn.execute(
        update(OfferPurchase)
        .where(OfferPurchase.offer_id == offer_id, OfferPurchase.buyer_id == buyer_id)
        .values(quantity=OfferPurchase.quantity - quantity)
    )
    return back.rowcount == 1


def due_orders(conn: Connection, *, now: datetime, limit: int = 500) -> list[int]:
    """Unpaid orders whose time is up, oldest first."""
    return list(
        conn.execute(
            select(Order.id)
            .where(Order.status == OrderStatus.PENDING_PAYMENT, Order.expires_at <= now)
            .order_by(Order.expires_at)
            .limit(limit)
        ).scalars()
    )


def expire(conn: Connection, *, order_id: int, now: datetime) -> list[Returned] | None:
    """Expire one unpaid order and give its units back (see ``release``); None if it was paid
    or cancelled meanwhile."""
    return _release_unpaid(conn, order_id=order_id, to=OrderStatus.EXPIRED, now=now)


SHOP_STOPPED = "The shop no longer sells here."


def withdrawn_orders(conn: Connection, *, limit: int = 500) -> list[int]:
    """Unpaid orders of shops that no longer sell (rejected or stopped since the order)."""
    return list(
        conn.execute(
            select(Order.id)
            .join(Shop, Shop.id == Order.shop_id)
            .where(Order.status == OrderStatus.PENDING_PAYMENT, Shop.status != ShopStatus.APPROVED)
            .order_by(Order.id)
            .limit(limit)
        ).scalars()
    )


def cancel_withdrawn(conn: Connection, *, order_id: int, now: datetime) -> list[Returned] | None:
    """Cancel one unpaid order of a shop that stopped selling, its units back (a payment that
    comes later is refunded); None if it was paid or released meanwhile."""
    return _release_unpaid(
        conn, order_id=order_id, to=OrderStatus.CANCELLED, now=now, note=SHOP_STOPPED
    )


def _release_unpaid(
    conn: Connection, *, order_id: int, to: OrderStatus, now: datetime, note: str | None = None
) -> list[Returned] | None:
    try:
        with conn.begin_nested():
            return release(conn, order_id=order_id, to=to, actor_id=None, now=now, note=note)
    except WrongState:
        return None


def expire_due(conn: Connection, *, now: datetime, limit: int = 500) -> list[int]:
    """Expire every due order in this one transaction (see ``service.sweep`` for why the
    sweeper instead gives each order a job of its own)."""
    due = due_orders(conn, now=now, limit=limit)
    return [o for o in due if expire(conn, order_id=o, now=now) is not None]


def gate_state(conn: Connection, *, offer_id: int) -> OfferState | None:
    """The offer as the Redis gate loads it, or None if there is no such offer."""
    found = _gate_states(conn, offer_ids=[offer_id], held={})
    if not found:
        return None
    held = conn.execute(
        select(OfferPurchase.buyer_id, OfferPurchase.quantity).where(
            OfferPurchase.offer_id == offer_id, OfferPurchase.quantity > 0
        )
    ).all()
    keys = conn.execute(
        select(Order.buyer_id, Order.idempotency_key)
        .join(OrderItem, OrderItem.order_id == Order.id)
        .where(OrderItem.offer_id == offer_id)
        .distinct()
    ).all()
    return dataclasses.replace(
        found[0], held={b: q for b, q in held}, keys=[(b, k) for b, k in keys]
    )


def gate_states(conn: Connection, *, offer_ids: Sequence[int], since: datetime) -> list[OfferState]:
    """Remaining units, end and status of these offers, and the counters of the buyers whose
    orders of them were cancelled or expired since ``since`` (in ``held``): for reconciling."""
    released = conn.execute(
        select(OrderItem.offer_id, Order.buyer_id, OfferPurchase.quantity)
        .join(Order, Order.id == OrderItem.order_id)
        .outerjoin(
            OfferPurchase,
            (OfferPurchase.offer_id == OrderItem.offer_id)
            & (OfferPurchase.buyer_id == Order.buyer_id),
        )
        .where(
            OrderItem.offer_id.in_(offer_ids),
            Order.status.in_((OrderStatus.CANCELLED, OrderStatus.EXPIRED)),
            Order.updated_at > since,
        )
        .distinct()
    ).all()
    held: dict[int, dict[int, int]] = {}
    for offer_id, buyer_id, quantity in released:
        if offer_id is not None:
            held.setdefault(offer_id, {})[buyer_id] = quantity or 0
    return _gate_states(conn, offer_ids=offer_ids, held=held)


def _gate_states(
    conn: Connection, *, offer_ids: Sequence[int], held: dict[int, dict[int, int]]
) -> list[OfferState]:
    """The offers' units, limit, end and whether they are on sale, with these buyers' counts
    (no keys)."""
    on_sale = text(OFFER_ON_SALE).bindparams(**sale_params(rawsql.db_time(conn, utcnow())))
    rows = conn.execute(
        select(
            FlashOffer.id,
            FlashOffer.remaining,
            FlashOffer.per_buyer_limit,
            FlashOffer.ends_at,
            on_sale,
        ).where(FlashOffer.id.in_(offer_ids))
    ).all()
    return [OfferState(r[0], r[1], r[2], r[3], bool(r[4]), held.get(r[0], {}), []) for r in rows]
