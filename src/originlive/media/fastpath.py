"""HLS for players, answered before FastAPI's stack.

When a room goes live, every viewer fetches the playlist and the newest segment each second:
two thousand viewers are four thousand requests a second for a handful of files. Through
FastAPI's routing, dependencies and ``FileResponse`` (a thread per file) one process served
about 275 segments a second here. So the app hands every request to this route first
(``app.OriginliveApp``): a plain ``GET`` of a live or recorded stream's playlist or segment
is decided as the FastAPI routes decide it (``hls.live_answer``, ``hls.recording_answer``)
and sent from memory (``hls.Files``). Anything else passes through untouched to those
routes, which stay the one definition of the endpoints: ranges (ffprobe and some players ask
for them) and every refusal (404 and the like, worded there).
"""

import re
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from originlive.asgi import respond
from originlive.errors import OriginliveError
from originlive.inputs import MAX_ID
from originlive.media import hls

_PATH = re.compile(r"/media/(hls|recordings)/([0-9]{1,10})/(.+)")
# Segments of a few rooms' live windows and of recordings being watched: a second of 720p is
# about 100-250 KB, so this keeps a few hundred of them.
MEMORY_BYTES = 64 * 1024 * 1024


class HlsRoute:
    """Answers plain GETs of HLS playlists and segments; passes everything else on to ``app``.

    ``state`` is the application's: its ``media`` (where sessions' streams are), put there by
    the lifespan.
    """

    def __init__(self, app: ASGIApp, *, state: Any) -> None:
        self.app = app
        self.state = state
        self.files = hls.Files(MEMORY_BYTES)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = (
            _PATH.fullmatch(scope["path"])
            if scope["type"] == "http" and scope["method"] == "GET"
            else None
        )
        if match is None or int(match[2]) > MAX_ID or _asks_for_a_range(scope):
            await self.app(scope, receive, send)
            return
        kind, session_id, path = match[1], int(match[2]), match[3]
        media = self.state.media
        directory = media.directory(session_id)
        try:
            if kind == "hls":
                answer = hls.live_answer(directory, path, media.windows)
            else:
                answer = hls.recording_answer(directory, path)
            body = (
                self.files.read(answer.file)
                if answer.file is not None
                else (answer.text or "").encode()
            )
        except (OriginliveError, FileNotFoundError):  # FastAPI words the refusal
            await self.app(scope, receive, send)
            return
        headers = {"cache-control": answer.cache_control}
        await respond(send, 200, body, answer.content_type.encode(), headers)


def _asks_for_a_range(scope: Scope) -> bool:
    return any(name == b"range" for name, _ in scope["headers"])
