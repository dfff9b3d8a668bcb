"""HTML routes of a parcel's path for the people of its order: each parcel of an order with its
route and its events as a timeline, in the reader's language and on the platform's clock.

Who may look is ``orders.deps``' rule (the buyer, the shop's managers, operators; anyone else
gets a 404), as for the JSON ``GET /api/v1/orders/{id}/parcels``; the pick-up code, with the
point where it opens the shelf, is shown to the buyer alone.
"""

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse

from originlive.accounts.deps import CurrentUser
from originlive.db import SessionDep
from originlive.logistics import queries
from originlive.orders.deps import VisibleOrder
from originlive.routing import Router
from originlive.web.deps import get_viewer
from originlive.web.templating import render

router = Router(tags=["pages"], include_in_schema=False, dependencies=[Depends(get_viewer)])


@router.get("/orders/{order_id}/parcels", response_class=HTMLResponse)
async def order_parcels(
    request: Request, order: VisibleOrder, session: SessionDep, user: CurrentUser
) -> HTMLResponse:
    """The order's parcels, each with its route and timeline."""
    as_buyer = order.buyer_id == user.id
    shown = await queries.shown_parcels(session, order=order, as_buyer=as_buyer)
    context = {"order": order, "parcels": shown, "as_buyer": as_buyer}
    return render(request, "logistics/parcels.html", context)
