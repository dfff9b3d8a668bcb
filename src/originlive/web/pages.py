"""Pages that belong to no single feature: the home page."""

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from originlive.catalog.deps import Storage
from originlive.catalog.pages import PageParam, RegionParam, listing
from originlive.db import SessionDep
from originlive.live import service as live
from originlive.live.models import SessionStatus
from originlive.web.deps import get_viewer
from originlive.web.templating import render

LIVE_ON_HOME = 8  # live sessions first, then the soonest upcoming

router = APIRouter(tags=["pages"], include_in_schema=False, dependencies=[Depends(get_viewer)])


@router.get("/", response_class=HTMLResponse)
async def home(
    request: Request,
    session: SessionDep,
    storage: Storage,
    region: RegionParam = "",
    page: PageParam = 1,
) -> HTMLResponse:
    """The newest products on sale, narrowed to a region by the province list."""
    context = await listing(session, q="", region_code=region, page=page)
    statuses = [SessionStatus.LIVE, SessionStatus.SCHEDULED]
    lives, _ = await live.list_sessions(
        session, statuses=statuses, region_code=region or None, limit=LIVE_ON_HOME, offset=0
    )
    shops = await live.shops_of(session, lives)
    sessions = [(s, shops[s.shop_id]) for s in lives]
    return render(request, "home.html", context | {"image_url": storage.url, "lives": sessions})
