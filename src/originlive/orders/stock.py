"""The rules that move units: open and end offers, place orders, release them. One copy of each.

Every function here takes a synchronous SQLAlchemy ``Connection`` inside a transaction and
decides with conditional updates, so the database is the judge whatever runs it: the embedded
order writer (SQLite, many jobs per commit) or ``AsyncConnection.run_sync`` on PostgreSQL
(one transaction per call, correct across processes). Nothing here commits. (New orders are
placed in batches by ``bulk.place_many``, which decides as ``place`` does; ``place`` is what
it falls back to, one order at a time.)

Units only ever move in one statement that checks what it takes from:
``remaining >= q`` for an offer, ``stock >= q`` for a SKU, and a per-buyer counter that may not
pass the offer's limit. A failed check raises before anything of the order is written; the
caller rolls the order's savepoint or transaction back.
"""

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pydantic_core
from sqlalchemy import Connection, insert, select, text, update
from sqlalchemy.orm import Session, selectinload

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
from originlive.errors import Conflict, InvalidInput, NotFound, OriginliveError
from originlive.orders import schemas
from originlive.orders.models import (
    FlashOffer,
    OfferPurchase,
    OfferStatus,
    Order,
    OrderEvent,
    OrderItem,
    OrderStatus,
)


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
        return hashlib.sha256(pydantic_core.to_json(body)).hexdigest()


@dataclass(frozen=True)
class Placed:
    """The order as the API shows it (``schemas.Order``'s fields), and whether it is a replay."""

    order: dict[str, Any]
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


def place(conn: Connection, cmd: PlaceOrder) -> Placed:
    """Reserve the units and record the order, or raise; a retry returns the first order.

    The hot path of a flash sale: raw SQL on the cursor (see ``rawsql``), about ten statements.
    """
    request_hash = cmd.request_hash
    replayed = _replay(conn, cmd, request_hash)
    if replayed is not None:
        return replayed

    now = rawsql.db_time(conn, cmd.now)
    priced = [_price(conn, line, now) for line in cmd.lines]
    shops = {p.shop_id for p in priced}
    currencies = {p.currency for p in priced}
    if len(shops) != 1 or len(currencies) != 1:
        raise InvalidInput("An order holds items of one shop, in one currency.", field="items")
    shop_id, currency = shops.pop(), currencies.pop()
    shipping = _shipping_fee(conn, shop_id=shop_id, region_code=cmd.address.region_code)

    items_cents = sum(p.unit_price_cents * p.line.quantity for p in priced)
    expires_at = cmd.now + cmd.ttl
    pending = OrderStatus.PENDING_PAYMENT.value
    # The key is claimed before any unit moves: a concurrent request with the same key (a
    # retry racing its first try, on another process) waits here for the first to commit,
    # then finds it and replays it, instead of failing on the unique key.
    row = rawsql.execute(
        conn,
        "INSERT INTO orders (buyer_id, shop_id, status, currency, items_cents, shipping_cents,"
        " total_cents, refunded_cents, ship_name, ship_phone, ship_region_code, ship_detail,"
        " idempotency_key, request_hash, created_at, expires_at, updated_at)"
        " VALUES (:buyer, :shop, :status, :currency, :items, :shipping, :total, 0, :name,"
        " :phone, :region, :detail, :key, :hash, :now, :expires, :now)"
        " ON CONFLICT (buyer_id, idempotency_key) DO NOTHING RETURNING id",
        buyer=cmd.buyer_id,
        shop=shop_id,
        status=pending,
        currency=currency,
        items=items_cents,
        shipping=shipping,
        total=items_cents + shipping,
        name=cmd.address.name,
        phone=cmd.address.phone,
        region=cmd.address.region_code,
        detail=cmd.address.detail,
        key=cmd.idempotency_key,
        hash=request_hash,
        now=now,
        expires=rawsql.db_time(conn, expires_at),
    ).fetchone()
    if row is None:  # the other request committed meanwhile (PostgreSQL): its answer
        replayed = _replay(conn, cmd, request_hash)
        assert replayed is not None
        return replayed
    order_id = row[0]

    # Rows are locked in one order by every rule (offers by id, then SKUs by id; a buyer's
    # counter just before its offer), so that two PostgreSQL transactions never deadlock.
    for p in sorted(priced, key=lock_order):
        _take(conn, p, buyer_id=cmd.buyer_id, now=now)

    items = []
    for p in priced:
        item_id = rawsql.execute(
            conn,
            "INSERT INTO order_items (order_id, sku_id, offer_id, title, unit_price_cents,"
            " quantity) VALUES (:order, :sku, :offer, :title, :price, :quantity) RETURNING id",
            order=order_id,
            sku=p.sku_id,
            offer=p.line.offer_id,
            title=p.title,
            price=p.unit_price_cents,
            quantity=p.line.quantity,
        ).fetchone()[0]
        items.append(item_view(item_id, p))
    event_id = rawsql.execute(
        conn,
        "INSERT INTO order_events (order_id, from_status, to_status, actor_id, created_at)"
        " VALUES (:order, NULL, :status, :actor, :now) RETURNING id",
        order=order_id,
        status=pending,
        actor=cmd.buyer_id,
        now=now,
    ).fetchone()[0]
    return fresh_order(
        cmd,
        order_id=order_id,
        shop_id=shop_id,
        currency=currency,
        items_cents=items_cents,
        shipping=shipping,
        items=items,
        event_id=event_id,
    )


