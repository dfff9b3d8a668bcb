"""A bare ASGI app, the anchor of the benches' ratios: what uvicorn alone does here.

Every path answers the same small JSON, except ``/bytes``, which answers a constant body the
size of a one-second demo segment (for the load generator's own ceiling on bytes).

    uvicorn bench.bare:app
"""

import subprocess
import sys
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]

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


def start(port: int, log: IO[bytes]) -> subprocess.Popen[bytes]:
    """This app under uvicorn on the port, as the benches' servers run (no access log), its
    output to ``log``."""
    command = [
        sys.executable, "-m", "uvicorn", "bench.bare:app", "--port", str(port),
        "--log-level", "warning", "--no-access-log", "--no-server-header",
    ]  # fmt: skip
    return subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
