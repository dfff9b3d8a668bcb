"""A bare ASGI app, the anchor of bench/surge.py's ratios: what uvicorn alone does here.

Every path answers the same small JSON, except ``/bytes``, which answers a constant body the
size of a one-second demo segment (for the load generator's own ceiling on bytes).

    uvicorn bench.bare:app
"""

from typing import Any

BODY = b'{"status":"ok"}'
BYTES = b"\0" * 90_000  # about a one-second segment of the demo's 600 kb/s picture and sound
_JSON = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]
_OCTETS = [(b"content-type", b"video/mp2t"), (b"content-length", str(len(BYTES)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answer any HTTP request at once (and lifespan's start and stop)."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    big = scope["path"] == "/bytes"
    await send({"type": "http.response.start", "status": 200, "headers": _OCTETS if big else _JSON})
    await send({"type": "http.response.body", "body": BYTES if big else BODY})
