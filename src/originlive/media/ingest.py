"""Video of live sessions: streams in, HLS out, sessions live and ended with their streams.

``Media`` runs in the app's lifespan. In both modes it ends the sessions whose encoder stayed
away past the grace period. In the embedded mode it also takes RTMP itself
(:mod:`originlive.media.rtmp`) and feeds each accepted stream, as FLV, to a supervised ffmpeg
that writes the session's HLS; in the external mode nginx-rtmp or SRS take the streams and
call the hooks (:mod:`originlive.media.api`), and nginx-rtmp is told to drop a publisher whose
session was ended or whose key was rotated (:meth:`Media.put_out`).
"""

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from originlive.batching import OrderWriter
from originlive.db import transaction, utcnow
from originlive.live import control
from originlive.live.models import LiveSession, SessionStatus
from originlive.live.rooms import Hub
from originlive.media import hls, rtmp
from originlive.media import service as media
from originlive.media.broadcast import DemoBroadcast
from originlive.media.ffmpeg import PLAYLIST, HlsOptions, Process, ffmpeg_binary, hls_command
from originlive.orders.gate import Gate
from originlive.settings import Settings

log = logging.getLogger(__name__)

APP = "live"  # rtmp://HOST:PORT/live/STREAM_KEY
CONTROL_TIMEOUT_SECONDS = 2.0  # nginx on loopback answers at once, or not at all
RESTARTS = 5  # ffmpeg may fail this many times a minute before the stream is put out
TICK_SECONDS = 1.0


class TooManyRestarts(rtmp.ProtocolError):
    """ffmpeg keeps failing on this stream."""


class Stream:
    """An accepted publisher's media on its way into ffmpeg; ffmpeg restarted if it fails."""

    def __init__(self, owner: "Media", live: LiveSession, connection: rtmp.RtmpConnection):
        self.owner = owner
        self.session_id = live.id
        self.stream_key = live.stream_key
        self.connection = connection
        self.directory = owner.directory(live.id)
        self.process: Process | None = None
        self.headers: dict[tuple[int, bool], bytes] = {}  # metadata and codec configurations
        self.failures: deque[float] = deque(maxlen=RESTARTS)
        self.need_keyframe = False

    async def start(self) -> None:
        """Start ffmpeg, going on with what an earlier stream of the session left."""
        self.directory.mkdir(parents=True, exist_ok=True)
        resume = any(
            (self.directory / v / PLAYLIST).exists() for v in hls.variants_of(self.directory)
        )
        argv = hls_command(self.owner.binary, self.directory, self.owner.options, resume=resume)
        self.process = Process(argv, name=f"ffmpeg of session {self.session_id}", stdin=True)
        await self.process.start()
        await self.process.write(rtmp.FLV_HEADER)
        for tag in self.headers.values():
            await self.process.write(tag)

    async def media(self, kind: int, timestamp: int, payload: bytes) -> None:
        """Hand one message on as an FLV tag."""
        tag = rtmp.flv_tag(kind, timestamp, payload)
        if kind == rtmp.DATA_AMF0 or rtmp.is_sequence_header(kind, payload):
            self.headers[(kind, kind == rtmp.DATA_AMF0)] = tag
        elif kind == rtmp.VIDEO and self.need_keyframe:
            if not rtmp.is_keyframe(payload):
                return  # after a restart, pictures before a keyframe would not decode
            self.need_keyframe = False
        assert self.process is not None
        try:
            await self.process.write(tag)
        except (BrokenPipeError, ConnectionResetError):
            await self._restart()

    async def _restart(self) -> None:
        assert self.process is not None
        await self.process.wait()
        now = time.monotonic()
        self.failures.append(now)
        if len(self.failures) == RESTARTS and now - self.failures[0] < 60:
            raise TooManyRestarts(f"ffmpeg failed {RESTARTS} times in a minute")
        log.warning("restarting the ffmpeg of session %s", self.session_id)
        self.need_keyframe = True
        await self.start()

    async def close(self) -> None:
        """The publisher has gone: ffmpeg finishes its segments; the grace period starts."""
        if self.process is not None:
            await self.process.stop()
        await self.owner.stream_closed(self)


