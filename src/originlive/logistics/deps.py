"""Who may reach a parcel or a node: its buyer, its shop, the staff of a node it passes,
operators (invariant 12: station staff only on parcels passing their node)."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path

from originlive.accounts.deps import CurrentUser
from originlive.accounts.models import Role, User
from originlive.catalog.deps import RowId, can_manage
from originlive.catalog.models import Shop
from originlive.db import SessionDep
from originlive.errors import Forbidden, NotFound
from originlive.logistics import service
from originlive.logistics.models import DeliveryNode, Parcel
from originlive.orders.models import Order


@dataclass(frozen=True, slots=True)
class Staff:
    """A signed-in station account and the node it works at."""

    user: User
    node: DeliveryNode


async def get_staff(session: SessionDep, user: CurrentUser) -> Staff:
    """The caller as staff of a node; 403 for anyone else."""
    node = await service.staff_node(session, user=user) if user.has_role(Role.STATION) else None
    if node is None:
        raise Forbidden("Only a delivery node's staff may do this.")
    return Staff(user, node)


@dataclass(frozen=True, slots=True)
class Seen:
    """A parcel as the caller may see it; ``as_buyer``: the caller bought it (and may see
    its pick-up code)."""

    parcel: Parcel
    as_buyer: bool


async def get_visible_parcel(
    code: Annotated[str, Path(pattern=r"^OL[0-9]{10}$")], session: SessionDep, user: CurrentUser
) -> Seen:
    """The parcel if the caller bought it, manages its shop, works at a node it passes, or is
    an operator; else 404 (whether a label exists is nobody else's business)."""
    parcel = await service.get_parcel(session, code=code)
    if parcel is None:
        raise NotFound(f"No parcel {code}.")
    order = await session.get(Order, parcel.order_id)
    shop = await session.get(Shop, parcel.shop_id)
    assert order is not None and shop is not None  # kept by foreign keys
    if order.buyer_id == user.id:
        return Seen(parcel, True)
    if can_manage(user, shop):
        return Seen(parcel, False)
    if user.has_role(Role.STATION):
        node = await service.staff_node(session, user=user)
        if node is not None and await service.passes(session, parcel_id=parcel.id, node_id=node.id):
            return Seen(parcel, False)
    raise NotFound(f"No parcel {code}.")


async def get_node(node_id: RowId, session: SessionDep) -> DeliveryNode:
    """The node; 404 if there is none."""
    node = await service.get_node(session, node_id=node_id)
    if node is None:
        raise NotFound(f"No delivery node {node_id}.")
    return node


StationStaff = Annotated[Staff, Depends(get_staff)]
VisibleParcel = Annotated[Seen, Depends(get_visible_parcel)]
NodeDep = Annotated[DeliveryNode, Depends(get_node)]
