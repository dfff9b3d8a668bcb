"""The station staff's phone page (``/station``): scan parcels and bags in and out at their
node, collect parcels with their pick-up codes, and see the node's parcels.

With JavaScript (``static/scan.js``) every scan is kept on the phone first and sent to the
JSON API (``POST /api/v1/scans``) in order, whenever there is a connection; the camera reads
labels with the browser's ``BarcodeDetector``, else with the vendored ZXing decoder. Without
it, the typed code is a plain form posted here and recorded at once, by the same tracking
functions the API calls, with the server's time (the phone's is not known without a script).
"""

import re
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.db import SessionDep, utcnow
from originlive.errors import OriginliveError
from originlive.logistics import schemas, service, tracking
from originlive.logistics.deps import Staff, StationStaff
from originlive.logistics.models import NodeKind, Parcel, ParcelStatus, TrackingEvent
from originlive.orders.deps import Writer
from originlive.routing import Router
from originlive.web.assets import static_url
from originlive.web.deps import get_viewer
from originlive.web.forms import field_errors, typed, whole
from originlive.web.templating import N_, render
from originlive.web.templating import gettext as _

router = Router(tags=["pages"], include_in_schema=False, dependencies=[Depends(get_viewer)])

Line = Annotated[str, Form(max_length=200)]
PARCELS_SHOWN = 30
SCAN_JS = "scan.js"
# npm zxing-wasm 3.1.4 (ZXing-C++ built to WebAssembly), its reader only: fetched by phones
# whose browser has no BarcodeDetector, and only once they turn the camera on.
DECODER_JS = "vendor/zxing-wasm-3.1.4/zxing-reader.iife.js"
DECODER_WASM = "vendor/zxing-wasm-3.1.4/zxing_reader.wasm"

_LABEL = re.compile(r"^OL[0-9]{10}$")
_SEAL = re.compile(r"^[A-Za-z0-9-]{4,24}$")
_SCAN_ID = re.compile(r"^[A-Za-z0-9_.:-]{8,64}$")

# What a station says of a parcel, in the order its day goes; ``delivered`` only where the
# point brings parcels to the door (elsewhere it is the pick-up code's).
STATUSES = (
    ParcelStatus.PICKED_UP,
    ParcelStatus.IN_TRANSIT,
    ParcelStatus.AT_NODE,
    ParcelStatus.OUT_FOR_DELIVERY,
    ParcelStatus.READY_FOR_PICKUP,
    ParcelStatus.DELIVERED,
    ParcelStatus.FAILED_ATTEMPT,
    ParcelStatus.RETURNED,
)
STATUS_NAMES = {
    ParcelStatus.PENDING: N_("Waiting for the hub"),
    ParcelStatus.PICKED_UP: N_("Picked up"),
    ParcelStatus.IN_TRANSIT: N_("Sent on"),
    ParcelStatus.AT_NODE: N_("Arrived here"),
    ParcelStatus.OUT_FOR_DELIVERY: N_("Out for delivery"),
    ParcelStatus.READY_FOR_PICKUP: N_("On the shelf"),
    ParcelStatus.DELIVERED: N_("Delivered"),
    ParcelStatus.FAILED_ATTEMPT: N_("Delivery failed"),
    ParcelStatus.RETURNED: N_("Returned"),
}
KIND_NAMES = {
    NodeKind.COUNTY_HUB: N_("County hub"),
    NodeKind.TOWNSHIP_STATION: N_("Township station"),
    NodeKind.VILLAGE_POINT: N_("Village point"),
}
# The scan a node most often makes, chosen when the page opens.
FIRST_STATUS = {
    NodeKind.COUNTY_HUB: ParcelStatus.PICKED_UP,
    NodeKind.TOWNSHIP_STATION: ParcelStatus.AT_NODE,
    NodeKind.VILLAGE_POINT: ParcelStatus.AT_NODE,
}
REASONS = (
    N_("Nobody at home"),
    N_("Refused by the buyer"),
    N_("Address not found"),
    N_("Road closed"),
    N_("Buyer not reachable by phone"),
)
MESSAGES = {
    "code": N_("Type the label (OL and ten digits) or a bag's seal."),
    "status": N_("Choose what happened."),
    "shelf": N_("Enter the shelf, a number from 1 to 99."),
    "layer": N_("Enter the layer, a number from 1 to 99."),
    "reason": N_("Say why in one line of at most 200 characters."),
    "parcel_code": N_("Type the label: OL and ten digits."),
    "pickup_code": N_("Type the pick-up code the buyer was sent, such as 2-5-2418."),
    "collected_by": N_("At most 40 characters, on one line."),
}
WRONG_CODE = N_("Wrong pick-up code: %(n)s tries left before the parcel locks.")
LOCKED = N_("Locked after too many wrong codes: try again in %(minutes)s minutes.")


