"""What the ledger adds to other features' pages: where a buyer's money goes."""

from fastapi import Request
from markupsafe import Markup
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.ledger.settlement import service as settlement
from originlive.orders.models import Order
from originlive.web.templating import templates


async def money_panel(request: Request, session: AsyncSession, order: Order) -> Markup:
    """The order page's panel: of the buyer's money, what the shop, the co-operative, the
    anchor, the delivery nodes and the platform get (``settlement.where_money_goes``)."""
    policy = settlement.policy_of(request.app.state.settings)
    conn = await session.connection()
    parts = await conn.run_sync(
        lambda sync: settlement.where_money_goes(
            sync,
            order_id=order.id,
            shop_id=order.shop_id,
            total_fen=order.total_cents - order.refunded_cents,
            policy=policy,
        )
    )
    html = templates.env.get_template("ledger/_money.html").render(
        parts=parts, currency=order.currency
    )
    return Markup(html)  # noqa: S704 - rendered by our autoescaping environment
