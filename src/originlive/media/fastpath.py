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

A segment once decided is answered again from ``_hot`` by its URL alone, after one ``stat``
that it is still the same file (a segment never changes once written; an encoder that starts
again may write a new one of the same name): deciding it anew took two thirds of the route's
time (pathlib), 63 µs a segment in-process, 13 µs from ``_hot``. A playlist made for one
viewer is sent to the others for ``PLAYLIST_SECONDS``.
"""

import os
import re
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from originlive.asgi import headers_of, respond
from originlive.errors import OriginliveError
from originlive.inputs import MAX_ID
from originlive.media import hls

_PATH = re.compile(r"/media/(hls|recordings)/([0-9]{1,10})/(.+)")
# Segments of a few rooms' live windows and of recordings being watched: a second of 720p is
# about 100-250 KB, so this keeps a few hundred of them.
MEMORY_BYTES = 64 * 1024 * 1024
HOT_SEGMENTS = 256  # the newest few of a few rooms, at most about as much again as the above
# A live playlist changes once a segment (a second); every viewer asks for it each second.
# What was made for one viewer is sent to the others for this long: a tenth of a second more
# of delay at most, and the window made ten times a second instead of for each of them.
PLAYLIST_SECONDS = 0.1


class HlsRoute:
    """Answers plain GETs of HLS playlists and segments; passes everything else on to ``app``.

    ``state`` is the application's: its ``media`` (where sessions' streams are), put there by
    the lifespan.
    """

    def __init__(self, app: ASGIApp, *, state: Any) -> None:
        self.app = app
        self.state = state
        self.files = hls.Files(MEMORY_BYTES)
        # URL path -> (file, its (mtime, size), the response's headers, body)
        self._hot: OrderedDict[str, tuple[str, tuple[int, int], list[Any], bytes]] = OrderedDict()
        # URL path -> (when it was made, the response's headers, body)
        self._playlists: OrderedDict[str, tuple[float, list[Any], bytes]] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = (
            _PATH.fullmatch(scope["path"])
            if scope["type"] == "http" and scope["method"] == "GET"
            else None
        )
        if match is None or int(match[2]) > MAX_ID or _asks_for_a_range(scope):
            await self.app(scope, receive, send)
            return
        hot = self._hot.get(scope["path"])
        if hot is not None:
            file, stamp, hot_headers, body = hot
            try:
                stat = os.stat(file)
            except FileNotFoundError:
                stat = None
            if stat is not None and (stat.st_mtime_ns, stat.st_size) == stamp:
                start = {"type": "http.response.start", "status": 200, "headers": hot_headers}
                await send(start)
                await send({"type": "http.response.body", "body": body})
                return
            del self._hot[scope["path"]]
        made = self._playlists.get(scope["path"])
        if made is not None and time.monotonic() - made[0] < PLAYLIST_SECONDS:
            await send({"type": "http.response.start", "status": 200, "headers": made[1]})
            await send({"type": "http.response.body", "body": made[2]})
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
        if answer.file is not None and answer.content_type == hls.SEGMENT_TYPE:
            self._keep_hot(scope["path"], answer.file, body, headers)
        elif answer.text is not None:
            self._keep_playlist(scope["path"], answer.content_type, body, headers)
        await respond(send, 200, body, answer.content_type.encode(), headers)

    def _keep_hot(self, url: str, file: Path, body: bytes, extra: dict[str, str]) -> None:
        stamp = self.files.stamp(file)  # what the body was read as
        if stamp is None:
            return
        headers = headers_of(body, hls.SEGMENT_TYPE.encode(), extra)
        self._hot[url] = (str(file), stamp, headers, body)
        while len(self._hot) > HOT_SEGMENTS:
            self._hot.popitem(last=False)

    def _keep_playlist(self, url: str, kind: str, body: bytes, extra: dict[str, str]) -> None:
        headers = headers_of(body, kind.encode(), extra)
        self._playlists[url] = (time.monotonic(), headers, body)
        self._playlists.move_to_end(url)
        while len(self._playlists) > HOT_SEGMENTS:
            self._playlists.popitem(last=False)


def _asks_for_a_range(scope: Scope) -> bool:
    return any(name == b"range" for name, _ in scope["headers"])
