"""JSON routes of flash offers, orders and shipping rates."""

from typing import Annotated

from fastapi import Body, Header, Query, Request, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.accounts import service as accounts
from originlive.accounts.deps import CurrentUser
from originlive.catalog import service as catalog
from originlive.catalog.api import Limit, Offset
from originlive.catalog.deps import OwnedShop, VisibleShop, can_manage
from originlive.catalog.schemas import Page
from originlive.db import SessionDep
from originlive.errors import InvalidInput
from originlive.orders import schemas, service
from originlive.orders.deps import (
    OwnedOffer,
    Placer,
    StockGate,
    VisibleOffer,
    VisibleOrder,
    Writer,
)
from originlive.orders.models import OfferStatus, OrderStatus
from originlive.routing import Router

router = Router(prefix="/api/v1", tags=["orders"])

IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=100,
        pattern=r"^[\x21-\x7e]+$",
        description="A key of the client's choosing, new for each order: a retry with the "
        "same key and body returns the first answer; with another body it is a 422.",
    ),
]


# Offers


@router.post("/offers", status_code=status.HTTP_201_CREATED, response_model=schemas.Offer)
async def open_offer(
    body: schemas.OfferCreate, session: SessionDep, writer: Writer, user: CurrentUser
) -> schemas.Offer:
    """Put units of a SKU on sale at an offer price; they leave the SKU's stock at once."""
    sku = await catalog.get_sku(session, sku_id=body.sku_id)
    if sku is None or not can_manage(user, sku.product.shop):
        raise InvalidInput(f"No SKU {body.sku_id} of a shop you manage.", field="sku_id")
    offer_id = await service.open_offer(writer, sku=sku, data=body)
    offer = await service.get_offer(session, offer_id=offer_id)
    return schemas.Offer.model_validate(offer)


@router.get("/offers/{offer_id}", response_model=schemas.Offer)
async def get_offer(offer: VisibleOffer) -> schemas.Offer:
    """An offer with the units it has left."""
    return schemas.Offer.model_validate(offer)


@router.get("/shops/{shop_id}/offers", response_model=list[schemas.Offer])
async def shop_offers(
    shop: VisibleShop,
    session: SessionDep,
    status_: Annotated[OfferStatus | None, Query(alias="status")] = None,
) -> list[schemas.Offer]:
    """A shop's flash offers, newest first (the latest 100), with the units each has left."""
    offers = await service.list_offers(session, shop_id=shop.id, status=status_)
    return [schemas.Offer.model_validate(o) for o in offers]


@router.post("/offers/{offer_id}/end", response_model=schemas.Offer)
async def end_offer(
    offer: OwnedOffer, session: SessionDep, writer: Writer, gate: StockGate, user: CurrentUser
) -> schemas.Offer:
    """Close the offer now; what it has left goes back to the SKU."""
    await service.close_offer(session, writer, gate, offer=offer, actor=user)
    return schemas.Offer.model_validate(await service.get_offer(session, offer_id=offer.id))


# Orders


@router.post(
    "/orders",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.Order,
    responses={409: {"description": "Sold out, over the buyer's limit, or the offer ended."}},
)
async def place_order(
    body: schemas.OrderCreate,
    idempotency_key: IdempotencyKey,
    request: Request,
    response: Response,
    session: SessionDep,
    placer: Placer,
    gate: StockGate,
    user: CurrentUser,
) -> schemas.Order:
    """Reserve the items and open an order awaiting payment; it expires unpaid.

    Bearer-token callers are mostly answered by ``fastpath.FlashOrderRoute`` before this
    handler, with the same rules and shapes; this handler serves everyone else.
    """
    placed = await service.place_order(
        placer,
        gate,
        buyer_id=user.id,
        idempotency_key=idempotency_key,
        data=body,
        ttl_seconds=request.app.state.settings.order_ttl_seconds,
    )
    if placed.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return schemas.Order.model_validate(placed.order)