def read_code(text: str) -> tuple[str, str] | None:
    """What a typed or scanned code names: ``("parcel", "OL…")`` or ``("bag", seal)``, or None.

    Full-width characters from a Chinese keyboard are read as their ASCII forms and spaces
    are dropped; a label's ``ol`` may be typed in lower case (seals keep theirs)."""
    code = re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))
    if _LABEL.match(code.upper()):
        return "parcel", code.upper()
    if _SEAL.match(code):
        return "bag", code
    return None


def new_scan_id() -> str:
    """The name a form's scan gets when the page is made: sending the form twice is one scan."""
    return f"form-{uuid.uuid4()}"


@dataclass(frozen=True, slots=True)
class Done:
    """What a scan or pick-up of this page recorded, as its next page tells it."""

    code: str
    status: ParcelStatus
    source: str
    off_route: bool
    clock_off: bool


async def done_by(session: AsyncSession, *, scan_id: str, staff: Staff) -> list[Done]:
    """The events this staff member's scan (or pick-up) recorded at their node, per parcel."""
    rows = await session.execute(
        select(
            Parcel.code,
            TrackingEvent.status,
            TrackingEvent.source,
            TrackingEvent.off_route,
            TrackingEvent.claimed_at,
        )
        .join(Parcel, Parcel.id == TrackingEvent.parcel_id)
        .where(
            TrackingEvent.scan_id == scan_id,
            TrackingEvent.actor_id == staff.user.id,
            TrackingEvent.node_id == staff.node.id,
        )
        .order_by(TrackingEvent.id)
    )
    return [Done(r.code, r.status, r.source, r.off_route, r.claimed_at is not None) for r in rows]


def _status_names() -> dict[str, str]:
    return {status.value: _(name) for status, name in STATUS_NAMES.items()}


async def _parcels(session: AsyncSession, staff: Staff) -> Sequence[Parcel]:
    parcels, _total = await service.node_parcels(
        session, node_id=staff.node.id, limit=PARCELS_SHOWN, offset=0
    )
    return parcels


def _words() -> dict[str, Any]:
    """What scan.js says, in the page's language."""
    return {
        "statuses": _status_names(),
        "pending": _("Waiting to send"),
        "sending": _("Sending…"),
        "recorded": _("Recorded"),
        "duplicate": _("Already recorded"),
        "refused": _("Refused"),
        "shelved": _("Shelved: the buyer has been sent the pick-up code"),
        "off_route": _("Not on its route"),
        "clock_off": _("Phone clock is off: the server's time was used"),
        "parcels": _("%(n)s parcels"),
        "online": _("Online"),
        "offline": _("Offline: scans are kept on this phone and sent later"),
        "waiting": _("%(n)s waiting to send"),
        "sign_in": _("Sign in again to send the waiting scans."),
        "not_a_label": _("Not a parcel label or bag seal: %(code)s"),
        "queued": _("Kept: %(code)s"),
        "choose_status": _(MESSAGES["status"]),
        "shelf_needed": _("Enter the shelf and the layer, numbers from 1 to 99."),
        "label_needed": _(MESSAGES["parcel_code"]),
        "camera_failed": _("The camera could not be opened; type the code instead."),
        "decoder_failed": _("The decoder could not be loaded; type the code instead."),
        "starting_camera": _("Starting the camera…"),
        "collected": _("Collected: %(code)s"),
        "pickup_offline": _("No connection: a pick-up needs the network. Try again."),
        "wrong_code": _(WRONG_CODE),
        "locked": _(LOCKED),
    }


