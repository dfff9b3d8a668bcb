"""``POST /api/v1/orders`` for bearer-token buyers, answered before FastAPI's stack.

When an anchor pins an offer, thousands of buyers press "buy" in the same second. Through
FastAPI's routing, dependency injection and a database session per request, one process
answered a few hundred orders a second here; the order itself costs the writer a few tens of
microseconds. So the app (``app.OriginliveApp``) hands every request to this route first,
outside even FastAPI's and our own middleware, which cost as much again as the rest of the
request (py-spy). It takes the common case itself: a bearer token it knows (see
``TokenCache``), an ``Idempotency-Key``, a declared body within the limit that validates. It
calls the same ``service.place_order`` and answers with the same shapes. Anything else,
including every error of the request itself (401, 413, 422, a cookie session), passes
through untouched to the FastAPI route, which stays the one definition of the endpoint in
OpenAPI.
"""

import logging
import re
from typing import Any

import pydantic_core
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from originlive.asgi import respond
from originlive.errors import PROBLEM_MEDIA_TYPE, OriginliveError, internal_error, problem_body
from originlive.orders import schemas, service

log = logging.getLogger(__name__)

PATH = "/api/v1/orders"
_KEY = re.compile(rb"^[\x21-\x7e]{1,100}$")


class FlashOrderRoute:
    """Answers bearer-token order placements directly; passes everything else on to ``app``.

    ``state`` is the application's: its settings, and what the lifespan put there.
    """

    def __init__(self, app: ASGIApp, *, state: Any) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        bearer = key = length = None
        for name, value in scope["headers"]:
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                bearer = value[7:].strip().decode("latin-1")
            elif name == b"idempotency-key":
                key = value
            elif name == b"content-length":
                length = value
        # Only a declared body within the limit is read here: the body limit's middleware,
        # inside, answers the rest (413), and the server holds a body to its declared length.
        within = length and length.isdigit() and int(length) <= self.state.settings.max_body_bytes
        if not (bearer and key and _KEY.match(key) and within):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if not await self._place(bearer, key.decode(), body, send):
            await self.app(scope, _replay(body, receive), send)

    async def _place(self, bearer: str, key: str, body: bytes, send: Send) -> bool:
        state = self.state
        try:
            data = schemas.OrderCreate.model_validate_json(body)
        except ValidationError:
            return False  # FastAPI words the 422
        buyer_id = await state.token_cache.user_id(bearer)
        if buyer_id is None:
            return False  # FastAPI words the 401
        try:
            placed = await service.place_order(
                state.order_placer,
                state.gate,
                buyer_id=buyer_id,
                idempotency_key=key,
                data=data,
                ttl_seconds=state.settings.order_ttl_seconds,
            )
        except OriginliveError as exc:
            await respond(send, exc.status, _problem(exc), PROBLEM_MEDIA_TYPE.encode(), exc.headers)
            return True
        except Exception:  # outside FastAPI's error middleware: our own 500
            log.exception("placing an order failed")
            response = internal_error()
            await respond(send, 500, bytes(response.body), PROBLEM_MEDIA_TYPE.encode(), None)
            return True
        headers = {"Idempotent-Replayed": "true"} if placed.replayed else None
        await respond(send, 201, pydantic_core.to_json(placed.order), b"application/json", headers)
        return True


async def _read_body(receive: Receive) -> bytes:
    """The whole body (BodyLimitMiddleware, outside, bounds it), or what came before a hang-up."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the already-read body to the next app, then defers to the client."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def _problem(exc: OriginliveError) -> bytes:
    body = problem_body(exc.status, exc.title, exc.detail, slug=exc.slug, errors=exc.errors)
    return pydantic_core.to_json(body)
