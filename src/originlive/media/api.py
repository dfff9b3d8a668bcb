"""HLS of live sessions and their recordings, and the hooks nginx-rtmp or SRS call.

``/media/hls/{id}/index.m3u8`` is the live stream (the last few segments, fetched again every
segment, never cached for longer); once the session has ended it is the whole recording.
``/media/recordings/{id}/index.m3u8`` is the recording only. Segments never change once
written, so they are cached for a day. Names are checked against one pattern before any file
is touched: nothing else under the data folder can be reached.
"""

import asyncio
import hmac
import logging
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import Depends, Query, Request, Response, status
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse

from originlive.catalog.deps import RowId
from originlive.db import SessionDep
from originlive.errors import Forbidden, InvalidInput
from originlive.inputs import json_value, row_id
from originlive.live import control
from originlive.live.deps import RoomHub
from originlive.live.models import LiveSession, SessionStatus
from originlive.media import hls
from originlive.media import service as media
from originlive.media.ffmpeg import PLAYLIST, HlsOptions, Process, hls_command
from originlive.media.ingest import Media
from originlive.routing import Router

log = logging.getLogger(__name__)

router = Router(tags=["media"])


def get_media(request: Request) -> Media:
    """This process's media: streams, playlists, recordings."""
    media_: Media = request.app.state.media
    return media_


MediaDep = Annotated[Media, Depends(get_media)]


def _response(answer: hls.Answer) -> Response:
    headers = {"Cache-Control": answer.cache_control}
    if answer.file is not None:  # ranges too, which the fast route leaves to this
        return FileResponse(answer.file, media_type=answer.content_type, headers=headers)
    return Response(answer.text, media_type=answer.content_type, headers=headers)


@router.get("/media/hls/{session_id}/{path:path}", include_in_schema=False)
async def live_hls(session_id: RowId, path: str, media_: MediaDep) -> Response:
    """The live stream's playlists and segments (the recording once the session has ended);
    plain GETs are answered before this, by ``media.fastpath``, the same way."""
    return _response(hls.live_answer(media_.directory(session_id), path, media_.windows))


@router.get("/media/recordings/{session_id}/{path:path}", include_in_schema=False)
async def recording(session_id: RowId, path: str, media_: MediaDep) -> Response:
    """A finished session's recording: its playlists and segments."""
    return _response(hls.recording_answer(media_.directory(session_id), path))


# Hooks of an external media server (nginx-rtmp's on_publish / on_publish_done /
# on_record_done, or SRS's on_publish / on_unpublish)


async def _hook_fields(request: Request, secret: str | None) -> dict[str, str]:
    """The call's fields, from a form (nginx-rtmp) or JSON (SRS), once its secret is right."""
    expected = request.app.state.settings.media_hook_secret
    if expected is not None and not hmac.compare_digest((secret or "").encode(), expected.encode()):
        raise Forbidden("Wrong or missing hook secret.")
    body = await request.body()
    if _srs(request):
        try:
            data = json_value(body)
        except ValueError as exc:
            raise InvalidInput(f"The body is not JSON: {exc}.") from exc
        if not isinstance(data, dict):
            raise InvalidInput("The body is not a JSON object.")
        # SRS names the stream "stream", nginx-rtmp "name".
        fields = {k: str(v) for k, v in data.items() if isinstance(v, str | int)}
        fields.setdefault("name", fields.get("stream", ""))
        return fields
    return dict(parse_qsl(body.decode("utf-8", "replace")))


def _srs(request: Request) -> bool:
    return request.headers.get("content-type", "").startswith("application/json")


async def _by_id(session: SessionDep, session_id: int, settings: Any) -> LiveSession | None:
    """The session a stream renamed to its id (by nginx-rtmp, on publish) stands for; only a
    caller with the hook secret may name sessions so."""
    if settings.media_hook_secret is None:
        raise Forbidden("Set ORIGINLIVE_MEDIA_HOOK_SECRET to use session ids in hooks.")
    return await session.get(LiveSession, session_id)


