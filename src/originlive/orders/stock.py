"""The rules that move units: open and end offers, place orders, release them. One copy of each.

Every function here takes a synchronous SQLAlchemy ``Connection`` inside a transaction and
decides with conditional updates, so the database is the judge whatever runs it: the embedded
single writer thread (SQLite, many orders per commit) or ``AsyncConnection.run_sync`` on
PostgreSQL (one transaction per call, correct across processes). Nothing here commits.

Units only ever move in one statement that checks what it takes from:
``remaining >= q`` for an offer, ``stock >= q`` for a SKU, and a per-buyer counter that may not
pass the offer's limit. A failed check raises before anything of the order is written; the
caller rolls the order's savepoint or transaction back.
"""

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from originlive.catalog.models import Product, ProductStatus, Shop, ShopStatus, Sku
from originlive.errors import Conflict, InvalidInput, NotFound, OriginliveError
from originlive.orders.models import (
    FlashOffer,
    OfferPurchase,
    OfferStatus,
    Order,
    OrderEvent,
    OrderItem,
    OrderStatus,
    ShippingRate,
)
from originlive.regions.models import Region

MAX_LINES = 20


class SoldOut(OriginliveError):
    status = 409
    title = "Sold out"
    slug = "sold-out"


class OverLimit(OriginliveError):
    status = 409
    title = "Over the buyer's limit"
    slug = "over-limit"


class OfferEnded(OriginliveError):
    status = 409
    title = "Offer ended"
    slug = "offer-ended"


class IdempotencyMismatch(OriginliveError):
    status = 422
    title = "Idempotency key reused"
    slug = "idempotency-key-reused"


class WrongState(Conflict):
    """The order is not in a state that allows the change."""


@dataclass(frozen=True)
class Line:
    """One requested line: an offer or a plain SKU, and how many."""

    offer_id: int | None
    sku_id: int | None
    quantity: int


@dataclass(frozen=True)
class Address:
    name: str
    phone: str
    region_code: str
    detail: str


@dataclass(frozen=True)
class PlaceOrder:
    """Everything an order needs, checked for shape by the API already."""

    buyer_id: int
    idempotency_key: str
    lines: tuple[Line, ...]
    address: Address
    now: datetime
    ttl: timedelta

    @property
    def request_hash(self) -> str:
        """SHA-256 of the request's content, to tell a retry from a reuse of the key."""
        body = {
            "lines": [[ln.offer_id, ln.sku_id, ln.quantity] for ln in self.lines],
            "address": [
                self.address.name,
                self.address.phone,
                self.address.region_code,
                self.address.detail,
            ],
        }
        return hashlib.sha256(json.dumps(body, ensure_ascii=False).encode()).hexdigest()


@dataclass(frozen=True)
class Placed:
    order_id: int
    replayed: bool


@dataclass(frozen=True)
class _Priced:
    line: Line
    sku_id: int
    shop_id: int
    title: str
    unit_price_cents: int
    currency: str
    per_buyer_limit: int | None


def _upsert(conn: Connection) -> Any:
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert


# Offers


def open_offer(
    conn: Connection,
    *,
    sku_id: int,
    price_cents: int,
    quantity: int,
    per_buyer_limit: int,
    ends_at: datetime | None,
    live_session_id: int | None,
    now: datetime,
) -> int:
    """Move ``quantity`` units from the SKU's stock into a new offer; returns its id."""
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
                live_session_id=live_session_id,
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


def end_due_offers(conn: Connection, *, now: datetime) -> list[int]:
    """End every active offer whose time is up; returns their ids."""
    due = conn.execute(
        select(FlashOffer.id).where(
            FlashOffer.status == OfferStatus.ACTIVE, FlashOffer.ends_at <= now
        )
    ).scalars()
    ended = list(due)
    for offer_id in ended:
        end_offer(conn, offer_id=offer_id, now=now)
    return ended


# Orders


