"""Answering on ASGI directly, for the routes in front of FastAPI's stack (the health check,
the flash order, HLS for players, shared pages): what they send is plain bytes with a length
and a few headers."""

from starlette.types import ASGIApp, Receive, Scope, Send


def headers_of(
    body: bytes, media_type: bytes, extra: dict[str, str] | None = None
) -> list[tuple[bytes, bytes]]:
    """A whole response's headers: ``Content-Type``, ``Content-Length``, then ``extra``."""
    headers = [(b"content-type", media_type), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in (extra or {}).items()]
    return headers


async def respond(
    send: Send, status: int, body: bytes, media_type: bytes, extra: dict[str, str] | None = None
) -> None:
    """Send a whole response: the status, ``Content-Type``, ``Content-Length``, then the body."""
    headers = headers_of(body, media_type, extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class HealthRoute:
    """``GET /healthz``: ``{"status": "ok"}`` while the process serves, before anything else
    (a load balancer asks it every few seconds; it needs no routing, nor the database)."""

    PATH = "/healthz"
    BODY = b'{"status":"ok"}'

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == self.PATH and scope["method"] == "GET":
            await respond(send, 200, self.BODY, b"application/json")
            return
        await self.app(scope, receive, send)
