"""JSON routes of payments, refunds and provider webhooks."""

from datetime import timedelta

from fastapi import Request, status

from originlive.accounts.deps import CurrentUser
from originlive.catalog.deps import RowId
from originlive.db import SessionDep
from originlive.errors import NotFound
from originlive.orders import schemas as order_schemas
from originlive.orders import service as orders
from originlive.orders.deps import ShopOrder, VisibleOrder, Writer, may_manage_order
from originlive.payments import sandbox, schemas, service
from originlive.payments.models import Payment, PaymentStatus
from originlive.routing import Router

router = Router(prefix="/api/v1", tags=["payments"])


def _out(request: Request, payment: Payment, *, buyer: bool) -> schemas.Payment:
    """The payment as the API shows it; only its buyer gets the ``checkout_url``, which pays
    the order for whoever holds it."""
    shown = schemas.Payment.model_validate(payment)
    if buyer and payment.status == PaymentStatus.PENDING:
        base = str(request.base_url).rstrip("/")
        shown.checkout_url = base + sandbox.checkout_path(payment.checkout_token)
    return shown


@router.post(
    "/orders/{order_id}/payments",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.Payment,
)
async def pay(
    body: schemas.PaymentCreate,
    order: VisibleOrder,
    request: Request,
    session: SessionDep,
    writer: Writer,
    user: CurrentUser,
) -> schemas.Payment:
    """Start paying an order awaiting payment: the buyer goes on to ``checkout_url``."""
    if order.buyer_id != user.id:
        raise NotFound(f"No order {order.id} of yours.")
    payment_id = await service.open_payment(writer, order=order, provider=body.provider)
    payment = await service.get_payment(session, payment_id=payment_id)
    assert payment is not None
    return _out(request, payment, buyer=True)


@router.get("/payments/{payment_id}", response_model=schemas.Payment)
async def get_payment(
    payment_id: RowId, request: Request, session: SessionDep, user: CurrentUser
) -> schemas.Payment:
    """A payment of an order the caller may see."""
    payment = await service.get_payment(session, payment_id=payment_id)
    order = await orders.get_order(session, order_id=payment.order_id) if payment else None
    if payment is None or order is None or not await may_manage_order(session, user, order):
        raise NotFound(f"No payment {payment_id}.")
    return _out(request, payment, buyer=order.buyer_id == user.id)


@router.post("/payments/{provider}/webhook")
async def webhook(provider: str, request: Request, writer: Writer) -> dict[str, str]:
    """Where a provider tells us what became of a payment; signed, and safe to repeat."""
    if provider != sandbox.NAME:
        raise NotFound(f"No payment provider {provider!r}.")
    event = sandbox.verify(request.app.state.sandbox_secret, request.headers, await request.body())
    outcome = await service.apply_event(writer, event=event)
    return {"result": outcome.result}


@router.post(
    "/orders/{order_id}/refunds", status_code=status.HTTP_201_CREATED, response_model=schemas.Refund
)
async def refund(
    body: schemas.RefundCreate,
    order: ShopOrder,
    session: SessionDep,
    writer: Writer,
    user: CurrentUser,
) -> schemas.Refund:
    """Give back part or all of a paid order's money (the shop or an operator)."""
    refund_id = await service.refund(
        session, writer, order=order, actor=user, amount_cents=body.amount_cents, reason=body.reason
    )
    return schemas.Refund.model_validate(await service.get_refund(session, refund_id=refund_id))


@router.post("/orders/{order_id}/refund-request", response_model=order_schemas.Order)
async def request_refund(
    body: schemas.RefundRequest,
    order: VisibleOrder,
    session: SessionDep,
    writer: Writer,
    user: CurrentUser,
    request: Request,
) -> order_schemas.Order:
    """The buyer asks the shop for their money back: once paid, and after receipt until the
    after-sales window closes."""
    if order.buyer_id != user.id:
        raise NotFound(f"No order {order.id} of yours.")
    after_sales = timedelta(days=request.app.state.settings.after_sales_days)
    await service.request_refund(
        writer, order=order, buyer_id=user.id, reason=body.reason, after_sales=after_sales
    )
    fresh = await orders.get_order(session, order_id=order.id)
    assert fresh is not None
    return order_schemas.Order.model_validate(fresh)