class Media:
    """Streams, their sessions and their recordings, for the life of the app."""

    def __init__(
        self,
        *,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        hub: Hub,
        writer: OrderWriter,
        gate: Gate,
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.hub = hub
        self.writer = writer
        self.gate = gate
        self.options = HlsOptions(
            segment_seconds=settings.hls_segment_seconds, renditions=settings.renditions
        )
        self.binary = ffmpeg_binary(settings.ffmpeg)
        self.windows = hls.LiveWindows(settings.hls_live_segments)
        self.streams: dict[int, Stream] = {}
        self.server: rtmp.RtmpServer | None = None
        self.rtmp_port: int | None = None
        self._locks: dict[int, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self.demo: DemoBroadcast | None = None

    @property
    def embedded(self) -> bool:
        """Whether this process takes the streams (and keeps their recordings) itself."""
        return self.server is not None

    async def start(self) -> None:
        """Listen for publishers (embedded mode) and start ending abandoned sessions."""
        self.settings.hls_dir.mkdir(parents=True, exist_ok=True)
        if self.settings.media_mode == "embedded":
            server = rtmp.RtmpServer(self.authorize)
            host = self.settings.rtmp_host or self.settings.host
            try:
                self.rtmp_port = await server.start(host, self.settings.rtmp_port)
            except OSError as exc:
                # Another worker process of this platform took the port: it runs the ingest.
                log.warning(
                    "RTMP ingest not started here (%s:%s: %s)", host, self.settings.rtmp_port, exc
                )
            else:
                self.server = server
                async with transaction(self.sessionmaker) as session:
                    lost = await media.lost_streams(session)
                if lost:
                    log.warning("%s streams were cut by a restart; their grace period runs", lost)
                log.info("RTMP ingest on %s:%s", host, self.rtmp_port)
                if self.settings.demo_broadcast:
                    local = "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104
                    self.demo = DemoBroadcast(
                        binary=self.binary,
                        rtmp_url=f"rtmp://{local}:{self.rtmp_port}/{APP}",
                        sessionmaker=self.sessionmaker,
                        folder=self.settings.data_dir,
                    )
                    await self.demo.start()
        self._sweeper = asyncio.create_task(self._sweep_forever())

    async def close(self) -> None:
        """Put publishers out (their ffmpeg finishing its files) and stop."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self.demo is not None:
            await self.demo.close()
        if self.server is not None:
            await self.server.close()
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await task

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run work in the background, awaited on shutdown."""
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # Publishing (embedded)

    async def authorize(
        self, request: rtmp.PublishRequest, connection: rtmp.RtmpConnection
    ) -> rtmp.Publication | str:
        """Accept a publisher with a live or scheduled session's stream key; it goes live."""
        if request.app != APP:
            return f"publish to rtmp://HOST:PORT/{APP}/STREAM_KEY"
        async with transaction(self.sessionmaker) as session:
            live = await media.publishable(session, stream_key=request.name)
        if isinstance(live, str):
            return live
        async with self._locks.setdefault(live.id, asyncio.Lock()):
            previous = self.streams.get(live.id)
            if previous is not None:
                # The same key again: the encoder reconnected before its old connection timed
                # out (phones on weak networks). The newest one publishes.
                log.info("session %s: a new publisher replaces the old one", live.id)
                await previous.connection.close()
            async with transaction(self.sessionmaker) as session:
                live = await media.publishable(session, stream_key=request.name)
                if isinstance(live, str):
                    return live
                if live.status == SessionStatus.SCHEDULED:
                    await control.go_live(session, self.hub, live=live)
                await media.connected(session, live=live)
            stream = Stream(self, live, connection)
            self.streams[live.id] = stream
            try:
                await stream.start()
            except Exception:
                log.exception("session %s: ffmpeg could not be started", live.id)
                await self.stream_closed(stream)  # its grace period, as for a dropped stream
                return "the platform could not start its transcoder"
            log.info("session %s: publishing from %s", live.id, request.peer)
            return stream

    async def stream_closed(self, stream: Stream) -> None:
        """A publisher went: the grace period starts (if the session ended instead, the sweep
        finishes its recording)."""
        if self.streams.get(stream.session_id) is stream:
            del self.streams[stream.session_id]
        async with transaction(self.sessionmaker) as session:
            await media.dropped(session, session_id=stream.session_id)

    # Ending sessions and finishing recordings

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("media sweep failed")
            await asyncio.sleep(TICK_SECONDS)

    async def sweep(self) -> None:
        """End the sessions whose encoder stayed away past the grace period; put out publishers
        whose session ended or whose key was rotated; finish recordings."""
        cutoff = utcnow() - timedelta(seconds=self.settings.reconnect_grace_seconds)
        async with transaction(self.sessionmaker) as session:
            overdue = await media.overdue(session, dropped_before=cutoff)
        for session_id in overdue:
            async with transaction(self.sessionmaker) as session:
                live = await media.claim_overdue(
                    session, session_id=session_id, dropped_before=cutoff
                )
                if live is None:
                    continue
                log.info("session %s: the encoder did not come back; ended", session_id)
                await control.end(session, self.hub, self.writer, self.gate, live=live)
        if not self.embedded:
            return
        if self.streams:
            async with transaction(self.sessionmaker) as session:
                states = await media.streams_of(session, list(self.streams))
            for session_id, (status, key) in states.items():
                stream = self.streams.get(session_id)
                if stream is None:
                    continue
                if status == SessionStatus.ENDED:
                    await stream.connection.refuse(
                        "NetStream.Publish.Stop", "The session has ended."
                    )
                elif key != stream.stream_key:
                    await stream.connection.refuse(
                        "NetStream.Publish.BadName", "The stream key was changed."
                    )
        async with transaction(self.sessionmaker) as session:
            unrecorded = await media.unrecorded(session)
        for session_id in unrecorded:
            if session_id not in self.streams:
                await self.finish_recording(session_id)

    async def finish_recording(self, session_id: int) -> float:
        """Write the ended session's recording playlists; its length in seconds."""
        seconds = await asyncio.to_thread(hls.finish_recording, self.directory(session_id))
        async with transaction(self.sessionmaker) as session:
            await media.recorded(session, session_id=session_id, seconds=seconds)
        log.info("session %s: recording of %.1f s ready", session_id, seconds)
        return seconds

    # Putting publishers out (external)

    async def put_out(self, session_id: int) -> None:
        """After the session has ended or its key was rotated (committed): in the external
        mode, have nginx-rtmp drop the session's publisher now, as the sweep does in the
        embedded one. Best effort: a failure is logged, and the encoder then streams on until
        it stops by itself. (nginx's on_publish_done then calls in: a rotated key's session
        has its grace period to come back with the new key.)

        nginx-rtmp's control module drops it in application ``live``, where the encoder
        publishes, by its name there: the session's id, once the publish hook renamed it.
        Its push to ``session`` ends with it. Dropping the push in ``session`` alone would not
        do: ``live`` pushes again a few seconds later, and the encoder streams on."""
        url = self.settings.media_control_url
        if self.settings.media_mode != "external" or not url:
            return
        params = {"app": APP, "name": str(session_id)}  # nginx's application is "live" too
        try:
            # trust_env=False: straight to nginx on loopback, never through a proxy.
            async with httpx.AsyncClient(
                timeout=CONTROL_TIMEOUT_SECONDS, trust_env=False
            ) as client:
                answer = await client.get(f"{url.rstrip('/')}/drop/publisher", params=params)
        except Exception as exc:  # never the request's failure: it has committed
            log.warning(
                "session %s: nginx could not be asked to drop its publisher: %r", session_id, exc
            )
            return
        if answer.status_code != 200:
            log.warning(
                "session %s: nginx refused to drop its publisher: %s %s",
                session_id,
                answer.status_code,
                answer.text[:200],
            )
        elif answer.text.strip() == "0":
            log.info("session %s: no publisher at nginx to drop", session_id)
        else:
            log.info("session %s: nginx dropped its publisher", session_id)

    def directory(self, session_id: int) -> Path:
        """Where a session's HLS and recording are."""
        return self.settings.hls_dir / str(session_id)