@router.get("/orders", response_model=Page[schemas.Order])
async def my_orders(
    session: SessionDep,
    user: CurrentUser,
    status_: Annotated[OrderStatus | None, Query(alias="status")] = None,
    limit: Limit = 20,
    offset: Offset = 0,
) -> Page[schemas.Order]:
    """The caller's own orders, newest first."""
    return await _page(session, status_, limit, offset, buyer_id=user.id)


@router.get("/orders/{order_id}", response_model=schemas.Order)
async def get_order(order: VisibleOrder) -> schemas.Order:
    """One order with its items and its history of events."""
    return schemas.Order.model_validate(order)


@router.post("/orders/{order_id}/cancel", response_model=schemas.Order)
async def cancel_order(
    order: VisibleOrder,
    session: SessionDep,
    writer: Writer,
    gate: StockGate,
    user: CurrentUser,
    body: Annotated[schemas.OrderCancel | None, Body()] = None,
) -> schemas.Order:
    """Cancel an order awaiting payment; its units go back on sale."""
    reason = body.reason if body else None
    await service.cancel_order(writer, gate, order=order, actor=user, reason=reason)
    if user.id != order.buyer_id:  # an operator cancelling their own order is a buyer
        await accounts.record_operator_act(
            session,
            actor=user,
            action="order.cancel",
            target_type="order",
            target_id=order.id,
            detail={"reason": reason},
        )
    fresh = await service.get_order(session, order_id=order.id)
    assert fresh is not None
    return schemas.Order.model_validate(fresh)


@router.post(
    "/orders/{order_id}/confirm-receipt",
    response_model=schemas.Order,
    responses={403: {"description": "Not the order's buyer."}},
)
async def confirm_receipt(
    order: VisibleOrder, session: SessionDep, writer: Writer, user: CurrentUser
) -> schemas.Order:
    """The buyer has the goods (shipped or delivered): the order is completed. Its money
    becomes payable to the shop and those who sold it once the after-sales window closes."""
    await service.confirm_receipt(writer, order=order, actor=user)
    fresh = await service.get_order(session, order_id=order.id)
    assert fresh is not None
    return schemas.Order.model_validate(fresh)


@router.get("/shops/{shop_id}/orders", response_model=Page[schemas.Order])
async def shop_orders(
    shop: OwnedShop,
    session: SessionDep,
    status_: Annotated[OrderStatus | None, Query(alias="status")] = None,
    limit: Limit = 20,
    offset: Offset = 0,
) -> Page[schemas.Order]:
    """The shop's orders, newest first (its managers and operators)."""
    return await _page(session, status_, limit, offset, shop_id=shop.id)


async def _page(
    session: AsyncSession, status_: OrderStatus | None, limit: int, offset: int, **owner: int
) -> Page[schemas.Order]:
    orders, total = await service.list_orders(
        session, status=status_, limit=limit, offset=offset, **owner
    )
    items = [schemas.Order.model_validate(o) for o in orders]
    return Page(items=items, total=total, limit=limit, offset=offset)


# Shipping


@router.get("/shops/{shop_id}/shipping-rates", response_model=schemas.ShippingRates)
async def get_shipping_rates(shop: VisibleShop, session: SessionDep) -> schemas.ShippingRates:
    """What the shop charges for shipping, by destination region; no rates: free shipping."""
    rates = await service.shipping_rates(session, shop=shop)
    return schemas.ShippingRates(rates=[schemas.ShippingRate.model_validate(r) for r in rates])


@router.put("/shops/{shop_id}/shipping-rates", response_model=schemas.ShippingRates)
async def set_shipping_rates(
    body: schemas.ShippingRates, shop: OwnedShop, session: SessionDep
) -> schemas.ShippingRates:
    """Replace the shop's rates: one per region (and below), and one without a region for
    everywhere else. The deepest matching region applies."""
    rates = await service.set_shipping_rates(session, shop=shop, data=body)
    return schemas.ShippingRates(rates=[schemas.ShippingRate.model_validate(r) for r in rates])
