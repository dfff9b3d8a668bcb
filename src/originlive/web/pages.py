"""Pages that belong to no single feature: the home page."""

from typing import Annotated

from fastapi import Depends, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from originlive.accounts.pages import safe_next
from originlive.catalog import service as catalog
from originlive.catalog.deps import Storage
from originlive.catalog.pages import PageParam, RegionParam, listing
from originlive.db import SessionDep
from originlive.errors import NotFound
from originlive.live import service as live
from originlive.live.models import SessionStatus
from originlive.routing import Router
from originlive.web.deps import Viewer, get_viewer
from originlive.web.pagecache import Shared
from originlive.web.templating import LANG_COOKIE, LANGUAGES, render

LIVE_ON_HOME = 8  # live sessions first, then the soonest upcoming

router = Router(tags=["pages"], include_in_schema=False, dependencies=[Depends(get_viewer)])


@router.get("/", response_class=HTMLResponse)
async def home(
    request: Request,
    session: SessionDep,
    storage: Storage,
    viewer: Viewer,
    region: RegionParam = "",
    page: PageParam = 1,
) -> HTMLResponse:
    """The newest products on sale, narrowed to a region by the province list."""
    context = await listing(session, q="", region_code=region, page=page)
    statuses = [SessionStatus.LIVE, SessionStatus.SCHEDULED]
    lives, _ = await live.list_sessions(
        session, statuses=statuses, region_code=region or None, limit=LIVE_ON_HOME, offset=0
    )
    hosts = await live.hosts_of(session, lives)
    shops = {s.shop_id for s in lives if s.shop_id is not None}  # anchors' own have none
    followed: set[int] = set()
    if viewer is not None and shops:
        followed = await catalog.followed_among(session, user_id=viewer.id, shop_ids=shops)
    # The shops one follows come first, each group in the listing's order (sorted is stable).
    ordered = sorted(lives, key=lambda s: s.shop_id not in followed)
    sessions = [(s, hosts[s.id], s.shop_id in followed) for s in ordered]
    context |= {"image_url": storage.url, "lives": sessions}
    # The same for every viewer who follows none of the shops shown (web.pagecache); the
    # cache's viewers carry what they follow.
    shown = frozenset(shops)
    shared = Shared(tags=("listing",), only_if=lambda viewer: not viewer.follows & shown)
    return render(request, "home.html", context, shared=shared, personal=bool(followed))


@router.get("/lang/{code}")
async def choose_language(
    code: str, next_path: Annotated[str, Query(alias="next", max_length=2000)] = "/"
) -> Response:
    """Switch the pages' language (kept in a cookie for a year), back to where one was."""
    if code not in LANGUAGES:
        raise NotFound(f"No language {code}.")
    response = RedirectResponse(safe_next(next_path), status_code=303)
    response.set_cookie(LANG_COOKIE, code, max_age=365 * 24 * 3600, samesite="lax")
    return response
