"""Which offer or order a request may reach, and the writer that changes them."""

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.accounts.deps import CurrentUser, OptionalUser
from originlive.accounts.models import User
from originlive.batching import OrderWriter
from originlive.catalog.deps import RowId, can_manage
from originlive.catalog.models import Shop, ShopStatus
from originlive.db import SessionDep
from originlive.errors import Forbidden, NotFound
from originlive.orders import service
from originlive.orders.bulk import OrderPlacer
from originlive.orders.gate import Gate
from originlive.orders.models import FlashOffer, Order


def get_order_writer(request: Request) -> OrderWriter:
    """The app's order writer (batching on SQLite)."""
    writer: OrderWriter = request.app.state.order_writer
    return writer


Writer = Annotated[OrderWriter, Depends(get_order_writer)]


def get_placer(request: Request) -> OrderPlacer:
    """Where new orders go: the writer (SQLite) or batches of the process (PostgreSQL)."""
    placer: OrderPlacer = request.app.state.order_placer
    return placer


Placer = Annotated[OrderPlacer, Depends(get_placer)]


def get_gate(request: Request) -> Gate:
    """The app's stock gate (Redis when configured, else none)."""
    gate: Gate = request.app.state.gate
    return gate


StockGate = Annotated[Gate, Depends(get_gate)]


async def _shop(session: AsyncSession, shop_id: int) -> Shop:
    shop = await session.scalar(select(Shop).where(Shop.id == shop_id))
    assert shop is not None  # offers and orders keep their shop (foreign key)
    return shop


async def get_visible_offer(offer_id: RowId, session: SessionDep, user: OptionalUser) -> FlashOffer:
    """The offer if its shop is approved or the caller manages it."""
    offer = await service.get_offer(session, offer_id=offer_id)
    if offer is None:
        raise NotFound(f"No offer {offer_id}.")
    shop = await _shop(session, offer.shop_id)
    if shop.status != ShopStatus.APPROVED and not can_manage(user, shop):
        raise NotFound(f"No offer {offer_id}.")
    return offer


async def get_owned_offer(
    offer: Annotated[FlashOffer, Depends(get_visible_offer)], session: SessionDep, user: CurrentUser
) -> FlashOffer:
    """The offer if the caller manages its shop."""
    if not can_manage(user, await _shop(session, offer.shop_id)):
        raise Forbidden(f"You do not manage offer {offer.id}.")
    return offer


async def may_manage_order(
    session: AsyncSession, user: User, order: Order, *, buyer_counts: bool = True
) -> bool:
    """Whether the user bought the order (if that counts), manages its shop or is an operator."""
    if buyer_counts and order.buyer_id == user.id:
        return True
    return can_manage(user, await _shop(session, order.shop_id))


async def get_order(order_id: RowId, session: SessionDep, user: CurrentUser) -> Order:
    """The order if the caller bought it, manages its shop or is an operator; else 404."""
    order = await service.get_order(session, order_id=order_id)
    if order is None or not await may_manage_order(session, user, order):
        raise NotFound(f"No order {order_id}.")
    return order


async def get_shop_order(
    order: Annotated[Order, Depends(get_order)], session: SessionDep, user: CurrentUser
) -> Order:
    """The order if the caller manages its shop or is an operator (not its buyer); else 404."""
    if not await may_manage_order(session, user, order, buyer_counts=False):
        raise NotFound(f"No order {order.id} of a shop you manage.")
    return order


VisibleOffer = Annotated[FlashOffer, Depends(get_visible_offer)]
OwnedOffer = Annotated[FlashOffer, Depends(get_owned_offer)]
VisibleOrder = Annotated[Order, Depends(get_order)]
ShopOrder = Annotated[Order, Depends(get_shop_order)]
