"""HTML routes of buying: an offer's buy form (quantity and address, one submit that places
the order and opens its sandbox payment), and the buyer's order page.

They sit in ``payments`` because buying ends in a payment; ``orders`` must not import it.
The form carries its own Idempotency-Key, made when it is shown: a double submit, or a
retry after a dropped connection, gives the same order, never two."""

import uuid
from typing import Annotated, Any

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from originlive.accounts.models import User
from originlive.catalog.deps import RowId
from originlive.catalog.pages import PageParam
from originlive.db import SessionDep
from originlive.errors import InvalidInput, NotFound, OriginliveError
from originlive.logistics import queries as delivery
from originlive.orders import schemas as order_schemas
from originlive.orders import service as orders
from originlive.orders.deps import Placer, StockGate, Writer
from originlive.orders.models import FlashOffer, Order
from originlive.payments import sandbox, service
from originlive.routing import Router
from originlive.web.deps import Viewer, get_viewer, sign_in_first
from originlive.web.forms import refused_field, whole
from originlive.web.templating import N_, render
from originlive.web.templating import gettext as _

router = Router(tags=["pages"], include_in_schema=False, dependencies=[Depends(get_viewer)])

Line = Annotated[str, Form(max_length=200)]
KEY_PATTERN = r"^[A-Za-z0-9_-]{8,100}$"
ORDERS_PAGE = 20

_FIELD_MESSAGES = {
    "name": N_("Enter the receiver's name."),
    "phone": N_("Enter a phone number."),
    "region_code": N_("Enter a region code of your county, township or village."),
    "detail": N_("Enter the street, village group or house."),
}
REGION_UNKNOWN = N_("No place has this code: choose your region from the list.")
CHOOSE_HOW_MANY = N_("Choose how many.")  # what else can be wrong: the quantity
# Why an order was refused, in the reader's language, by the error's slug.
_REFUSALS = {
    "sold-out": N_("Sold out: no units are left."),
    "over-limit": N_("That is more than one buyer may take of this offer."),
    "offer-ended": N_("This offer has ended."),
    "idempotency-key-reused": N_(
        "This form was already sent with other details. Reload the page and try again."
    ),
}


async def _offer(session: SessionDep, offer_id: RowId) -> FlashOffer:
    offer = await orders.get_offer(session, offer_id=offer_id)
    if offer is None:
        raise NotFound(f"No offer {offer_id}.")
    return offer


async def _last_address(session: SessionDep, user: User) -> dict[str, str]:
    """Where the buyer's last order went: most buyers order to the same place again."""
    o = await orders.latest_order(session, buyer_id=user.id)
    if o is None:
        return {}
    return {"name": o.ship_name, "phone": o.ship_phone, "region_code": o.ship_region_code,
            "detail": o.ship_detail}  # fmt: skip


def _form(request: Request, offer: FlashOffer, values: dict[str, Any], **extra: Any) -> Response:
    context = {"offer": offer, "values": values, "errors": {}, "message": None} | extra
    status = 422 if context["errors"] else 409 if context["message"] else 200
    return render(request, "payments/buy.html", context, status_code=status)


@router.get("/offers/{offer_id}/buy", response_class=HTMLResponse)
async def buy_form(
    request: Request,
    offer: Annotated[FlashOffer, Depends(_offer)],
    session: SessionDep,
    user: Viewer,
) -> Response:
    """How many, and where to: the last order's address filled in."""
    if user is None:
        return sign_in_first(request.url.path)
    values = {"quantity": "1", "key": uuid.uuid4().hex} | await _last_address(session, user)
    return _form(request, offer, values)


