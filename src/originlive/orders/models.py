"""Tables of flash offers, orders, their items and their history."""

import enum
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from originlive.db import Base, UTCDateTime, text_enum, utcnow


class OfferStatus(enum.StrEnum):
    ACTIVE = "active"
    ENDED = "ended"


class OrderStatus(enum.StrEnum):
    PENDING_PAYMENT = "pending_payment"
    PAID = "paid"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    REFUND_REQUESTED = "refund_requested"
    REFUNDED = "refunded"


# The states in which an order still holds the units it took.
HOLDING = frozenset(OrderStatus) - {OrderStatus.CANCELLED, OrderStatus.EXPIRED}
# The states of an order whose money came in and has not all gone back: what a shop counts as
# sold, and what may be refunded.
PAID_IN = (
    OrderStatus.PAID,
    OrderStatus.SHIPPED,
    OrderStatus.DELIVERED,
    OrderStatus.COMPLETED,
    OrderStatus.REFUND_REQUESTED,
)


class FlashOffer(Base):
    """Units of one SKU put on sale at an offer price, for a time, with a per-buyer limit.

    The units leave the SKU's stock when the offer opens (``quantity``) and ``remaining`` counts
    down as orders take them. Units of released orders come back here while the offer is
    active; when it ends, whatever remains goes back to the SKU.
    """

    __tablename__ = "flash_offers"
    __table_args__ = (
        # Never oversell: no update may take the offer below zero or above what was put on sale.
        CheckConstraint("remaining >= 0", name="remaining_not_negative"),
        CheckConstraint("remaining <= quantity", name="remaining_within_quantity"),
        CheckConstraint("per_buyer_limit >= 1", name="limit_positive"),
        CheckConstraint("commission_bp BETWEEN 0 AND 10000", name="commission_within_whole"),
        Index("ix_flash_offers_shop_id", "shop_id"),
        Index("ix_flash_offers_status_ends_at", "status", "ends_at"),
        Index("ix_flash_offers_live_session_id", "live_session_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"))
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id"))
    # The live session that pins it, once live sessions exist; None for an offer on its own.
    live_session_id: Mapped[int | None] = mapped_column(Integer)
    # Who sells it: the session's anchor, and when the anchor sells another shop's goods, the
    # commission plan (``affiliates``; a plain column, as orders know nothing of plans) and
    # its rate in basis points. Each order line copies them as they are when it is placed.
    anchor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    plan_id: Mapped[int | None] = mapped_column(Integer)
    commission_bp: Mapped[int | None]
    title: Mapped[str] = mapped_column(String(200))
    price_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    quantity: Mapped[int]
    remaining: Mapped[int]
    per_buyer_limit: Mapped[int]
    status: Mapped[OfferStatus] = mapped_column(
        text_enum(OfferStatus, length=24), default=OfferStatus.ACTIVE
    )
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class OfferPurchase(Base):
    """How many units of an offer a buyer holds in live orders: the per-buyer limit's counter."""

    __tablename__ = "offer_purchases"
    __table_args__ = (CheckConstraint("quantity >= 0", name="quantity_not_negative"),)

    offer_id: Mapped[int] = mapped_column(
        ForeignKey("flash_offers.id", ondelete="CASCADE"), primary_key=True
    )
    buyer_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    quantity: Mapped[int]


class ShippingRate(Base):
    """A shop's shipping fee to a destination region and everywhere below it.

    The rate of the deepest region containing the destination applies; a rate without a region
    applies everywhere else. A shop without rates ships free. The shop's rates are replaced
    together, so there is at most one without a region.
    """

    __tablename__ = "shipping_rates"
    __table_args__ = (
        CheckConstraint("fee_cents >= 0", name="fee_not_negative"),
        UniqueConstraint("shop_id", "region_code"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    region_code: Mapped[str | None] = mapped_column(ForeignKey("regions.code"))
    fee_cents: Mapped[int] = mapped_column(BigInteger)


class Order(Base):
    """A buyer's order from one shop; ``status`` always equals the last event's ``to_status``."""

    __tablename__ = "orders"
    __table_args__ = (
        # One order per Idempotency-Key per buyer (invariant 2), enforced by the database.
        UniqueConstraint("buyer_id", "idempotency_key"),
        CheckConstraint("total_cents = items_cents + shipping_cents", name="total_adds_up"),
        Index("ix_orders_shop_id_created_at", "shop_id", "created_at"),
        Index("ix_orders_status_expires_at", "status", "expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    buyer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"))
    status: Mapped[OrderStatus] = mapped_column(text_enum(OrderStatus, length=24))
    currency: Mapped[str] = mapped_column(String(3))
    items_cents: Mapped[int] = mapped_column(BigInteger)
    shipping_cents: Mapped[int] = mapped_column(BigInteger)
    total_cents: Mapped[int] = mapped_column(BigInteger)
    refunded_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    ship_name: Mapped[str] = mapped_column(String(40))
    ship_phone: Mapped[str] = mapped_column(String(20))
    ship_region_code: Mapped[str] = mapped_column(ForeignKey("regions.code"))
    ship_detail: Mapped[str] = mapped_column(String(200))
    idempotency_key: Mapped[str] = mapped_column(String(100))
    # SHA-256 of the canonical request: the same key with another body is refused.
    request_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    items: Mapped[list["OrderItem"]] = relationship(lazy="raise", order_by="OrderItem.id")
    events: Mapped[list["OrderEvent"]] = relationship(lazy="raise", order_by="OrderEvent.id")


class OrderItem(Base):
    """A line of an order, with the title and price as they were when it was placed."""

    __tablename__ = "order_items"
    __table_args__ = (
        CheckConstraint("quantity >= 1", name="quantity_positive"),
        Index("ix_order_items_order_id", "order_id"),
        Index("ix_order_items_offer_id", "offer_id"),
        Index("ix_order_items_anchor_id", "anchor_id"),
        Index("ix_order_items_live_session_id", "live_session_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id"))
    offer_id: Mapped[int | None] = mapped_column(ForeignKey("flash_offers.id"))
    title: Mapped[str] = mapped_column(String(200))
    unit_price_cents: Mapped[int] = mapped_column(BigInteger)
    quantity: Mapped[int]
    # The line's attribution, copied from its offer when the order was placed: the live
    # session and anchor that sold it, the commission plan and its rate at that moment.
    live_session_id: Mapped[int | None] = mapped_column(Integer)
    anchor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    plan_id: Mapped[int | None] = mapped_column(Integer)
    commission_bp: Mapped[int | None]


class OrderEvent(Base):
    """One change of an order's state (invariant 5: appended, never rewritten)."""

    __tablename__ = "order_events"
    __table_args__ = (Index("ix_order_events_order_id", "order_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    from_status: Mapped[OrderStatus | None] = mapped_column(text_enum(OrderStatus, length=24))
    to_status: Mapped[OrderStatus] = mapped_column(text_enum(OrderStatus, length=24))
    # The user who caused it; None for the platform itself (expiry, a payment webhook).
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    note: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
