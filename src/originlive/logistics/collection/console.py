"""The merchant's console, collection part: a co-operative's collection runs, booking one
with a table of growers (each with their village point and the kilograms expected), and a
run's page: what each grower brought and each point sent, what the hub received, the
differences flagged; dispatching and closing it.

Forms post plainly; what was wrong is shown beside the field (422) and nothing is written.
The work is the API's (``collection.service``), read into the same schemas.
"""

import datetime as dt
import re
from typing import Annotated, Any

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from originlive.accounts.deps import CurrentUser
from originlive.catalog import service as catalog
from originlive.catalog.deps import OwnedShop
from originlive.catalog.models import Shop
from originlive.db import SessionDep, utcnow
from originlive.errors import Conflict, InvalidInput
from originlive.logistics import service as logistics
from originlive.logistics.collection import schemas, service
from originlive.logistics.collection.deps import ManagedRun
from originlive.logistics.collection.forms import grams, kilos, words
from originlive.logistics.collection.models import CollectionRun
from originlive.logistics.models import NodeKind
from originlive.routing import Router
from originlive.web.deps import get_viewer
from originlive.web.forms import field_errors, refused_field, typed, whole
from originlive.web.templating import N_, render
from originlive.web.templating import gettext as _

router = Router(tags=["pages"], include_in_schema=False, dependencies=[Depends(get_viewer)])

Line = Annotated[str, Form(max_length=200)]
ROWS = 8  # empty grower rows on a new form, and how many more "Add rows" gives
RUNS_PAGE = 50
GROWER_FIELDS = ("name", "phone", "point_id", "kg")
MESSAGES = {
    "sku_id": N_("Choose what is collected."),
    "hub_id": N_("Choose the county hub the produce goes to."),
    "collect_on": N_("Choose the day the points weigh."),
    "tolerance_percent": N_("Enter a whole percentage from 0 to 50."),
    "note": N_("Keep the note to one line of up to 200 characters."),
    "growers": N_("List at least one grower, and no more than 500."),
    "name": N_("Enter the grower's name."),
    "phone": N_("Enter a phone number: digits, spaces and dashes."),
    "point_id": N_("Choose an open village point."),
    "kg": N_("Enter the kilograms expected, such as 120.5, up to 50,000."),
}
_DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", re.ASCII)  # what a date field sends
NO_DAY = dt.date(1, 1, 1)  # outside the years a run may be on
TWICE = N_("This grower is listed twice.")
NOTHING_TO_SEND = N_("Nothing has been weighed and accepted yet: there is nothing to send.")
DISPATCHED = N_("The run has been dispatched already.")
NOT_RECEIVED = N_("Only a run the hub has received can be closed.")
FLASHES = {
    "booked": N_("The run is booked. The points can weigh its growers now."),
    "dispatched": N_("Dispatched: weighing is over, the hub receives it."),
    "closed": N_("The run is closed."),
}


# The shop's runs, and booking one


async def _choices(session: SessionDep, shop: Shop) -> dict[str, Any]:
    products, _total = await catalog.search_products(
        session, shop_id=shop.id, public=False, limit=100, offset=0
    )
    nodes = [n for n, _link in await logistics.list_nodes(session) if n.active]
    return {
        "skus": [(s.id, f"{p.title} · {s.name}") for p in products for s in p.skus],
        "hubs": [(n.id, n.name) for n in nodes if n.kind is NodeKind.COUNTY_HUB],
        "points": [(n.id, n.name) for n in nodes if n.kind is NodeKind.VILLAGE_POINT],
    }