async def _by_name(session: SessionDep, name: str, settings: Any) -> LiveSession:
    """The session a stream name stands for: its key, or its id (see :func:`_by_id`)."""
    if (session_id := row_id(name)) is not None:
        live = await _by_id(session, session_id, settings)
    else:
        found = await media.publishable(session, stream_key=name)
        live = None if isinstance(found, str) else found
    if live is None:
        raise Forbidden(f"Unknown stream {name[:8]}...")
    return live


async def _publishable(session: SessionDep, name: str, settings: Any) -> LiveSession | str:
    """The session a publisher may publish to, or why not: by its stream key, or by its id
    (nginx-rtmp's second application, which takes the stream once renamed; with the secret
    only). The same rules either way: not ended, the shop approved."""
    session_id = row_id(name)
    if session_id is None:
        return await media.publishable(session, stream_key=name)
    live = await _by_id(session, session_id, settings)
    if live is None:
        return "unknown session"
    return await media.publishable(session, stream_key=live.stream_key)


@router.post("/api/v1/media/hooks/publish", tags=["media"])
async def hook_publish(
    request: Request,
    session: SessionDep,
    hub: RoomHub,
    secret: Annotated[str | None, Query()] = None,
) -> Response:
    """A publisher with a stream key: 403 unless the key is a live or scheduled session's of
    an approved shop. The session goes live; nginx-rtmp is told to name the stream by the
    session's id (a redirect), so that the key never shows in a playback address. A stream
    already named by a session's id (nginx-rtmp handing it on) is let through (200) under the
    same rules."""
    fields = await _hook_fields(request, secret)
    name = fields.get("name", "")
    found = await _publishable(session, name, request.app.state.settings)
    if isinstance(found, str):
        log.info("media hook: publish refused: %s", found)
        raise Forbidden(f"Publishing refused: {found}.")
    if found.status == SessionStatus.SCHEDULED:
        await control.go_live(session, hub, live=found)
    await media.connected(session, live=found)
    if _srs(request) or row_id(name) is not None:
        return JSONResponse({"code": 0})
    return RedirectResponse(str(found.id), status_code=status.HTTP_302_FOUND)


@router.post("/api/v1/media/hooks/publish-done", tags=["media"])
async def hook_publish_done(
    request: Request,
    session: SessionDep,
    secret: Annotated[str | None, Query()] = None,
) -> Response:
    """The publisher stopped: the session ends unless it is back within the grace period."""
    fields = await _hook_fields(request, secret)
    live = await _by_name(session, fields.get("name", ""), request.app.state.settings)
    await media.dropped(session, session_id=live.id)
    return JSONResponse({"code": 0})


@router.post("/api/v1/media/hooks/record-done", tags=["media"])
async def hook_record_done(
    request: Request,
    session: SessionDep,
    media_: MediaDep,
    secret: Annotated[str | None, Query()] = None,
) -> Response:
    """nginx-rtmp finished recording a stream to an FLV file: it is cut into the session's
    recording (after what earlier streams of the session recorded)."""
    if request.app.state.settings.media_hook_secret is None:
        raise Forbidden("Set ORIGINLIVE_MEDIA_HOOK_SECRET to take recordings from hooks.")
    fields = await _hook_fields(request, secret)
    live = await _by_name(session, fields.get("name", ""), request.app.state.settings)
    source = Path(fields.get("path", ""))
    if source.suffix != ".flv" or not await asyncio.to_thread(source.is_file):
        raise InvalidInput("No recorded FLV file at that path.", field="path")
    media_.spawn(_add_recording(media_, live.id, source))
    return JSONResponse({"code": 0}, status_code=status.HTTP_202_ACCEPTED)


async def _add_recording(media_: Media, session_id: int, source: Path) -> None:
    directory = media_.directory(session_id)
    directory.mkdir(parents=True, exist_ok=True)
    resume = (directory / PLAYLIST).exists()
    options = HlsOptions(segment_seconds=2)
    argv = hls_command(media_.binary, directory, options, resume=resume, source=str(source))
    process = Process(argv, name=f"recording of session {session_id}")
    await process.start()
    if await process.wait() == 0:
        await media_.finish_recording(session_id)
