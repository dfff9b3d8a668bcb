"""The room socket, ``/ws/live/{session_id}``: anyone may watch; chatting needs a login.

It sits in front of FastAPI's stack (``app.OriginliveApp``), as the order route does, so that
it receives the ASGI server's own ``send``: from it the socket's transport is taken, and the
hub writes each event's frame straight to it (``rooms.Viewer``). Under another server it
falls back to ASGI messages.

A login is the API's bearer token as ``?token=``, or the web pages' session cookie; a cookie
counts only from a page of this platform (the ``Origin`` header names this host), since a
browser sends it from any site.
"""

import asyncio
import logging
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pydantic_core
from redis.exceptions import RedisError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from originlive.accounts import service as accounts
from originlive.accounts.deps import SESSION_COOKIE
from originlive.accounts.models import TokenKind, User
from originlive.errors import Busy
from originlive.inputs import MAX_ID, json_value
from originlive.live.models import SanctionKind
from originlive.live.rooms import Hub, Room, Viewer, frame
from originlive.text import comment

log = logging.getLogger(__name__)

_PATH = re.compile(r"/ws/live/([0-9]{1,10})")
MAX_MESSAGE = 4096  # bytes of one message from a viewer
MAX_COMMENT = 200  # characters


class RedactTokens(logging.Filter):
    """Keeps bearer tokens given as ``?token=`` out of the logs: uvicorn logs each socket's
    path with its query ("WebSocket /ws/live/1?token=..." [accepted]) at info level."""

    _TOKEN = re.compile(r"(token=)[^&\s\"']+")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "token=" in message:
            record.msg, record.args = self._TOKEN.sub(r"\1[redacted]", message), ()
        return True


def redact_tokens_in_server_logs() -> None:
    """Add ``RedactTokens`` to uvicorn's loggers (once)."""
    for name in ("uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())


class _Refused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        self.status = status
        self.detail = detail


class LiveRoomRoute:
    """Answers the room sockets; everything else goes to the app behind it."""

    def __init__(self, app: ASGIApp, *, state: Any) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = _PATH.fullmatch(scope["path"]) if scope["type"] == "websocket" else None
        if match is None:
            await self.app(scope, receive, send)
            return
        if (await receive())["type"] != "websocket.connect":
            return
        try:
            await self._serve(int(match[1]), scope, receive, send)
        except _Refused as exc:
            await _refuse(send, exc.status, exc.detail)
        except PoolTimeout:  # reading the room or the viewer, before the socket is accepted
            await _refuse(send, Busy.status, Busy().detail)

    async def _serve(self, session_id: int, scope: Scope, receive: Receive, send: Send) -> None:
        hub: Hub = self.state.hub
        room = await hub.room(session_id) if session_id <= MAX_ID else None
        if room is None:
            raise _Refused(404, f"No live session {session_id}.")
        user = await self._user(scope)
        if user is not None and room.sanctioned(user.id, SanctionKind.BAN):
            raise _Refused(403, "You are banned from this room.")
        await send({"type": "websocket.accept"})
        viewer = Viewer(
            user_id=user.id if user else None,
            name=user.display_name if user else None,
            transport=_transport(send),
            send=send,
            lagging=hub.lagging,
        )
        room = await hub.join(room, viewer)
        try:
            while True:
                message = await receive()
                if message["type"] != "websocket.receive":
                    break
                try:
                    await self._said(hub, room, viewer, message)
                except Exception:  # one message's failure, of ours: its sender is told, no more
                    log.exception("room %d: a viewer's message could not be handled", room.id)
                    _tell(viewer, "server_error")
        finally:
            hub.leave(room, viewer)

    async def _user(self, scope: Scope) -> User | None:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        token = (query.get("token") or [""])[0]
        cookie = _cookie(scope) if not token else None
        if not token and not cookie:
            return None
        async with self.state.sessionmaker() as session:
            if token:
                user = await accounts.user_for_token(session, token=token, kind=TokenKind.API)
                if user is None:
                    raise _Refused(401, "The token is invalid or has expired.")
                return user
            assert cookie is not None
            if not _same_origin(scope):
                raise _Refused(403, "A session cookie counts only from this platform's pages.")
            return await accounts.user_for_token(session, token=cookie, kind=TokenKind.SESSION)

    async def _said(self, hub: Hub, room: Room, viewer: Viewer, message: Message) -> None:
        raw = message.get("text") or message.get("bytes") or b""
        error = None
        try:
            said = json_value(raw, max_bytes=MAX_MESSAGE)
            kind = said.get("type") if isinstance(said, dict) else None
        except ValueError:  # not JSON, too long or deep, a lone surrogate in a comment
            kind = None
        if kind == "comment":
            text = comment(said.get("text"), max_length=MAX_COMMENT)
            if text is None:
                error = "bad_message"
            else:
                try:
                    error = await hub.comment(room, viewer, text)
                except RedisError:  # the room stays open; this comment is not said
                    log.warning("a comment could not be published: Redis is unavailable")
                    error = "unavailable"
        elif kind == "like":
            count = said.get("count", 1)
            if isinstance(count, int) and not isinstance(count, bool) and 1 <= count <= 100:
                hub.like(room, viewer, count)
            else:
                error = "bad_message"
        else:
            error = "bad_message"
        if error is not None:
            _tell(viewer, error)


def _tell(viewer: Viewer, error: str) -> None:
    """Send the viewer alone an error: ``{"type": "error", "code": ..., "detail": ...}``."""
    data = pydantic_core.to_json({"type": "error", "code": error, "detail": _DETAIL[error]})
    viewer.push(data, frame(data))


_DETAIL = {
    "bad_message": 'Send {"type": "comment", "text": "..."} (at most 200 characters, none of '
    'them invisible or control characters) or {"type": "like", "count": 1..100}.',
    "login_required": "Log in to chat.",
    "room_closed": "The session has ended.",
    "banned": "You are banned from this room.",
    "muted": "You are muted in this room for now.",
    "rate_limited": "Too many comments; wait a moment.",
    "banned_word": "The comment holds a word that is not allowed here.",
    "unavailable": "The room cannot take comments this moment; try again shortly.",
    "server_error": "That message failed on our side; the room goes on.",
}


def _transport(send: Send) -> asyncio.Transport | None:
    """The socket's transport, when ``send`` is uvicorn's own protocol's (which writes each
    frame with one ``write``, so frames written beside it never interleave)."""
    protocol = getattr(send, "__self__", None)
    if type(protocol).__module__.startswith("uvicorn.protocols.websockets"):
        transport = getattr(protocol, "transport", None)
        if hasattr(transport, "get_write_buffer_size"):
            return transport
    return None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _cookie(scope: Scope) -> str | None:
    header = _header(scope, b"cookie") or ""
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == SESSION_COOKIE and value:
            return value
    return None


def _same_origin(scope: Scope) -> bool:
    origin, host = _header(scope, b"origin"), _header(scope, b"host")
    return origin is not None and host is not None and urlsplit(origin).netloc == host


async def _refuse(send: Send, status: int, detail: str) -> None:
    """Accept, say why not, and close with 4000 + the HTTP status (4401, 4403, 4404, 4503): a
    browser's WebSocket shows the close code and reason, never a refused handshake's status."""
    await send({"type": "websocket.accept"})
    code = {401: "not_authenticated", 403: "forbidden", 404: "not_found", 503: "busy"}[status]
    error = {"type": "error", "code": code, "detail": detail}
    await send({"type": "websocket.send", "text": pydantic_core.to_json(error).decode()})
    await send({"type": "websocket.close", "code": 4000 + status, "reason": detail[:120]})