def item_view(item_id: int, p: _Priced) -> dict[str, Any]:
    """A just-placed order's line as the API shows it (``schemas.OrderItem``'s fields)."""
    return {
        "id": item_id,
        "sku_id": p.sku_id,
        "offer_id": p.line.offer_id,
        "title": p.title,
        "unit_price_cents": p.unit_price_cents,
        "quantity": p.line.quantity,
    }


def fresh_order(
    cmd: PlaceOrder,
    *,
    order_id: int,
    shop_id: int,
    currency: str,
    items_cents: int,
    shipping: int,
    items: list[dict[str, Any]],
    event_id: int,
) -> Placed:
    """A just-placed order as the API shows it (``schemas.Order``'s fields), without reading
    it back: on the hot path that would cost as much as placing it."""
    pending = OrderStatus.PENDING_PAYMENT.value
    view = {
        "id": order_id,
        "status": pending,
        "buyer_id": cmd.buyer_id,
        "shop_id": shop_id,
        "currency": currency,
        "items_cents": items_cents,
        "shipping_cents": shipping,
        "total_cents": items_cents + shipping,
        "refunded_cents": 0,
        "address": {
            "name": cmd.address.name,
            "phone": cmd.address.phone,
            "region_code": cmd.address.region_code,
            "detail": cmd.address.detail,
        },
        "items": items,
        "events": [
            {
                "id": event_id,
                "from_status": None,
                "to_status": pending,
                "actor_id": cmd.buyer_id,
                "note": None,
                "created_at": cmd.now,
            }
        ],
        "created_at": cmd.now,
        "expires_at": cmd.now + cmd.ttl,
        "updated_at": cmd.now,
    }
    return Placed(order=view, replayed=False)


def _replay(conn: Connection, cmd: PlaceOrder, request_hash: str) -> Placed | None:
    """The first order placed with this key, if any (or raise: the key came with another)."""
    existing = rawsql.execute(
        conn,
        "SELECT id, request_hash FROM orders WHERE buyer_id = :buyer AND idempotency_key = :key",
        buyer=cmd.buyer_id,
        key=cmd.idempotency_key,
    ).fetchone()
    if existing is None:
        return None
    return replay_of(conn, order_id=existing[0], same_request=existing[1] == request_hash)


def replay_of(conn: Connection, *, order_id: int, same_request: bool) -> Placed:
    """The first order placed with a key, answered again; raise if this request differs."""
    if not same_request:
        raise IdempotencyMismatch(
            "This Idempotency-Key was used for a different order; use a new key."
        )
    return Placed(order=order_view(conn, order_id=order_id), replayed=True)


def order_view(conn: Connection, *, order_id: int) -> dict[str, Any]:
    """The order as the API shows it, read through the ORM; off the hot path (replays)."""
    with Session(bind=conn) as session:  # joins the caller's transaction, never ends it
        order = session.scalars(
            select(Order)
            .where(Order.id == order_id)
            .options(selectinload(Order.items), selectinload(Order.events))
        ).one()
        return schemas.Order.model_validate(order).model_dump()


def lock_order(p: _Priced) -> tuple[bool, int, int]:
    """Offers by id, then SKUs by id: the order in which every rule takes its row locks."""
    return (p.line.offer_id is None, p.line.offer_id or 0, p.sku_id)


