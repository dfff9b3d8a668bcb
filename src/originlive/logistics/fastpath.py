"""``POST /api/v1/scans`` for bearer-token station staff, answered before FastAPI's stack.

Twenty stations' phones scan at once, a scan a second each and more when a truck is
unloaded. Through FastAPI's routing, its dependencies and a database session per request
(the token's user and roles, the staff's node, then the commit) one process answered a few
hundred scans a second here, most of the time in the session. So, as ``orders.fastpath``
does for orders, the app (``app.OriginliveApp``) hands the route's requests here first. It
takes the common case itself: a bearer token the token cache knows (``TokenCache``), a
caller who is a node's staff (``StaffNodes``, below), a declared JSON body within the limit
that validates as ``schemas.ScanCreate``. It records the scan with the same
:func:`record` as the FastAPI route and answers with the same shapes: the scan's result, or
the rule's refusal as problem JSON. Everything else, every error of the request itself
(401, 403, 413, 422, malformed JSON, a cookie session and its CSRF check), passes through
untouched to the FastAPI route in ``logistics.api``, which stays the one definition of the
endpoint in OpenAPI.
"""

import logging
import time
from collections import OrderedDict
from typing import Any

import pydantic_core
from pydantic import ValidationError
from sqlalchemy import Connection
from starlette.types import ASGIApp, Receive, Scope, Send

from originlive import rawsql
from originlive.accounts.models import Role
from originlive.asgi import respond
from originlive.batching import OrderWriter, Runner
from originlive.db import utcnow
from originlive.errors import PROBLEM_MEDIA_TYPE, domain_error, internal_error, problem_body
from originlive.logistics import schemas, service, tracking
from originlive.orders.fastpath import _read_body, _replay

log = logging.getLogger(__name__)

PATH = "/api/v1/scans"


async def record(
    writer: OrderWriter, body: schemas.ScanCreate, *, node_id: int, actor_id: int
) -> tuple[int, schemas.ScanResult]:
    """Record a scan by a node's staff: the answer's status (200 when every parcel's event
    was recorded before, else 201) and body. The FastAPI route's and the fast path's."""
    scan = tracking.Scan(
        scan_id=body.scan_id,
        status=body.status,
        happened_at=body.happened_at,
        reason=body.reason,
        shelf=body.shelf,
        layer=body.layer,
    )
    where = {"scan": scan, "node_id": node_id, "actor_id": actor_id, "now": utcnow()}
    if body.parcel_code is not None:
        done = [await writer.run(tracking.scan_parcel, code=body.parcel_code, **where)]
    else:
        done = await writer.run(tracking.scan_bag, seal=body.bag_seal, **where)
    status = 200 if done and all(d.duplicate for d in done) else 201
    recorded = [
        schemas.ScanRecorded(
            event_id=d.event_id,
            parcel_code=d.parcel_code,
            status=d.status,
            duplicate=d.duplicate,
            off_route=d.off_route,
            clock_off=d.clock_off,
            pickup_code=None,
        )
        for d in done
    ]
    return status, schemas.ScanResult(recorded=recorded)


class StaffNodes:
    """User id -> the node whose staff the user is (None: not a station account), for
    ``ttl_seconds`` at most, looked up on the reader when not known.

    A change of staff in this process (``service.add_staff``) empties it at once; other
    processes notice within the TTL (as with ``TokenCache``). Asking the reader on every scan
    instead measured 3,850 scans/s (p99 9.7 ms) against 3,900 to 4,250 (p99 7 to 9 ms) with it
    (``bench/delivery.py``, 20 stations).
    """

    def __init__(
        self, reader: Runner, *, ttl_seconds: float = 10.0, max_entries: int = 10_000
    ) -> None:
        self.reader = reader
        self._ttl = ttl_seconds
        self._max = max_entries
        self._entries: OrderedDict[int, tuple[int | None, float]] = OrderedDict()
        self._changes = service.staff_changes()

    async def node_id(self, user_id: int) -> int | None:
        changes = service.staff_changes()
        if changes != self._changes:
            self._entries.clear()
            self._changes = changes
        entry = self._entries.get(user_id)
        now = time.monotonic()
        if entry is not None and entry[1] > now:
            return entry[0]
        node_id = await self.reader.run(_staff_node, user_id=user_id)
        if service.staff_changes() == changes:  # not a node read from before a change
            self._entries[user_id] = (node_id, now + self._ttl)
            self._entries.move_to_end(user_id)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return node_id


def _staff_node(conn: Connection, *, user_id: int) -> int | None:
    """The node of a station account (one with the station role and a node), or None."""
    row = rawsql.execute(
        conn,
        "SELECT delivery_node_staff.node_id FROM delivery_node_staff"
        " JOIN user_roles ON user_roles.user_id = delivery_node_staff.user_id"
        " AND user_roles.role = :role"
        " WHERE delivery_node_staff.user_id = :user_id",
        role=Role.STATION.value,
        user_id=user_id,
    ).fetchone()
    return None if row is None else int(row[0])


def _json(content_type: bytes | None) -> bool:
    """Whether FastAPI would read the body as JSON: no type, or ``application/json`` or
    ``application/...+json``."""
    if content_type is None:
        return True
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (
        media.startswith(b"application/") and media.endswith(b"+json")
    )


class ScanRoute:
    """Answers bearer-token scans by station staff directly; passes everything else on to
    ``app``. ``state`` is the application's: its settings, and what the lifespan put there."""

    def __init__(self, app: ASGIApp, *, state: Any) -> None:
        self.app = app
        self.state = state
        self._staff: StaffNodes | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        bearer = length = content_type = None
        for name, value in scope["headers"]:
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                bearer = value[7:].strip().decode("latin-1")
            elif name == b"content-length":
                length = value
            elif name == b"content-type":
                content_type = value
        # Only a declared body within the limit is read here: the body limit's middleware,
        # inside, answers the rest (413), and the server holds a body to its declared length.
        within = length and length.isdigit() and int(length) <= self.state.settings.max_body_bytes
        if not (bearer and within and _json(content_type)):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if not await self._scan(bearer, body, send):
            await self.app(scope, _replay(body, receive), send)

    def _staff_nodes(self) -> StaffNodes:
        reader: Runner = self.state.reader  # the lifespan's (a new one if it ran again)
        if self._staff is None or self._staff.reader is not reader:
            self._staff = StaffNodes(reader)
        return self._staff

    async def _scan(self, bearer: str, body: bytes, send: Send) -> bool:
        state = self.state
        try:
            data = schemas.ScanCreate.model_validate_json(body)
        except ValidationError:
            return False  # FastAPI words the 400 or 422
        user_id = await state.token_cache.user_id(bearer)
        if user_id is None:
            return False  # FastAPI words the 401
        node_id = await self._staff_nodes().node_id(user_id)
        if node_id is None:
            return False  # FastAPI words the 403
        try:
            status, result = await record(
                state.order_writer, data, node_id=node_id, actor_id=user_id
            )
        except Exception as exc:
            error = domain_error(exc)
            if error is None:  # outside FastAPI's error middleware: our own 500
                log.exception("recording a scan failed")
                response = internal_error()
                await respond(send, 500, bytes(response.body), PROBLEM_MEDIA_TYPE.encode())
                return True
            problem = problem_body(
                error.status, error.title, error.detail, slug=error.slug, errors=error.errors
            )
            await respond(
                send,
                error.status,
                pydantic_core.to_json(problem),
                PROBLEM_MEDIA_TYPE.encode(),
                error.headers,
            )
            return True
        await respond(send, status, pydantic_core.to_json(result), b"application/json")
        return True