async def _page(
    request: Request,
    session: AsyncSession,
    staff: Staff,
    *,
    status_code: int = 200,
    done: Sequence[Done] = (),
    again: bool = False,
    scan: dict[str, Any] | None = None,
    pickup: dict[str, Any] | None = None,
) -> HTMLResponse:
    """The page; ``scan`` and ``pickup``: a refused form's values, errors and message."""
    node = staff.node
    first = FIRST_STATUS[node.kind].value
    statuses = [s for s in STATUSES if s is not ParcelStatus.DELIVERED or node.home_delivery]
    context = {
        "node": node,
        "kind_name": _(KIND_NAMES[node.kind]),
        "statuses": [(s.value, _(STATUS_NAMES[s])) for s in statuses],
        "status_names": _status_names(),
        "reasons": [_(reason) for reason in REASONS],
        "parcels": await _parcels(session, staff),
        "node_id": node.id,
        "done": done,
        "again": again,
        "scan": scan or {"values": {"status": first, "shelf": "1", "layer": "1"}, "errors": {}},
        "pickup": pickup or {"values": {}, "errors": {}},
        "scan_id": new_scan_id(),
        "pickup_id": new_scan_id(),
        "staff_id": staff.user.id,
        "words": _words(),
        "scan_js": static_url(SCAN_JS),
        "decoder_js": static_url(DECODER_JS),
        "decoder_wasm": static_url(DECODER_WASM),
    }
    return render(request, "logistics/station/page.html", context, status_code=status_code)


@router.get("/station", response_class=HTMLResponse)
async def station(
    request: Request,
    staff: StationStaff,
    session: SessionDep,
    scan: Annotated[str | None, Query(pattern=_SCAN_ID.pattern)] = None,
    again: bool = False,
) -> HTMLResponse:
    """The node's scanning page; after a form's scan, what it recorded."""
    done = await done_by(session, scan_id=scan, staff=staff) if scan else []
    return await _page(request, session, staff, done=done, again=again)


@router.get("/station/parcels", response_class=HTMLResponse)
async def parcels(request: Request, staff: StationStaff, session: SessionDep) -> HTMLResponse:
    """The node's parcels, latest news first: the page's list, for scan.js to refresh."""
    context = {
        "parcels": await _parcels(session, staff),
        "status_names": _status_names(),
        "node_id": staff.node.id,
    }
    return render(request, "logistics/station/_parcels.html", context)