def _price(conn: Connection, line: Line, now: Any) -> _Priced:
    if line.offer_id is not None:
        offer = rawsql.execute(
            conn,
            "SELECT sku_id, shop_id, title, price_cents, currency, per_buyer_limit,"
            f" {OFFER_ON_SALE} FROM flash_offers WHERE id = :offer",
            **sale_params(now),
            offer=line.offer_id,
        ).fetchone()
        if offer is None:
            raise InvalidInput(f"No offer {line.offer_id}.", field="items")
        sku_id, shop_id, title, price, currency, limit, is_open = offer
        if not is_open:
            raise OfferEnded(f"Offer {line.offer_id} has ended.")
        if line.quantity > limit:
            raise OverLimit(f"At most {limit} per buyer.")
        return _Priced(line, sku_id, shop_id, title, price, currency, limit)
    sku = rawsql.execute(
        conn,
        "SELECT skus.name, skus.price_cents, skus.currency, products.title, products.shop_id"
        " FROM skus JOIN products ON products.id = skus.product_id"
        " JOIN shops ON shops.id = products.shop_id"
        f" WHERE skus.id = :sku AND {SKU_ON_SALE}",
        sku=line.sku_id,
        **sale_params(now),
    ).fetchone()
    if sku is None:
        raise InvalidInput(f"No SKU {line.sku_id} on sale.", field="items")
    assert line.sku_id is not None
    name, price, currency, title, shop_id = sku
    return _Priced(line, line.sku_id, shop_id, f"{title} {name}", price, currency, None)


def _take(conn: Connection, p: _Priced, *, buyer_id: int, now: Any) -> None:
    q = p.line.quantity
    if p.line.offer_id is None:
        taken = rawsql.execute(
            conn,
            "UPDATE skus SET stock = stock - :q WHERE id = :sku AND stock >= :q",
            q=q,
            sku=p.sku_id,
        )
        if taken.rowcount != 1:
            raise SoldOut(f"Not enough of {p.title} in stock.")
        return
    # The buyer's counter first: a greedy buyer is refused without touching the hot offer row.
    counted = rawsql.execute(
        conn,
        "INSERT INTO offer_purchases (offer_id, buyer_id, quantity) VALUES (:offer, :buyer, :q)"
        " ON CONFLICT (offer_id, buyer_id) DO UPDATE"
        " SET quantity = offer_purchases.quantity + excluded.quantity"
        " WHERE offer_purchases.quantity + excluded.quantity <= :limit",
        offer=p.line.offer_id,
        buyer=buyer_id,
        q=q,
        limit=p.per_buyer_limit,
    )
    if counted.rowcount != 1:
        raise OverLimit(f"At most {p.per_buyer_limit} of this offer per buyer.")
    taken = rawsql.execute(
        conn,
        "UPDATE flash_offers SET remaining = remaining - :q WHERE id = :offer"
        f" AND {OFFER_ON_SALE} AND remaining >= :q",
        q=q,
        offer=p.line.offer_id,
        **sale_params(now),
    )
    if taken.rowcount != 1:
        raise SoldOut(f"{p.title} is sold out.")


def _shipping_fee(conn: Connection, *, shop_id: int, region_code: str) -> int:
    row = rawsql.execute(
        conn, "SELECT path FROM regions WHERE code = :code", code=region_code
    ).fetchone()
    if row is None:
        raise unknown_region(region_code)
    rates = rawsql.execute(
        conn,
        "SELECT region_code, fee_cents FROM shipping_rates WHERE shop_id = :shop",
        shop=shop_id,
    ).fetchall()
    return shipping_fee(row[0], rates)


def unknown_region(region_code: str) -> InvalidInput:
    return InvalidInput(f"Unknown region code {region_code!r}.", field="address.region_code")


def shipping_fee(path: str, rates: Sequence[tuple[str | None, int]]) -> int:
    """The fee to the region at ``path`` by the shop's rates: the deepest matching region's,
    else the default (region None), else free."""
    depth = {code: i for i, code in enumerate(c for c in path.split("/") if c)}
    matching = [
        (-1 if code is None else depth[code], fee)
        for code, fee in rates
        if code is None or code in depth
    ]
    return int(max(matching)[1]) if matching else 0


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