async def _runs_page(
    request: Request,
    session: SessionDep,
    shop: Shop,
    user: CurrentUser,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    runs, _total = await service.list_runs(
        session, user=user, shop_id=shop.id, limit=RUNS_PAGE, offset=0
    )
    values = values or {"tolerance_percent": "5", "rows": [{}] * ROWS}
    context = {
        "shop": shop, "tab": "collection", "runs": await service.views(session, runs, user=user),
        "values": values, "errors": errors or {}, "kilos": kilos, "words": words(),
        **await _choices(session, shop),
    }  # fmt: skip
    return render(
        request,
        "logistics/collection/console/runs.html",
        context,
        status_code=422 if errors else 200,
    )


@router.get("/console/shops/{shop_id}/collection", response_class=HTMLResponse)
async def runs(
    request: Request, shop: OwnedShop, session: SessionDep, user: CurrentUser
) -> Response:
    """The shop's collection runs, the latest day first; a form to book one."""
    return await _runs_page(request, session, shop, user)


def _rows(form: Any) -> list[dict[str, str]]:
    """The growers' rows as typed, in order (a row is one of each field)."""
    columns = [form.getlist(f) for f in GROWER_FIELDS]
    count = max((len(c) for c in columns), default=0)
    return [
        {
            f: (str(c[i]) if i < len(c) and isinstance(c[i], str) else "")
            for f, c in zip(GROWER_FIELDS, columns, strict=True)
        }
        for i in range(count)
    ]


def _day(text: str) -> dt.date:
    """The day a date field sent; a day the schema refuses if it is not one."""
    try:
        return dt.date.fromisoformat(text.strip()) if _DAY.match(text.strip()) else NO_DAY
    except ValueError:
        return NO_DAY


def _grower(row: dict[str, str], at: int, errors: dict[str, str]) -> schemas.GrowerBooking | None:
    """A typed row as a booking, or None with its errors (keyed ``field-row``)."""
    point_id, expected = whole(row["point_id"]), grams(row["kg"])
    try:
        booking = schemas.GrowerBooking(
            name=row["name"],
            phone=row["phone"].strip(),
            point_id=point_id or 0,
            expected_grams=-1 if expected is None else expected,
        )
    except ValidationError as exc:
        found = field_errors(exc, MESSAGES, {"expected_grams": "kg"})
        errors.update({f"{field}-{at}": message for field, message in found.items()})
        return None
    return booking


@router.post("/console/shops/{shop_id}/collection", response_class=HTMLResponse)
async def book(
    request: Request, shop: OwnedShop, session: SessionDep, user: CurrentUser
) -> Response:
    """Book a run; "Add rows" shows the form again with more empty rows, writing nothing."""
    form = await request.form()
    rows = _rows(form)
    values: dict[str, Any] = {
        k: v for k, v in (await typed(request)).items() if k not in GROWER_FIELDS
    }
    if form.get("more"):
        values["rows"] = rows + [{}] * min(ROWS, max(schemas.MAX_GROWERS - len(rows), 0))
        return await _runs_page(request, session, shop, user, values=values)
    values["rows"] = rows or [{}] * ROWS
    errors: dict[str, str] = {}
    growers, at = [], []
    for i, row in enumerate(rows):
        if not any(v.strip() for v in row.values()):
            continue  # an empty row of the form
        grower = _grower(row, i, errors)
        if grower is not None:
            growers.append(grower)
            at.append(i)
    tolerance = whole(str(form.get("tolerance_percent", "")).strip())
    try:
        data = schemas.RunCreate(
            shop_id=shop.id,
            sku_id=whole(str(form.get("sku_id", ""))) or 0,
            hub_id=whole(str(form.get("hub_id", ""))) or 0,
            collect_on=_day(str(form.get("collect_on", ""))),
            note=str(form.get("note", "")),
            tolerance_percent=-1 if tolerance is None else tolerance,
            growers=growers,
        )
    except ValidationError as exc:
        found = field_errors(exc, MESSAGES)
        if errors:  # rows refused: "no growers" would only say so again
            found.pop("growers", None)
        errors |= found
        data = None
    if errors or data is None:
        return await _runs_page(request, session, shop, user, values=values, errors=errors)
    try:
        run = await service.book(session, shop=shop, actor=user, data=data)
    except InvalidInput as exc:  # an unknown SKU, hub or point; a grower twice
        field = refused_field(exc)
        if field.startswith("growers."):
            _name, index, part = field.split(".")
            message = TWICE if part == "name" else MESSAGES[part]
            errors[f"{part}-{at[int(index)]}"] = _(message)
        else:
            errors[field] = _(MESSAGES.get(field, MESSAGES["sku_id"]))
        return await _runs_page(request, session, shop, user, values=values, errors=errors)
    return _back(run, "booked")


# A run


def _back(run: CollectionRun, done: str) -> RedirectResponse:
    return RedirectResponse(f"/console/collection/{run.id}?done={done}", status_code=303)


async def _run_page(
    request: Request,
    session: SessionDep,
    run: CollectionRun,
    user: CurrentUser,
    *,
    message: str | None = None,
    flash: str | None = None,
) -> Response:
    shop = await catalog.get_shop(session, shop_id=run.shop_id)
    (shown,) = await service.views(session, [run], user=user)
    context = {
        "shop": shop, "tab": "collection", "run": shown, "kilos": kilos, "words": words(),
        "message": message, "flash": flash,
    }  # fmt: skip
    return render(
        request,
        "logistics/collection/console/run.html",
        context,
        status_code=409 if message else 200,
    )


@router.get("/console/collection/{run_id}", response_class=HTMLResponse)
async def run_page(
    request: Request,
    run: ManagedRun,
    session: SessionDep,
    user: CurrentUser,
    done: str | None = None,
) -> Response:
    """A run: its points and growers, what was weighed and received, the differences."""
    flash = _(FLASHES[done]) if done in FLASHES else None
    return await _run_page(request, session, run, user, flash=flash)


@router.post("/console/collection/{run_id}/dispatch", response_class=HTMLResponse)
async def dispatch(
    request: Request, run: ManagedRun, session: SessionDep, user: CurrentUser
) -> Response:
    """Weighing is over: the produce is on its way to the hub."""
    try:
        await service.dispatch(session, run_id=run.id, actor=user, now=utcnow())
    except Conflict:
        message = NOTHING_TO_SEND if run.status in service.WEIGHING else DISPATCHED
        return await _run_page(request, session, run, user, message=_(message))
    return _back(run, "dispatched")


@router.post("/console/collection/{run_id}/close", response_class=HTMLResponse)
async def close(
    request: Request, run: ManagedRun, session: SessionDep, user: CurrentUser
) -> Response:
    """The differences are seen: the run is done."""
    try:
        await service.close(session, run_id=run.id, actor=user, now=utcnow())
    except Conflict:
        return await _run_page(request, session, run, user, message=_(NOT_RECEIVED))
    return _back(run, "closed")
