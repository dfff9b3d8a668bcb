"""Pages that belong to no single feature: the home page."""

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from originlive.catalog.deps import Storage
from originlive.catalog.pages import PageParam, RegionParam, listing
from originlive.db import SessionDep
from originlive.web.deps import get_viewer
from originlive.web.templating import render

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
    return render(request, "home.html", context | {"image_url": storage.url})
