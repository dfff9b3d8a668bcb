"""HTML routes of a parcel's path for the people of its order: each parcel of an order with its
route and its events as a timeline, in the reader's language and on the platform's clock.

Who may look is ``orders.deps``' rule (the buyer, the shop's managers, operators; anyone else
gets a 404), as for the JSON ``GET /api/v1/orders/{id}/parcels``; the pick-up code, with the
point where it opens the shelf, is shown to the buyer alone.
"""

from dataclasses import dataclass

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse

from originlive.accounts.deps import CurrentUser
from originlive.db import SessionDep
from originlive.logistics import queries, schemas, service
from originlive.logistics.models import DeliveryNode, ParcelStatus
from originlive.orders.deps import VisibleOrder
from originlive.routing import Router
from originlive.web.deps import get_viewer
from originlive.web.templating import render

router = Router(tags=["pages"], include_in_schema=False, dependencies=[Depends(get_viewer)])


@dataclass(frozen=True, slots=True)
class Shown:
    """A parcel as the page shows it: its lines' titles, its route's nodes, and where the
    buyer collects it (``point``, with ``pickup_code``, for the buyer only)."""

    parcel: schemas.Parcel
    lines: list[tuple[str, int]]
    route: list[DeliveryNode]
    events: list[schemas.TrackingEvent]  # newest first, as one reads a parcel's news
    pickup_code: str | None
    point: DeliveryNode | None


@router.get("/orders/{order_id}/parcels", response_class=HTMLResponse)
async def order_parcels(
    request: Request, order: VisibleOrder, session: SessionDep, user: CurrentUser
) -> HTMLResponse:
    """The order's parcels, each with its route and timeline."""
    as_buyer = order.buyer_id == user.id
    parcels = await service.parcel_views(
        session, await service.order_parcels(session, order_id=order.id)
    )
    nodes = await queries.by_id(
        session, {n for p in parcels for n in (*p.route, p.destination_id) if n is not None}
    )
    titles = {item.id: item.title for item in order.items}
    shown = []
    for parcel in parcels:
        waiting = as_buyer and parcel.status is ParcelStatus.READY_FOR_PICKUP
        point = nodes.get(parcel.destination_id) if parcel.destination_id else None
        shown.append(
            Shown(
                parcel=parcel.model_copy(update={"pickup_code": None}),  # shown apart, if at all
                lines=[(titles.get(ln.order_item_id, ""), ln.quantity) for ln in parcel.items],
                route=[nodes[n] for n in parcel.route if n in nodes],
                events=list(reversed(parcel.events)),
                pickup_code=parcel.pickup_code if waiting else None,
                point=point if waiting else None,
            )
        )
    context = {"order": order, "parcels": shown, "as_buyer": as_buyer}
    return render(request, "logistics/parcels.html", context)