def place(conn: Connection, cmd: PlaceOrder) -> Placed:
    """Reserve the units and record the order, or raise; a retry returns the first order."""
    request_hash = cmd.request_hash
    existing = conn.execute(
        select(Order.id, Order.request_hash).where(
            Order.buyer_id == cmd.buyer_id, Order.idempotency_key == cmd.idempotency_key
        )
    ).first()
    if existing is not None:
        if existing.request_hash != request_hash:
            raise IdempotencyMismatch(
                "This Idempotency-Key was used for a different order; use a new key."
            )
        return Placed(order_id=existing.id, replayed=True)

    priced = [_price(conn, line, cmd.now) for line in cmd.lines]
    shops = {p.shop_id for p in priced}
    currencies = {p.currency for p in priced}
    if len(shops) != 1 or len(currencies) != 1:
        raise InvalidInput("An order holds items of one shop, in one currency.", field="items")
    shop_id, currency = shops.pop(), currencies.pop()
    shipping = _shipping_fee(conn, shop_id=shop_id, region_code=cmd.address.region_code)

    for p in priced:
        _take(conn, p, buyer_id=cmd.buyer_id)

    items_cents = sum(p.unit_price_cents * p.line.quantity for p in priced)
    order_id = conn.execute(
        insert(Order)
        .values(
            buyer_id=cmd.buyer_id,
            shop_id=shop_id,
            status=OrderStatus.PENDING_PAYMENT,
            currency=currency,
            items_cents=items_cents,
            shipping_cents=shipping,
            total_cents=items_cents + shipping,
            refunded_cents=0,
            ship_name=cmd.address.name,
            ship_phone=cmd.address.phone,
            ship_region_code=cmd.address.region_code,
            ship_detail=cmd.address.detail,
            idempotency_key=cmd.idempotency_key,
            request_hash=request_hash,
            created_at=cmd.now,
            expires_at=cmd.now + cmd.ttl,
            updated_at=cmd.now,
        )
        .returning(Order.id)
    ).scalar_one()
    conn.execute(
        insert(OrderItem),
        [
            {
                "order_id": order_id,
                "sku_id": p.sku_id,
                "offer_id": p.line.offer_id,
                "title": p.title,
                "unit_price_cents": p.unit_price_cents,
                "quantity": p.line.quantity,
            }
            for p in priced
        ],
    )
    _event(conn, order_id, None, OrderStatus.PENDING_PAYMENT, actor_id=cmd.buyer_id, now=cmd.now)
    return Placed(order_id=order_id, replayed=False)


def _price(conn: Connection, line: Line, now: datetime) -> _Priced:
    if line.offer_id is not None:
        offer = conn.execute(
            select(
                FlashOffer.sku_id,
                FlashOffer.shop_id,
                FlashOffer.title,
                FlashOffer.price_cents,
                FlashOffer.currency,
                FlashOffer.status,
                FlashOffer.ends_at,
                FlashOffer.per_buyer_limit,
            ).where(FlashOffer.id == line.offer_id)
        ).first()
        if offer is None:
            raise InvalidInput(f"No offer {line.offer_id}.", field="items")
        if offer.status != OfferStatus.ACTIVE or (offer.ends_at and offer.ends_at <= now):
            raise OfferEnded(f"Offer {line.offer_id} has ended.")
        if line.quantity > offer.per_buyer_limit:
            raise OverLimit(f"At most {offer.per_buyer_limit} per buyer.")
        return _Priced(
            line,
            offer.sku_id,
            offer.shop_id,
            offer.title,
            offer.price_cents,
            offer.currency,
            offer.per_buyer_limit,
        )
    sku = conn.execute(
        select(Sku.name, Sku.price_cents, Sku.currency, Product.title, Product.shop_id)
        .join(Product, Product.id == Sku.product_id)
        .join(Shop, Shop.id == Product.shop_id)
        .where(
            Sku.id == line.sku_id,
            Product.status == ProductStatus.ACTIVE,
            Shop.status == ShopStatus.APPROVED,
        )
    ).first()
    if sku is None:
        raise InvalidInput(f"No SKU {line.sku_id} on sale.", field="items")
    assert line.sku_id is not None
    return _Priced(
        line,
        line.sku_id,
        sku.shop_id,
        f"{sku.title} {sku.name}",
        sku.price_cents,
        sku.currency,
        None,
    )


