"""A shop's anchors: who joined its plans, and what they sold of its goods."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.accounts.models import User
from originlive.affiliates.models import CommissionPlan, PlanMembership
from originlive.orders.models import PAID_IN, Order, OrderItem


@dataclass(frozen=True)
class ShopAnchor:
    """An anchor of the shop's plans: the plans joined, and their sales of its goods in
    orders paid and not wholly refunded (the commission as each line recorded its rate)."""

    anchor_id: int
    name: str
    plans: int
    joined_at: datetime
    orders: int
    units: int
    sales_fen: int
    commission_fen: int


async def shop_anchors(session: AsyncSession, *, shop_id: int) -> list[ShopAnchor]:
    """The shop's anchors, best sellers first."""
    joined = (
        select(
            PlanMembership.anchor_id,
            func.count().label("plans"),
            func.min(PlanMembership.joined_at).label("joined_at"),
        )
        .join(CommissionPlan, CommissionPlan.id == PlanMembership.plan_id)
        .where(CommissionPlan.shop_id == shop_id)
        .group_by(PlanMembership.anchor_id)
        .subquery()
    )
    amount = OrderItem.unit_price_cents * OrderItem.quantity
    sold = (
        select(
            OrderItem.anchor_id,
            func.count(func.distinct(OrderItem.order_id)).label("orders"),
            func.sum(OrderItem.quantity).label("units"),
            func.sum(amount).label("sales"),
            func.sum(amount * func.coalesce(OrderItem.commission_bp, 0) / 10_000).label("earned"),
        )
        .join(Order, Order.id == OrderItem.order_id)
        .where(
            Order.shop_id == shop_id,
            Order.status.in_(PAID_IN),
            OrderItem.plan_id.is_not(None),
        )
        .group_by(OrderItem.anchor_id)
        .subquery()
    )
    rows = await session.execute(
        select(
            joined.c.anchor_id,
            User.display_name,
            joined.c.plans,
            joined.c.joined_at,
            func.coalesce(sold.c.orders, 0),
            func.coalesce(sold.c.units, 0),
            func.coalesce(sold.c.sales, 0),
            func.coalesce(sold.c.earned, 0),
        )
        .join(User, User.id == joined.c.anchor_id)
        .outerjoin(sold, and_(sold.c.anchor_id == joined.c.anchor_id))
        .order_by(func.coalesce(sold.c.sales, 0).desc(), joined.c.anchor_id)
    )
    return [
        ShopAnchor(int(a), name, int(p), at, int(o), int(u), int(s), int(e))
        for a, name, p, at, o, u, s, e in rows.all()
    ]
