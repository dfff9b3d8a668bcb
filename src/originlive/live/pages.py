"""HTML routes of live sessions: the room a buyer watches."""

from typing import Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse

from originlive.db import SessionDep
from originlive.live import service
from originlive.live.deps import VisibleSession
from originlive.live.models import LiveSession
from originlive.live.rooms import offer_event
from originlive.orders.models import FlashOffer
from originlive.routing import Router
from originlive.web.assets import static_url
from originlive.web.deps import Viewer, get_viewer
from originlive.web.pagecache import Shared, watch
from originlive.web.templating import render

router = Router(tags=["pages"], include_in_schema=False, dependencies=[Depends(get_viewer)])

HLS_JS = "vendor/hls.js-1.7.4/hls.light.min.js"  # npm hls.js 1.7.4, only where needed


@router.get("/live/{session_id}", response_class=HTMLResponse)
async def room(
    live: VisibleSession, request: Request, session: SessionDep, user: Viewer
) -> HTMLResponse:
    """The live room: the video, the pinned offer, chat, likes and purchases as they happen.

    The page is whole without JavaScript (the session, its pinned offer); the room's socket
    brings it to life. hls.js is fetched only by browsers that cannot play HLS themselves."""
    host = await service.host_of(session, live)
    offers = await service.offers_of(session, session_ids=[live.id])
    pinned = next((o for o in offers if o.id == live.pinned_offer_id), None)
    context: dict[str, Any] = {
        "live": live,
        "host": host,
        "pinned": offer_event(pinned) if pinned is not None else None,
        "playback_url": f"/media/hls/{live.id}/index.m3u8",
        "room_url": f"/ws/live/{live.id}",
        "hls_js": static_url(HLS_JS),
    }
    # Every viewer of the room sees the same page but for who they are (web.pagecache).
    shop_tag = (f"shop:{live.shop_id}",) if live.shop_id is not None else ()
    shared = Shared(tags=(f"session:{live.id}", *shop_tag))
    return render(request, "live/room.html", context, shared=shared)


# A session's status, title or pin, and its offers, are on its room's page; the home page
# lists live and coming sessions.
watch(LiveSession, lambda live: (f"session:{live.id}", "listing"))
watch(FlashOffer, lambda offer: (f"session:{offer.live_session_id}",))