def _minutes(seconds: int) -> int:
    """Whole minutes to wait, rounded up: a lock of 14 min 10 s is "15 minutes"."""
    return max(1, -(-seconds // 60))


def _after(scan_id: str, *, again: bool) -> RedirectResponse:
    return RedirectResponse(f"/station?scan={scan_id}{'&again=1' if again else ''}", 303)


@router.post("/station/scans", response_class=HTMLResponse)
async def record_scan(
    request: Request,
    staff: StationStaff,
    session: SessionDep,
    writer: Writer,
    code: Line = "",
    status: Line = "",
    shelf: Line = "1",
    layer: Line = "1",
    reason: Line = "",
    scan_id: Line = "",
) -> Response:
    """A typed code, recorded at once with the server's time (the page without JavaScript)."""
    label = read_code(code)
    errors: dict[str, str] = {}
    try:
        body = schemas.ScanCreate.model_validate(
            {
                "scan_id": scan_id if _SCAN_ID.match(scan_id) else new_scan_id(),
                "parcel_code": label[1] if label and label[0] == "parcel" else None,
                "bag_seal": label[1] if label and label[0] == "bag" else None,
                "status": status,
                "happened_at": utcnow(),
                "reason": reason.strip() or None,
                "shelf": whole(shelf.strip()) or 0,
                "layer": whole(layer.strip()) or 0,
            }
        )
    except ValidationError as exc:
        errors = field_errors(exc, MESSAGES, {"parcel_code": "code", "bag_seal": "code"})
        errors.pop("", None)  # "a parcel_code or a bag_seal": the code's own message below
        if label is None:
            errors["code"] = _(MESSAGES["code"])
    if errors:
        failed: dict[str, Any] = {"values": await typed(request), "errors": errors}
        return await _page(request, session, staff, status_code=422, scan=failed)
    scan = tracking.Scan(
        scan_id=body.scan_id,
        status=body.status,
        happened_at=body.happened_at,
        reason=body.reason,
        shelf=body.shelf,
        layer=body.layer,
    )
    where = {"scan": scan, "node_id": staff.node.id, "actor_id": staff.user.id, "now": utcnow()}
    try:
        if body.parcel_code is not None:
            done = [await writer.run(tracking.scan_parcel, code=body.parcel_code, **where)]
        else:
            done = await writer.run(tracking.scan_bag, seal=body.bag_seal, **where)
    except OriginliveError as exc:  # no such parcel, in a bag, already delivered, not here
        failed = {"values": await typed(request), "errors": {}, "message": exc.detail}
        return await _page(request, session, staff, status_code=exc.status, scan=failed)
    return _after(body.scan_id, again=bool(done) and all(d.duplicate for d in done))


@router.post("/station/pickup", response_class=HTMLResponse)
async def pick_up(
    request: Request,
    staff: StationStaff,
    session: SessionDep,
    writer: Writer,
    parcel_code: Line = "",
    pickup_code: Line = "",
    collected_by: Line = "",
    scan_id: Line = "",
) -> Response:
    """The buyer collects a parcel here with its pick-up code (the page without JavaScript)."""
    label = read_code(parcel_code)
    errors: dict[str, str] = {}
    try:
        body = schemas.PickupCreate(
            scan_id=scan_id if _SCAN_ID.match(scan_id) else new_scan_id(),
            pickup_code=unicodedata.normalize("NFKC", pickup_code),
            collected_by=collected_by.strip() or None,
        )
    except ValidationError as exc:
        errors = field_errors(exc, MESSAGES)
    if label is None or label[0] != "parcel":
        errors["parcel_code"] = _(MESSAGES["parcel_code"])
    if errors or label is None:
        failed: dict[str, Any] = {"values": await typed(request), "errors": errors}
        return await _page(request, session, staff, status_code=422, pickup=failed)
    try:
        done = await writer.run(
            tracking.pick_up,
            code=label[1],
            pickup_code=body.pickup_code,
            collected_by=body.collected_by,
            node_id=staff.node.id,
            actor_id=staff.user.id,
            scan_id=body.scan_id,
            now=utcnow(),
        )
    except tracking.Locked as exc:
        seconds = int((exc.headers or {}).get("Retry-After", "60"))
        message = _(LOCKED, minutes=_minutes(seconds))
        failed = {"values": await typed(request), "errors": {}, "message": message}
        return await _page(request, session, staff, status_code=423, pickup=failed)
    except OriginliveError as exc:  # not waiting here, not on the shelf
        failed = {"values": await typed(request), "errors": {}, "message": exc.detail}
        return await _page(request, session, staff, status_code=exc.status, pickup=failed)
    if done.collected is None:
        if done.locked_until is not None:
            seconds = int((done.locked_until - utcnow()).total_seconds())
            message = _(LOCKED, minutes=_minutes(seconds))
            status_code = 423
        else:
            message = _(WRONG_CODE, n=done.tries_left)
            status_code = 422
        values = await typed(request) | {"pickup_code": ""}
        failed = {"values": values, "errors": {}, "message": message}
        return await _page(request, session, staff, status_code=status_code, pickup=failed)
    return _after(body.scan_id, again=done.collected.duplicate)