def _take(conn: Connection, p: _Priced, *, buyer_id: int) -> None:
    q = p.line.quantity
    if p.line.offer_id is None:
        taken = conn.execute(
            update(Sku).where(Sku.id == p.sku_id, Sku.stock >= q).values(stock=Sku.stock - q)
        )
        if taken.rowcount != 1:
            raise SoldOut(f"Not enough of {p.title} in stock.")
        return
    # The buyer's counter first: a greedy buyer is refused without touching the hot offer row.
    insert_ = _upsert(conn)(OfferPurchase).values(
        offer_id=p.line.offer_id, buyer_id=buyer_id, quantity=q
    )
    counted = conn.execute(
        insert_.on_conflict_do_update(
            index_elements=[OfferPurchase.offer_id, OfferPurchase.buyer_id],
            set_={"quantity": OfferPurchase.quantity + insert_.excluded.quantity},
            where=OfferPurchase.quantity + insert_.excluded.quantity <= p.per_buyer_limit,
        )
    )
    if counted.rowcount != 1:
        raise OverLimit(f"At most {p.per_buyer_limit} of this offer per buyer.")
    taken = conn.execute(
        update(FlashOffer)
        .where(
            FlashOffer.id == p.line.offer_id,
            FlashOffer.status == OfferStatus.ACTIVE,
            FlashOffer.remaining >= q,
        )
        .values(remaining=FlashOffer.remaining - q)
    )
    if taken.rowcount != 1:
        raise SoldOut(f"{p.title} is sold out.")


def _shipping_fee(conn: Connection, *, shop_id: int, region_code: str) -> int:
    path = conn.execute(select(Region.path).where(Region.code == region_code)).scalar()
    if path is None:
        raise InvalidInput(f"Unknown region code {region_code!r}.", field="address.region_code")
    codes = [c for c in path.split("/") if c]
    rates = conn.execute(
        select(ShippingRate.region_code, ShippingRate.fee_cents).where(
            ShippingRate.shop_id == shop_id,
            or_(ShippingRate.region_code.in_(codes), ShippingRate.region_code.is_(None)),
        )
    ).all()
    depth = {code: i for i, code in enumerate(codes)}
    best = max(rates, key=lambda r: depth.get(r.region_code, -1), default=None)
    return int(best.fee_cents) if best else 0


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
) -> None:
    """Cancel or expire an unpaid order and give its units back, exactly once (invariant 3)."""
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
    for item in items:
        _give_back(conn, item.sku_id, item.offer_id, item.quantity, buyer_id=buyer_id)


def _give_back(
    conn: Connection, sku_id: int, offer_id: int | None, quantity: int, *, buyer_id: int
) -> None:
    if offer_id is not None:
        conn.execute(
            update(OfferPurchase)
            .where(OfferPurchase.offer_id == offer_id, OfferPurchase.buyer_id == buyer_id)
            .values(quantity=OfferPurchase.quantity - quantity)
        )
        # Back to the offer while it is on; once it has ended, to the SKU it came from.
        back = conn.execute(
            update(FlashOffer)
            .where(FlashOffer.id == offer_id, FlashOffer.status == OfferStatus.ACTIVE)
            .values(remaining=FlashOffer.remaining + quantity)
        )
        if back.rowcount == 1:
            return
    conn.execute(update(Sku).where(Sku.id == sku_id).values(stock=Sku.stock + quantity))


def expire_due(conn: Connection, *, now: datetime, limit: int = 500) -> list[int]:
    """Expire unpaid orders whose time is up, oldest first; returns their ids."""
    due = conn.execute(
        select(Order.id)
        .where(Order.status == OrderStatus.PENDING_PAYMENT, Order.expires_at <= now)
        .order_by(Order.expires_at)
        .limit(limit)
    ).scalars()
    expired = []
    for order_id in list(due):
        try:
            with conn.begin_nested():
                release(conn, order_id=order_id, to=OrderStatus.EXPIRED, actor_id=None, now=now)
            expired.append(order_id)
        except WrongState:  # paid or cancelled meanwhile
            continue
    return expired
