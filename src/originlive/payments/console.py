"""The merchant's console, orders part: the shop's orders by state, with the address to ship
to, and the two things a shop does to a paid order: ship it (carrier and waybill) or give the
money back (all or part). The work is the API's (``logistics.service.ship``,
``payments.service.refund``): shipping with no carrier sends the order's parcel through the
delivery network, to the point that serves the buyer."""

from typing import Annotated, Any

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from originlive.accounts.deps import CurrentUser
from originlive.catalog import service as catalog
from originlive.catalog.deps import OwnedShop
from originlive.catalog.models import Shop
from originlive.catalog.pages import PageParam
from originlive.db import SessionDep
from originlive.errors import InvalidInput, OriginliveError
from originlive.logistics import service as logistics
from originlive.logistics.schemas import ShipmentCreate
from originlive.orders import service as orders
from originlive.orders.deps import ShopOrder, Writer
from originlive.orders.models import Order, OrderStatus
from originlive.payments import schemas
from originlive.payments import service as payments
from originlive.payments.records import REFUNDABLE
from originlive.routing import Router
from originlive.web.deps import get_viewer
from originlive.web.forms import cents, error_on, field_errors, refused_field, typed
from originlive.web.templating import N_, money, render
from originlive.web.templating import gettext as _

router = Router(tags=["pages"], include_in_schema=False, dependencies=[Depends(get_viewer)])

Line = Annotated[str, Form(max_length=500)]
ORDERS_PAGE = 20
# The tabs of the orders page: what a shop looks for, in the order it works.
TABS = (
    (OrderStatus.PAID, N_("To ship")),
    (OrderStatus.REFUND_REQUESTED, N_("Refund requested")),
    (OrderStatus.SHIPPED, N_("Shipped")),
    (OrderStatus.PENDING_PAYMENT, N_("Awaiting payment")),
    (OrderStatus.REFUNDED, N_("Refunded")),
)
MESSAGES = {
    "carrier": N_("Enter the carrier, such as 中国邮政."),
    "tracking_number": N_("Enter the waybill number: letters, digits and dashes."),
    "amount": N_("Enter an amount in yuan, more than zero."),
    "reason": N_("Say why, in a few words."),
}
AT_MOST = N_("At most %(amount)s is left to refund.")
FLASHES = {"shipped": N_("Marked as shipped."), "refunded": N_("The money is on its way back.")}


async def _orders_page(
    request: Request,
    session: SessionDep,
    shop: Shop,
    *,
    status: OrderStatus | None,
    page: int = 1,
    failed: dict[str, Any] | None = None,
    flash: str | None = None,
) -> Response:
    rows, total = await orders.list_orders(
        session, shop_id=shop.id, status=status,
        limit=ORDERS_PAGE, offset=(page - 1) * ORDERS_PAGE,
    )  # fmt: skip
    context = {
        "shop": shop, "orders": rows, "tab": "orders", "status": status,
        "tabs": [(s.value, _(name)) for s, name in TABS], "page": page,
        "has_next": page * ORDERS_PAGE < total, "refundable": {s.value for s in REFUNDABLE},
        # failed: the order whose form was refused, what was typed and what was wrong.
        "failed": failed or {"order_id": None, "values": {}, "errors": {}, "message": None},
        "flash": flash,
    }  # fmt: skip
    code = 200 if failed is None else 409 if failed.get("message") else 422
    return render(request, "payments/console/orders.html", context, status_code=code)


@router.get("/console/shops/{shop_id}/orders", response_class=HTMLResponse)
async def shop_orders(
    request: Request,
    shop: OwnedShop,
    session: SessionDep,
    status: OrderStatus | None = None,
    page: PageParam = 1,
    done: str | None = None,
) -> Response:
    """The shop's orders, newest first, in one state or all, with what can be done to each."""
    flash = _(FLASHES[done]) if done in FLASHES else None
    return await _orders_page(request, session, shop, status=status, page=page, flash=flash)


def _back(order: Order, done: str) -> RedirectResponse:
    url = f"/console/shops/{order.shop_id}/orders?status={order.status.value}&done={done}"
    return RedirectResponse(url, status_code=303)


async def _refused(
    request: Request, session: SessionDep, order: Order, errors: Any = None, message: Any = None
) -> Response:
    shop = await catalog.get_shop(session, shop_id=order.shop_id)
    assert shop is not None  # a foreign key keeps it
    failed = {"order_id": order.id, "values": await typed(request), "errors": errors or {},
              "message": message}  # fmt: skip
    return await _orders_page(request, session, shop, status=order.status, failed=failed)


@router.post("/console/orders/{order_id}/ship", response_class=HTMLResponse)
async def ship(
    request: Request,
    order: ShopOrder,
    session: SessionDep,
    writer: Writer,
    user: CurrentUser,
    carrier: Line = "",
    tracking_number: Line = "",
) -> Response:
    """Send a paid order: through the delivery network, or with a carrier (and its waybill)."""
    try:
        # Neither: the delivery network. A carrier alone: it books the waybill (the sandbox
        # carrier), or the carrier needs one typed (a 422 beside the field).
        data = ShipmentCreate(carrier=carrier or None, tracking_number=tracking_number or None)
        await logistics.ship(session, writer, order=order, actor=user, data=data)
    except ValidationError as exc:
        return await _refused(request, session, order, errors=field_errors(exc, MESSAGES))
    except InvalidInput as exc:  # a carrier that needs its waybill typed
        if (field := refused_field(exc)) in MESSAGES:
            return await _refused(request, session, order, errors=error_on(MESSAGES, field))
        return await _refused(request, session, order, message=exc.detail)
    except OriginliveError as exc:  # no longer paid: refunded or shipped meanwhile
        return await _refused(request, session, order, message=exc.detail)
    return _back(order, "shipped")


@router.post("/console/orders/{order_id}/refund", response_class=HTMLResponse)
async def refund(
    request: Request,
    order: ShopOrder,
    session: SessionDep,
    writer: Writer,
    user: CurrentUser,
    amount: Line = "",
    reason: Line = "",
) -> Response:
    """Give back all or part of what the buyer paid."""
    amount_cents = cents(amount)
    try:
        data = schemas.RefundCreate(
            amount_cents=-1 if amount_cents is None else amount_cents, reason=reason
        )
        await payments.refund(
            session, writer, order=order, actor=user,
            amount_cents=data.amount_cents, reason=data.reason,
        )  # fmt: skip
    except ValidationError as exc:
        errors = field_errors(exc, MESSAGES, {"amount_cents": "amount"})
        return await _refused(request, session, order, errors=errors)
    except InvalidInput as exc:  # more than is left
        left = money(order.total_cents - order.refunded_cents, order.currency)
        if refused_field(exc) != "amount_cents":
            return await _refused(request, session, order, message=exc.detail)
        return await _refused(request, session, order, errors={"amount": _(AT_MOST, amount=left)})
    except OriginliveError as exc:  # nothing paid, or all given back already
        return await _refused(request, session, order, message=exc.detail)
    return _back(order, "refunded")
