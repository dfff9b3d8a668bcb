"""Tables of the selection library: the shops' commission plans, the anchors who joined them,
and the samples anchors ask for.

A plan pays an anchor ``rate_bp`` basis points (1/100 of a per cent) of what they sell of a
shop's products within its window. It covers the whole shop, a group of products or one
product (``commission_plan_products`` lists them), and is open to every anchor or targeted
at the anchors it names (``commission_plan_anchors``). An anchor earns under a plan only
once they have joined it (``plan_memberships``). ``service.effective_plan`` says which plan
pays for a sale.

An anchor puts a product of such a shop into a session they anchor (``lineup_items``); once
the shop approves it (or the plan does, ``auto_approve``), it is a flash offer in the session
that carries the plan and its rate at that moment.
"""

import enum
from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from originlive.db import Base, UTCDateTime, text_enum, utcnow

MAX_RATE_BP = 10_000  # 100 %: a plan never pays an anchor more than the sale


class PlanKind(enum.StrEnum):
    OPEN = "open"  # every anchor may join
    TARGETED = "targeted"  # only the anchors it names; overrides the open plans for them


class PlanScope(enum.StrEnum):
    SHOP = "shop"  # every product of the shop
    GROUP = "group"  # the products it lists
    PRODUCT = "product"  # the one product it lists


class PlanStatus(enum.StrEnum):
    ACTIVE = "active"
    ENDED = "ended"


class SampleStatus(enum.StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"  # a free order is on its way to the anchor
    REJECTED = "rejected"
    SHIPPED = "shipped"


class LineupStatus(enum.StrEnum):
    PROPOSED = "proposed"  # waiting for the shop
    APPROVED = "approved"  # its flash offer is open in the session
    REJECTED = "rejected"


# The states of a request still open: an anchor has at most one per product.
OPEN_SAMPLE = "status IN ('requested', 'approved')"


class CommissionPlan(Base):
    """A shop's offer of commission to anchors, for its products, for a time."""

    __tablename__ = "commission_plans"
    __table_args__ = (
        CheckConstraint(f"rate_bp >= 0 AND rate_bp <= {MAX_RATE_BP}", name="rate_within_bounds"),
        CheckConstraint("ends_at IS NULL OR ends_at > starts_at", name="window_not_empty"),
        Index("ix_commission_plans_shop_id_status", "shop_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(80))
    kind: Mapped[PlanKind] = mapped_column(text_enum(PlanKind, length=16))
    scope: Mapped[PlanScope] = mapped_column(text_enum(PlanScope, length=16))
    rate_bp: Mapped[int] = mapped_column(Integer)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # None: until ended
    samples_allowed: Mapped[bool] = mapped_column(Boolean, default=True)
    # Whether a sample's price is taken from the commission the anchor later earns.
    sample_cost_from_commission: Mapped[bool] = mapped_column(Boolean, default=False)
    # Whether the plan puts its products into a joined anchor's line-up without the shop's say.
    auto_approve: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[PlanStatus] = mapped_column(
        text_enum(PlanStatus, length=16), default=PlanStatus.ACTIVE
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class CommissionPlanProduct(Base):
    """A product of a group or product plan."""

    __tablename__ = "commission_plan_products"
    __table_args__ = (Index("ix_commission_plan_products_product_id", "product_id"),)

    plan_id: Mapped[int] = mapped_column(
        ForeignKey("commission_plans.id", ondelete="CASCADE"), primary_key=True
    )
    product_id: Mapped[int] = mapped_column(
        ForeignKey("products.id", ondelete="CASCADE"), primary_key=True
    )


class CommissionPlanAnchor(Base):
    """An anchor a targeted plan is meant for."""

    __tablename__ = "commission_plan_anchors"
    __table_args__ = (Index("ix_commission_plan_anchors_anchor_id", "anchor_id"),)

    plan_id: Mapped[int] = mapped_column(
        ForeignKey("commission_plans.id", ondelete="CASCADE"), primary_key=True
    )
    anchor_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )


class PlanMembership(Base):
    """An anchor who joined a plan: their sales under it earn its rate."""

    __tablename__ = "plan_memberships"
    __table_args__ = (Index("ix_plan_memberships_anchor_id", "anchor_id"),)

    plan_id: Mapped[int] = mapped_column(
        ForeignKey("commission_plans.id", ondelete="CASCADE"), primary_key=True
    )
    anchor_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SampleRequest(Base):
    """An anchor's request for a free unit of a plan's product, to try before selling it;
    once the shop approves it, ``order_id`` is the free order that brings it."""

    __tablename__ = "sample_requests"
    __table_args__ = (
        # A retry with the same Idempotency-Key is the same request.
        UniqueConstraint("anchor_id", "idempotency_key"),
        # A double click without a key: one open request per anchor and product.
        Index(
            "ix_sample_requests_open",
            "anchor_id",
            "product_id",
            unique=True,
            sqlite_where=text(OPEN_SAMPLE),
            postgresql_where=text(OPEN_SAMPLE),
        ),
        Index("ix_sample_requests_shop_id_status", "shop_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("commission_plans.id", ondelete="CASCADE"))
    anchor_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id", ondelete="CASCADE"))
    status: Mapped[SampleStatus] = mapped_column(
        text_enum(SampleStatus, length=16), default=SampleStatus.REQUESTED
    )
    ship_name: Mapped[str] = mapped_column(String(40))
    ship_phone: Mapped[str] = mapped_column(String(20))
    ship_region_code: Mapped[str] = mapped_column(ForeignKey("regions.code"))
    ship_detail: Mapped[str] = mapped_column(String(200))
    note: Mapped[str] = mapped_column(String(500), default="")
    reject_reason: Mapped[str | None] = mapped_column(String(500))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id", ondelete="SET NULL"))
    idempotency_key: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class LineupItem(Base):
    """A product an anchor proposes for a session's line-up, under the plan paying them for
    it then; once approved, ``offer_id`` is the flash offer selling it in the session and
    ``rate_bp`` the plan's rate at that moment, which its order lines carry."""

    __tablename__ = "lineup_items"
    __table_args__ = (
        CheckConstraint("price_cents > 0", name="price_positive"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("per_buyer_limit > 0", name="limit_positive"),
        CheckConstraint(f"rate_bp >= 0 AND rate_bp <= {MAX_RATE_BP}", name="rate_within_bounds"),
        Index("ix_lineup_items_session_id", "session_id"),
        Index("ix_lineup_items_plan_id_status", "plan_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("live_sessions.id", ondelete="CASCADE"))
    plan_id: Mapped[int] = mapped_column(ForeignKey("commission_plans.id", ondelete="CASCADE"))
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id", ondelete="CASCADE"))
    price_cents: Mapped[int] = mapped_column(Integer)
    quantity: Mapped[int] = mapped_column(Integer)
    per_buyer_limit: Mapped[int] = mapped_column(Integer)
    status: Mapped[LineupStatus] = mapped_column(
        text_enum(LineupStatus, length=16), default=LineupStatus.PROPOSED
    )
    offer_id: Mapped[int | None] = mapped_column(ForeignKey("flash_offers.id", ondelete="SET NULL"))
    rate_bp: Mapped[int | None] = mapped_column(Integer)  # the plan's, when it was approved
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Who approved or turned it down; None for the plan itself (auto_approve).
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
