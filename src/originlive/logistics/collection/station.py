"""The station staff's collection pages (``/station/collection``): at a village point, weigh
and grade each grower's produce; at the county hub, record what arrived from each point.

Forms post plainly and are recorded at once with the server's time, by the same service the
JSON API calls; what was wrong is shown beside the field (422) and nothing is written.
"""

from typing import Annotated, Any

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from originlive.accounts.deps import CurrentUser
from originlive.db import SessionDep, utcnow
from originlive.errors import Conflict, Forbidden, InvalidInput
from originlive.logistics.collection import schemas, service
from originlive.logistics.collection.deps import Seen, VisibleRun
from originlive.logistics.collection.forms import GRADE_NAMES, grams, kilos, words
from originlive.logistics.collection.models import CollectionReceipt
from originlive.logistics.deps import StationStaff
from originlive.routing import Router
from originlive.web.deps import get_viewer
from originlive.web.forms import field_errors, typed, whole
from originlive.web.templating import N_, render
from originlive.web.templating import gettext as _

router = Router(tags=["pages"], include_in_schema=False, dependencies=[Depends(get_viewer)])

Line = Annotated[str, Form(max_length=200)]
RUNS_SHOWN = 50
MESSAGES = {
    "kg": N_("Enter the kilograms weighed, such as 120.5, up to 50,000."),
    "grade": N_("Choose the grade, or rejected."),
    "received_kg": N_("Enter the kilograms that arrived, such as 1200.5, up to 500,000."),
    "note": N_("Keep the note to one line of up to 200 characters."),
}
WEIGHED = N_("This grower was weighed already.")
NOT_WEIGHING = N_("The run has left the points: weighing is over.")
RECEIVED = N_("What came from this point was recorded already.")
NOT_ON_ITS_WAY = N_("The run is not on its way yet: the co-operative dispatches it first.")
RUN_RECEIVED = N_("The run has been received already.")
FLASHES = {"weighed": N_("Weighed."), "received": N_("Received.")}


def _staff_only(seen: Seen) -> None:
    if seen.access.point_id is None and not seen.access.at_hub:
        raise Forbidden("This page is for the staff of the run's points and hub.")


@router.get("/station/collection", response_class=HTMLResponse)
async def runs(
    request: Request, staff: StationStaff, session: SessionDep, user: CurrentUser
) -> Response:
    """The collection runs bound for the caller's hub or weighing at their point."""
    found, _total = await service.list_runs(session, user=user, limit=RUNS_SHOWN, offset=0)
    shown = [
        r
        for r in await service.views(session, found, user=user)
        if r.hub_id == staff.node.id or any(p.id == staff.node.id for p in r.points)
    ]
    context = {"node": staff.node, "runs": shown, "kilos": kilos, "words": words()}
    return render(request, "logistics/collection/station/runs.html", context)


async def _run_page(
    request: Request,
    session: SessionDep,
    seen: Seen,
    user: CurrentUser,
    *,
    failed: dict[str, Any] | None = None,
    flash: str | None = None,
) -> Response:
    (shown,) = await service.views(session, [seen.run], user=user)
    context = {
        "run": shown, "access": seen.access, "kilos": kilos, "words": words(),
        "grades": [(g.value, _(name)) for g, name in GRADE_NAMES.items()],
        # failed: the row whose form was refused, what was typed and what was wrong.
        "failed": failed or {"row": None, "values": {}, "errors": {}, "message": None},
        "flash": flash,
    }  # fmt: skip
    status = 200 if failed is None else 422 if failed["errors"] else 409
    return render(request, "logistics/collection/station/run.html", context, status_code=status)


@router.get("/station/collection/{run_id}", response_class=HTMLResponse)
async def run_page(
    request: Request,
    seen: VisibleRun,
    session: SessionDep,
    user: CurrentUser,
    done: str | None = None,
) -> Response:
    """A point's growers to weigh, or the hub's points to receive."""
    _staff_only(seen)
    flash = _(FLASHES[done]) if done in FLASHES else None
    return await _run_page(request, session, seen, user, flash=flash)


def _back(seen: Seen, done: str, anchor: str) -> RedirectResponse:
    url = f"/station/collection/{seen.run.id}?done={done}#{anchor}"
    return RedirectResponse(url, status_code=303)


@router.post("/station/collection/{run_id}/weighings", response_class=HTMLResponse)
async def weigh(
    request: Request,
    seen: VisibleRun,
    session: SessionDep,
    user: CurrentUser,
    grower_id: Line = "",
    kg: Line = "",
    grade: Line = "",
) -> Response:
    """A grower's produce weighed and graded here."""
    if seen.access.point_id is None:
        raise Forbidden("Only the staff of a point of the run weigh its growers.")
    row = whole(grower_id.strip()) or 0
    weight = grams(kg)

    async def refused(errors: dict[str, str] | None = None, message: str | None = None) -> Response:
        failed = {"row": row, "values": await typed(request), "errors": errors or {},
                  "message": message}  # fmt: skip
        return await _run_page(request, session, seen, user, failed=failed)

    try:
        data = schemas.WeighingCreate.model_validate(
            {"grower_id": row, "weight_grams": -1 if weight is None else weight, "grade": grade}
        )
        await service.weigh(
            session, run_id=seen.run.id, node_id=seen.access.point_id, actor_id=user.id,
            data=data, now=utcnow(),
        )  # fmt: skip
    except ValidationError as exc:
        return await refused(field_errors(exc, MESSAGES, {"weight_grams": "kg"}))
    except (InvalidInput, Forbidden):  # not a grower of this point's
        return await refused(message=_("Choose a grower of this point."))
    except Conflict:
        weighing = seen.run.status in service.WEIGHING  # the run's row, read under its lock
        return await refused(message=_(WEIGHED if weighing else NOT_WEIGHING))
    return _back(seen, "weighed", f"grower-{row}")


@router.post("/station/collection/{run_id}/receipts", response_class=HTMLResponse)
async def receive(
    request: Request,
    seen: VisibleRun,
    session: SessionDep,
    user: CurrentUser,
    point_id: Line = "",
    received_kg: Line = "",
    note: Line = "",
) -> Response:
    """What arrived here from one point of the run."""
    if not seen.access.at_hub:
        raise Forbidden("Only the staff of the run's hub receive it.")
    row = whole(point_id.strip()) or 0
    weight = grams(received_kg)

    async def refused(errors: dict[str, str] | None = None, message: str | None = None) -> Response:
        failed = {"row": row, "values": await typed(request), "errors": errors or {},
                  "message": message}  # fmt: skip
        return await _run_page(request, session, seen, user, failed=failed)

    try:
        data = schemas.ReceiptCreate(
            point_id=row, weight_grams=-1 if weight is None else weight, note=note
        )
        await service.receive(
            session, run_id=seen.run.id, node_id=seen.run.hub_id, actor_id=user.id, data=data,
            now=utcnow(),
        )  # fmt: skip
    except ValidationError as exc:
        return await refused(field_errors(exc, MESSAGES, {"weight_grams": "received_kg"}))
    except InvalidInput:
        return await refused(message=_("Choose a point of this run."))
    except Conflict:
        if await session.get(CollectionReceipt, (seen.run.id, row)) is not None:
            return await refused(message=_(RECEIVED))
        early = seen.run.status in service.WEIGHING
        return await refused(message=_(NOT_ON_ITS_WAY if early else RUN_RECEIVED))
    return _back(seen, "received", f"point-{row}")
