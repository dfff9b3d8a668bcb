"""Answering on ASGI directly, for the routes in front of FastAPI's stack (the flash order,
HLS for players): what they send is plain bytes with a length and a few headers."""

from starlette.types import Send


async def respond(
    send: Send, status: int, body: bytes, media_type: bytes, extra: dict[str, str] | None = None
) -> None:
    """Send a whole response: the status, ``Content-Type``, ``Content-Length``, then the body."""
    headers = [(b"content-type", media_type), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