@router.post("/offers/{offer_id}/buy", response_class=HTMLResponse)
async def buy(
    request: Request,
    offer: Annotated[FlashOffer, Depends(_offer)],
    session: SessionDep,
    placer: Placer,
    gate: StockGate,
    writer: Writer,
    user: Viewer,
    key: Annotated[str, Form(pattern=KEY_PATTERN)],
    quantity: Annotated[str, Form(max_length=4)] = "1",
    name: Line = "",
    phone: Line = "",
    region_code: Line = "",
    detail: Line = "",
) -> Response:
    """Place the order and go on to pay it."""
    if user is None:
        return sign_in_first(request.url.path)
    values = {"quantity": quantity, "key": key, "name": name, "phone": phone,
              "region_code": region_code, "detail": detail}  # fmt: skip
    try:
        data = order_schemas.OrderCreate(
            # The API's schema is strict (JSON numbers); a form sends text.
            items=[{"offer_id": offer.id, "quantity": whole(quantity) or 0}],
            address={"name": name, "phone": phone, "region_code": region_code, "detail": detail},
        )
    except ValidationError as exc:
        fields = {str(e["loc"][-1]) for e in exc.errors() if e["loc"]}
        errors = {f: _(m) for f, m in _FIELD_MESSAGES.items() if f in fields}
        return _form(request, offer, values, errors=errors or {"quantity": _(CHOOSE_HOW_MANY)})
    try:
        placed = await orders.place_order(
            placer, gate, buyer_id=user.id, idempotency_key=key, data=data,
            ttl_seconds=request.app.state.settings.order_ttl_seconds,
        )  # fmt: skip
    except InvalidInput as exc:  # a region code with no place
        if refused_field(exc).endswith("region_code"):
            return _form(request, offer, values, errors={"region_code": _(REGION_UNKNOWN)})
        return _form(request, offer, values, message=exc.detail)
    except OriginliveError as exc:
        refusal = _REFUSALS.get(exc.slug)
        return _form(request, offer, values, message=_(refusal) if refusal else exc.detail)
    order = await orders.get_order(session, order_id=int(placed.order["id"]))
    assert order is not None  # committed before place_order returned
    payment_id = await service.open_payment(writer, order=order, provider="sandbox")
    payment = await service.get_payment(session, payment_id=payment_id)
    assert payment is not None
    return RedirectResponse(sandbox.checkout_path(payment.checkout_token), status_code=303)


@router.get("/orders/{order_id}", response_class=HTMLResponse)
async def order_page(
    request: Request, order_id: RowId, session: SessionDep, user: Viewer
) -> Response:
    """One of the buyer's orders: its status, items, address and events."""
    if user is None:
        return sign_in_first(request.url.path)
    order: Order | None = await orders.get_order(session, order_id=order_id)
    if order is None or order.buyer_id != user.id:
        raise NotFound(f"No order {order_id} of yours.")
    # Its parcels' ways and timelines, and the pick-up code of one waiting at its village
    # point: where the buyer looks first.
    parcels = await delivery.shown_parcels(session, order=order, as_buyer=True)
    # Panels of the features above this one (the ledger's: where the money goes).
    panels = [await panel(request, session, order) for panel in request.app.state.order_panels]
    context = {"order": order, "parcels": parcels, "panels": panels}
    return render(request, "payments/order.html", context)


@router.post("/orders/{order_id}/confirm-receipt", response_class=HTMLResponse)
async def confirm_receipt(
    request: Request, order_id: RowId, session: SessionDep, writer: Writer, user: Viewer
) -> Response:
    """The buyer has the goods: the order is completed, and its after-sales window starts."""
    if user is None:
        return sign_in_first(f"/orders/{order_id}")
    order = await orders.get_order(session, order_id=order_id)
    if order is None or order.buyer_id != user.id:
        raise NotFound(f"No order {order_id} of yours.")
    await orders.confirm_receipt(writer, order=order, actor=user)
    return RedirectResponse(f"/orders/{order_id}", status_code=303)


@router.get("/orders", response_class=HTMLResponse)
async def my_orders(
    request: Request, session: SessionDep, user: Viewer, page: PageParam = 1
) -> Response:
    """The buyer's orders, newest first, with their status."""
    if user is None:
        return sign_in_first(request.url.path)
    rows, total = await orders.list_orders(
        session, buyer_id=user.id, limit=ORDERS_PAGE, offset=(page - 1) * ORDERS_PAGE
    )
    context = {"orders": rows, "page": page, "has_next": page * ORDERS_PAGE < total}
    return render(request, "payments/orders.html", context)
