"""Video (issue 5): how soon a stream plays, and how far behind the anchor a viewer is.

Starts ``originlive serve`` (one process, embedded RTMP ingest on a free port, a temporary
data folder, SQLite), makes a merchant with an approved shop through the API, and publishes
to it as an anchor's encoder would: ffmpeg, in real time, a 1280x720 25 fps test picture
(testsrc2) and a tone, libx264 veryfast/zerolatency with a keyframe every second, AAC, FLV
over RTMP. ``-readrate_initial_burst 0.001``: a camera cannot send its first half second
ahead of time, and ffmpeg's default burst (0.5 s; ``0`` also means the default) would send the
first 13 pictures at once, the first segment complete half a second early.

1. Time to first playable segment, ``--runs`` times, a new session each: from starting the
   publisher process (its own start-up included, as an anchor's "go live" would) until the
   live playlist (``/media/hls/{id}/index.m3u8``) answers 200 and the newest segment it
   lists has been downloaded; that download must decode (else polling goes on and the
   failure is counted). The playlist is polled every 50 ms. The time is also split at the
   clock burned into the stream's first picture (read from that first segment): the
   publisher's own start-up, then picture to playable segment (one segment's worth of
   pictures, then the ingest, the cutting and the download).

2. Glass-to-glass: the publisher burns the wall clock into each picture when the picture is
   made (drawtext ``%{localtime:%s.%3N}``, epoch seconds with milliseconds, white on a black
   box, top left; in the output filter, so after ``-re`` has released the frame). At random
   moments 0.25 to 0.75 s apart for ``--seconds`` (after 2 s of publishing unmeasured; evenly
   spaced polls would catch the once-a-second segments at the same two moments of their
   life every time), the bench fetches the live playlist and its newest segment, decodes
   the segment's last picture, crops the box, reads the clock back with tesseract (digits
   only, ``--psm 7``) and records the edge delay: the time the download finished minus the
   clock in that picture. That is the freshest picture any player could show at that
   moment. Every poll is a sample, the same segment read twice included (its picture is
   older by then, as it is for a player): the samples are the delay at random moments,
   whose mean is the time-averaged edge delay. Reads that do not parse, or are absurd
   (before the publisher started, after the download, older than a segment seen earlier,
   or over 30 s behind), are rejected and counted. A segment is listed once the next
   keyframe reaches the server's ffmpeg, so the edge delay runs from about 0.1 s (encoding,
   RTMP, cutting, HTTP: a segment just listed) to a segment's length more, just before the
   next one: its mean is about half a segment plus that 0.1 s.

   The player delay is estimated, not measured: hls.js by default plays
   ``liveSyncDurationCount`` (3) target durations behind the live edge, so the edge delay
   plus 3 x ``#EXT-X-TARGETDURATION`` of the playlist (decoding and display not counted).

   Before the server starts, the clock is checked: the same source and drawtext write raw
   pictures to a pipe; the time each picture arrives minus the clock burned into it must be
   small and steady (measured: one picture interval, 40 ms, from ffmpeg's own pipeline),
   and the burned clock must advance as fast as the wall clock, 1.0 burned second a second
   (``clock_check``).

    python bench/video.py [--runs 5] [--seconds 20] [--renditions]

``--renditions`` runs the server with ORIGINLIVE_RENDITIONS=true (it transcodes a 720p, 360p
and audio ladder); segments are then read from the 720p variant,
``/media/hls/{id}/720p/index.m3u8``. Needs Debian's tesseract-ocr. Prints one JSON object.
"""

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from originlive.bootstrap import migrate  # noqa: E402
from originlive.media.ffmpeg import ffmpeg_binary  # noqa: E402
from originlive.settings import Settings  # noqa: E402
from tests.crowd import Merchant, merchant_with_shop  # noqa: E402
from tests.servers import free_port, serve, stop, wait_until_up  # noqa: E402

PASSWORD = "bench-password"
SIZE, FPS = "1280x720", 25
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf")
# The clock: 64 px monospaced digits from (20, 20) on a black box with a 20 px border, i.e.
# a box from (0, 0) to about (580, 88); the crop stays inside it.
CLOCK = (
    "drawtext=text='%{localtime\\:%s.%3N}':fontsize=64:fontcolor=white"
    ":box=1:boxcolor=black:boxborderw=20:x=20:y=20"
)
CROP_W, CROP_H, CROP_X, CROP_Y = 572, 82, 4, 4
READING = re.compile(r"^\d{10}\.\d{3}$")
HLSJS_SYNC_COUNT = 3  # hls.js liveSyncDurationCount, its default
CHROMIUM = os.environ.get("ORIGINLIVE_TEST_CHROMIUM", "/usr/bin/chromium")
FIRST_SEGMENT_TIMEOUT = 30.0
BURST = "0.001"  # seconds sent ahead of real time at the start (0 would mean ffmpeg's 0.5)
POLL_FIRST = 0.05
POLL_EDGE = 0.5  # on average, between delay samples
POLL_JITTER = 0.25
WARMUP = 2.0  # seconds of steady publishing before the delay is sampled
ABSURD_DELAY = 30.0


# processes


def _die_with_parent() -> None:  # runs in the child, between fork and exec
    import ctypes

    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: never left behind


def publisher_argv(url: str, seconds: float, *, output: list[str] | None = None) -> list[str]:
    """ffmpeg publishing the clocked test picture and a tone in real time to ``url`` (or, with
    ``output``, sending the picture's clock box there instead)."""
    video = CLOCK + (f":fontfile={FONT}" if FONT.exists() else "")
    paced = ["-re", "-readrate_initial_burst", BURST, "-f", "lavfi"]
    argv = [
        ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-nostdin",
        *paced, "-i", f"testsrc2=size={SIZE}:rate={FPS}",
        *paced, "-i", "sine=frequency=440:sample_rate=44100",
        "-t", f"{seconds:g}",
    ]  # fmt: skip
    if output is not None:
        crop = f"crop={CROP_W}:{CROP_H}:{CROP_X}:{CROP_Y},format=gray"
        return [*argv, "-map", "0:v", "-vf", f"{video},{crop}", *output]
    return [
        *argv, "-vf", video,
        "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency",
        "-g", str(FPS), "-keyint_min", str(FPS), "-sc_threshold", "0", "-pix_fmt", "yuv420p",
        "-b:v", "2500k", "-maxrate", "2500k", "-bufsize", "2500k",
        "-c:a", "aac", "-b:a", "128k", "-f", "flv", url,
    ]  # fmt: skip


async def _start(argv: list[str], log: Path | None = None, **kwargs: Any) -> Any:
    out = log.open("ab") if log is not None else subprocess.DEVNULL
    try:
        return await asyncio.create_subprocess_exec(
            *argv,
            stdin=subprocess.DEVNULL,
            stdout=kwargs.pop("stdout", out),
            stderr=out,
            preexec_fn=_die_with_parent,
            **kwargs,
        )
    finally:
        if log is not None:
            out.close()  # type: ignore[union-attr]


async def _end(proc: Any, grace: float = 5.0) -> None:
    """Stop a process of ours: SIGINT (ffmpeg finishes up), then a kill."""
    if proc is None or proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGINT)
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


# reading the clock


async def pictures(segment: bytes) -> tuple[bytes | None, bytes | None, int, str]:
    """Decode a segment; the clock box (8-bit gray) of its first and of its last picture
    (None if it does not decode), the pictures decoded and what ffmpeg complained of."""
    crop = f"crop={CROP_W}:{CROP_H}:{CROP_X}:{CROP_Y},format=gray"
    proc = await asyncio.create_subprocess_exec(
        ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-f", "mpegts", "-i", "pipe:0",
        "-map", "0:v:0", "-vf", crop, "-f", "rawvideo", "pipe:1",
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        preexec_fn=_die_with_parent,
    )  # fmt: skip
    out, err = await proc.communicate(segment)
    size = CROP_W * CROP_H
    frames = len(out) // size
    said = err.decode(errors="replace").strip()
    if proc.returncode != 0 or frames == 0:
        return None, None, frames, said
    return out[:size], out[(frames - 1) * size : frames * size], frames, said


async def read_clock(gray: bytes) -> tuple[float | None, str]:
    """The epoch time tesseract reads in the clock box (None if it does not parse), and the
    raw text."""
    negated = bytes(255 - b for b in gray)  # dark digits on white, as tesseract prefers
    pgm = f"P5\n{CROP_W} {CROP_H}\n255\n".encode() + negated
    proc = await asyncio.create_subprocess_exec(
        "tesseract", "stdin", "stdout", "--psm", "7",
        "-c", "tessedit_char_whitelist=0123456789.",
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,
    )  # fmt: skip
    out, _ = await proc.communicate(pgm)
    text = out.decode(errors="replace").strip().replace(" ", "")
    return (float(text) if READING.match(text) else None), text


async def clock_check(work: Path, seconds: float = 4.0) -> dict[str, Any]:
    """The burned clock against the wall clock as each picture comes out of ffmpeg, and
    against the pictures' own timeline (1/25 s each: no burst at the start)."""
    output = ["-flush_packets", "1", "-f", "rawvideo", "pipe:1"]
    proc = await _start(publisher_argv("", seconds, output=output), work / "clock-check.log",
                        stdout=subprocess.PIPE)  # fmt: skip
    size = CROP_W * CROP_H
    frames: list[tuple[float, bytes]] = []
    try:
        assert proc.stdout is not None
        while True:
            try:
                picture = await proc.stdout.readexactly(size)
            except asyncio.IncompleteReadError:
                break
            frames.append((time.time(), picture))
        await proc.wait()
    finally:
        await _end(proc)
    numbered = list(enumerate(frames))[::4]
    limit = asyncio.Semaphore(os.cpu_count() or 1)

    async def read(picture: bytes) -> float | None:
        async with limit:
            return (await read_clock(picture))[0]

    readings = await asyncio.gather(*(read(p) for _, (_, p) in numbered))
    read_ = [(n, t, c) for (n, (t, _)), c in zip(numbered, readings, strict=True) if c is not None]
    figures: dict[str, Any] = {
        "pictures": len(frames),
        "read": len(read_),
        "unreadable": len(numbered) - len(read_),
    }
    if len(read_) < 2:
        return figures
    lags = [t - c for _, t, c in read_]
    n0, _, c0 = read_[0]
    pace = [abs((c - c0) - (n - n0) / FPS) for n, _, c in read_]
    slope = statistics.linear_regression([t for _, t, _ in read_], [c for *_, c in read_]).slope
    return figures | {
        # picture out of ffmpeg minus the clock in it: how far the burned clock is behind
        "lag_ms_median": _ms(statistics.median(lags)),
        "lag_ms_min": _ms(min(lags)),
        "lag_ms_max": _ms(max(lags)),
        # burned seconds per wall-clock second (1.0: it tracks the wall clock)
        "clock_rate": round(slope, 4),
        # burned clock against picture number / 25: the largest gap (a burst would show here)
        "pace_error_ms_max": _ms(max(pace)),
    }


# HLS


@dataclass
class Live:
    """A session being published to, and what the bench has read of it."""

    session_id: int
    playlist_url: str
    publisher: Any = None
    started_wall: float = 0.0


async def newest_segment(
    api: httpx.AsyncClient, playlist_url: str
) -> tuple[str, int, bytes, float] | None:
    """The live playlist's newest segment: its URI, the target duration, its bytes and the
    wall time its download finished; None if there is none yet."""
    got = await api.get(playlist_url)
    if got.status_code != 200:
        return None
    uris = [line for line in got.text.splitlines() if line and not line.startswith("#")]
    if not uris:
        return None
    target = next(
        (int(line.split(":", 1)[1]) for line in got.text.splitlines()
         if line.startswith("#EXT-X-TARGETDURATION:")),
        0,
    )  # fmt: skip
    segment = await api.get(httpx.URL(playlist_url).join(uris[-1]))
    if segment.status_code != 200:
        return None
    return uris[-1], target, segment.content, time.time()


async def schedule(api: httpx.AsyncClient, merchant: Merchant, number: int) -> tuple[int, str]:
    created = await api.post(
        "/api/v1/live-sessions",
        json={"shop_id": merchant.shop_id, "title": f"大棚直播 {number}"},
        headers=merchant.headers,
    )
    assert created.status_code == 201, created.text
    return int(created.json()["id"]), str(created.json()["stream_key"])


async def end(api: httpx.AsyncClient, merchant: Merchant, session_id: int) -> None:
    await api.post(f"/api/v1/live-sessions/{session_id}/end", headers=merchant.headers)


async def first_segment(
    api: httpx.AsyncClient, live: Live, counts: dict[str, Any]
) -> dict[str, float | None]:
    """Seconds from the publisher's start until the newest segment listed downloads and
    decodes (``total_s``); split at the clock of the stream's first picture, read from that
    segment if it is the first one (as it is unless polling lagged a whole segment): the
    publisher's own start-up until it made that picture, then the stream to a playable
    segment (a segment's worth of pictures, then the platform)."""
    started = live.started_wall
    deadline = time.monotonic() + FIRST_SEGMENT_TIMEOUT
    while time.monotonic() < deadline:
        if live.publisher.returncode is not None:
            raise RuntimeError(f"the publisher exited with {live.publisher.returncode}")
        try:
            newest = await newest_segment(api, live.playlist_url)
        except httpx.TransportError:
            counts["http_errors"] += 1
            newest = None
        if newest is not None:
            uri, _, content, fetched = newest
            first, _, _, _ = await pictures(content)
            if first is not None:
                clock = None
                if int(re.sub(r"\D", "", uri) or 1) == 0:
                    clock, _ = await read_clock(first)
                    if clock is not None and not started - 1 < clock < fetched:
                        clock = None
                return {
                    "total_s": fetched - started,
                    "publisher_start_s": None if clock is None else clock - started,
                    "stream_to_segment_s": None if clock is None else fetched - clock,
                }
            counts["undecodable_segments"] += 1
        await asyncio.sleep(POLL_FIRST)
    raise RuntimeError(f"no playable segment within {FIRST_SEGMENT_TIMEOUT} s")


async def edge_delays(
    api: httpx.AsyncClient, live: Live, seconds: float, counts: dict[str, Any]
) -> tuple[list[float], list[float], list[int]]:
    """Every ``POLL_EDGE`` s or so for ``seconds``: the edge delay of the newest segment; the
    delays, those of segments seen for the first time, and the target durations read.

    Clocks are read in the background, one segment at a time, so that reading one does not
    hold up the next poll (it still takes CPU from the server on a small machine)."""
    polls: list[tuple[str, float, bool]] = []  # segment, download finished, first sight
    targets: list[int] = []
    reading: dict[str, asyncio.Task[float | None]] = {}
    one_at_a_time = asyncio.Semaphore(1)

    async def read(content: bytes, fetched: float) -> float | None:
        async with one_at_a_time:
            _, picture, _, _ = await pictures(content)
            if picture is None:
                counts["undecodable_segments"] += 1
                return None
            clock, text = await read_clock(picture)
        if clock is None:
            counts["ocr_unparsed"] += 1
            if len(counts["ocr_unparsed_texts"]) < 5:
                counts["ocr_unparsed_texts"].append(text)
        elif not (live.started_wall - 1 <= clock <= fetched and fetched - clock <= ABSURD_DELAY):
            counts["ocr_absurd"] += 1
            return None
        return clock

    jitter = random.Random(5)
    end = time.monotonic() + seconds
    due = time.monotonic()
    while due < end:
        wait = due - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        elif wait < -0.05:
            counts["polls_late"] += 1  # the previous poll overran this one's time
        # Random gaps (0.25-0.75 s): evenly spaced polls would see segments, which come once
        # a second, at the same two moments of their life every time.
        due = max(due, time.monotonic()) + jitter.uniform(
            POLL_EDGE - POLL_JITTER, POLL_EDGE + POLL_JITTER
        )
        counts["polls"] += 1
        try:
            newest = await newest_segment(api, live.playlist_url)
        except httpx.TransportError:
            counts["http_errors"] += 1
            continue
        if newest is None:
            counts["no_segment"] += 1
            continue
        uri, target, content, fetched = newest
        targets.append(target)
        first_time = uri not in reading
        if first_time:
            counts["segments_read"] += 1
            reading[uri] = asyncio.create_task(read(content, fetched))
        polls.append((uri, fetched, first_time))

    clocks = dict(zip(reading, await asyncio.gather(*reading.values()), strict=True))
    # A segment's last picture is newer than any earlier segment's: a read that is not is wrong.
    newest_clock = 0.0
    for uri in sorted(clocks, key=lambda u: int(re.sub(r"\D", "", u) or 0)):
        clock = clocks[uri]
        if clock is not None and clock < newest_clock:
            counts["ocr_absurd"] += 1
            clocks[uri] = None
        elif clock is not None:
            newest_clock = clock
    delays = [fetched - c for uri, fetched, _ in polls if (c := clocks[uri]) is not None]
    fresh = [fetched - c for uri, fetched, new in polls if new and (c := clocks[uri]) is not None]
    return delays, fresh, targets


async def browser_delays(
    url: str, live: Live, seconds: float, counts: dict[str, Any]
) -> tuple[list[float], list[float]]:
    """Glass to glass in a real player: Debian's Chromium (its own HLS playback) plays the live
    playlist; every ``POLL_EDGE`` s or so the clock on screen is photographed and read. The
    delays (wall time at the photograph, less the clock shown) and how long photographs took."""
    from playwright.async_api import async_playwright

    delays: list[float] = []
    shots: list[float] = []
    page_html = (
        '<body style="margin:0;background:#000">'
        f'<video id="v" muted autoplay playsinline src="{url}" '
        'style="width:1280px;height:720px;display:block"></video></body>'
    )
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required",
                  "--disable-background-networking", "--disable-component-update"],
        )  # fmt: skip
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 720})
            await page.set_content(page_html)
            await page.wait_for_function(
                "document.getElementById('v').currentTime > 1", timeout=30_000
            )
            jitter = random.Random(7)
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                await asyncio.sleep(
                    jitter.uniform(POLL_EDGE - POLL_JITTER, POLL_EDGE + POLL_JITTER)
                )
                before = time.time()
                png = await page.screenshot(clip={"x": 0, "y": 0, "width": 600, "height": 100})
                after = time.time()
                shots.append(after - before)
                counts["browser_photos"] += 1
                gray = await _clock_of_png(png)
                clock, _ = await read_clock(gray) if gray is not None else (None, "")
                seen = (before + after) / 2
                if clock is None:
                    counts["browser_ocr_unparsed"] += 1
                elif not (live.started_wall - 1 <= clock <= seen and seen - clock <= ABSURD_DELAY):
                    counts["browser_ocr_absurd"] += 1
                else:
                    delays.append(seen - clock)
        finally:
            await browser.close()
    return delays, shots


async def _clock_of_png(png: bytes) -> bytes | None:
    """The clock box of a photograph of the video at its own size, as 8-bit gray."""
    crop = f"crop={CROP_W}:{CROP_H}:{CROP_X}:{CROP_Y},format=gray"
    proc = await asyncio.create_subprocess_exec(
        ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-f", "png_pipe", "-i", "pipe:0",
        "-vf", crop, "-f", "rawvideo", "pipe:1",
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,
    )  # fmt: skip
    out, _ = await proc.communicate(png)
    return out if len(out) == CROP_W * CROP_H else None


# figures


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def _pct(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def _spread(values: list[float], qs: tuple[str, ...] = ("p50", "p95", "max")) -> dict[str, Any]:
    ordered = sorted(values)
    points = {"min": 0.0, "p50": 0.5, "median": 0.5, "p95": 0.95, "max": 1.0}
    return {f"{q}_s": _pct(ordered, points[q]) for q in qs}


def _machine() -> tuple[int, int]:
    """Busy and total jiffies of all cores so far."""
    values = list(map(int, Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]))
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def _busy_pct(since: tuple[int, int]) -> float:
    busy, total = _machine()
    return round(100 * (busy - since[0]) / max(1, total - since[1]), 1)


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, check=False, timeout=10)
    except OSError:
        return "(not found)"
    return (out.stdout or out.stderr).decode(errors="replace").splitlines()[0]


async def _publish(live: Live, rtmp: str, seconds: float, log: Path) -> None:
    live.started_wall = time.time()
    live.publisher = await _start(publisher_argv(rtmp, seconds), log)


async def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    settings = Settings(data_dir=work / "data", database_url=None)
    url = settings.resolved_database_url
    await asyncio.to_thread(migrate, url)
    port, rtmp_port = free_port(), free_port()
    # The server's defaults, given explicitly so that these are the settings it ran with.
    segment_seconds = Settings.model_fields["hls_segment_seconds"].default
    live_segments = Settings.model_fields["hls_live_segments"].default
    used = {
        "media_mode": "embedded",
        "rtmp_port": rtmp_port,
        "renditions": args.renditions,
        "hls_segment_seconds": segment_seconds,
        "hls_live_segments": live_segments,
        "playlist": f"/media/hls/{{id}}/{'720p/' if args.renditions else ''}index.m3u8",
    }
    server_log = work / "server.log"
    publisher_log = work / "publisher.log"
    counts: dict[str, Any] = {
        k: 0
        for k in (
            "polls", "polls_late", "no_segment", "segments_read", "undecodable_segments",
            "ocr_unparsed", "ocr_absurd", "http_errors",
        )
    }  # fmt: skip
    counts["ocr_unparsed_texts"] = []
    figures: dict[str, Any] = {}
    with server_log.open("wb") as log:
        server = serve(
            port=port,
            data_dir=settings.data_dir,
            database_url=url,
            log=log,
            MEDIA_MODE="embedded",
            RTMP_PORT=str(rtmp_port),
            RENDITIONS="true" if args.renditions else "false",
            HLS_SEGMENT_SECONDS=f"{segment_seconds:g}",
            HLS_LIVE_SEGMENTS=str(live_segments),
        )
    base = f"http://127.0.0.1:{port}"
    live: Live | None = None
    try:
        await asyncio.to_thread(wait_until_up, server, base)
        async with httpx.AsyncClient(base_url=base, timeout=10) as api:
            email = f"grower-{uuid.uuid4().hex[:8]}@example.com"
            merchant = await merchant_with_shop(api, stock=100, password=PASSWORD, email=email)
            variant = "720p/" if args.renditions else ""

            async def new_live(number: int, seconds: float) -> Live:
                session_id, key = await schedule(api, merchant, number)
                playlist = f"{base}/media/hls/{session_id}/{variant}index.m3u8"
                made = Live(session_id, playlist)
                rtmp = f"rtmp://127.0.0.1:{rtmp_port}/live/{key}"
                await _publish(made, rtmp, seconds, publisher_log)
                return made

            # 1. time to the first playable segment
            firsts: list[dict[str, float | None]] = []
            for number in range(args.runs):
                live = await new_live(number, FIRST_SEGMENT_TIMEOUT + 5)
                firsts.append(await first_segment(api, live, counts))
                await _end(live.publisher)
                await end(api, merchant, live.session_id)
                live = None
                await asyncio.sleep(1)  # the server's ffmpeg finishes its files
            totals = [t for f in firsts if (t := f["total_s"]) is not None]
            starts = [t for f in firsts if (t := f["publisher_start_s"]) is not None]
            streams = [t for f in firsts if (t := f["stream_to_segment_s"]) is not None]
            figures["first_segment"] = {
                "runs": len(firsts),
                **_spread(totals, ("min", "median", "max")),
                "each_s": [round(s, 3) for s in totals],
                # the same split at the clock burned into the stream's first picture
                "split_runs": len(streams),
                "publisher_start_median_s": _pct(sorted(starts), 0.5),
                "stream_to_segment": _spread(streams, ("min", "median", "max")),
            }

            # 2. glass to glass
            browsing = args.seconds + 40 if args.browser else 0  # with the player's start
            live = await new_live(
                args.runs, FIRST_SEGMENT_TIMEOUT + WARMUP + args.seconds + 10 + browsing
            )
            await first_segment(api, live, counts)
            await asyncio.sleep(WARMUP)
            busy_since, load_before = _machine(), os.getloadavg()[0]
            transcoders = _children(server.pid)
            cpu_before = {p: _cpu_seconds(p) for p in [server.pid, *transcoders]}
            sampled_from = time.monotonic()
            delays, fresh, targets = await edge_delays(api, live, args.seconds, counts)
            sampled = time.monotonic() - sampled_from
            if args.browser:
                counts |= {"browser_photos": 0, "browser_ocr_unparsed": 0, "browser_ocr_absurd": 0}
                seen, shots = await browser_delays(live.playlist_url, live, args.seconds, counts)
                figures["glass_to_glass_in_chromium"] = {
                    "how": "Chromium's own HLS playback of the live playlist; the clock on "
                    "screen photographed and read, against the wall time of the photograph",
                    "samples": len(seen),
                    **_spread(seen),
                    "mean_s": round(statistics.fmean(seen), 3) if seen else None,
                    "photo_ms_median": _ms(statistics.median(shots)) if shots else None,
                }
            cpu = {p: (_cpu_seconds(p) - cpu_before[p]) / sampled for p in cpu_before}
            busy = _busy_pct(busy_since)
            await _end(live.publisher)
            await end(api, merchant, live.session_id)
            live = None
    except BaseException:
        lines = server_log.read_text(errors="replace").strip().splitlines()[-30:]
        print("the server said:", *lines, sep="\n  ", file=sys.stderr)
        raise
    finally:
        if live is not None:
            await _end(live.publisher)
        stop(server)
    target = float(statistics.median(targets)) if targets else None
    holdback = HLSJS_SYNC_COUNT * target if target is not None else None
    figures["edge_delay"] = {
        "samples": len(delays),
        **_spread(delays),
        "mean_s": round(statistics.fmean(delays), 3) if delays else None,
        # the same, only at the first poll that saw each segment (up to 0.5 s after it came)
        "first_seen": {"samples": len(fresh), **_spread(fresh)},
    }
    figures["player_delay_estimated"] = {
        "how": f"edge delay + hls.js holdback ({HLSJS_SYNC_COUNT} x target duration)",
        "target_duration_s": target,
        "holdback_s": holdback,
        **(
            {k: round(v + holdback, 3) for k, v in _spread(delays).items() if v is not None}
            if holdback is not None
            else {}
        ),
    }
    # The platform's own share (RTMP in, FLV to ffmpeg, playlists and segments to this
    # bench's polls) and its ffmpeg's, while one stream was published.
    figures["cpu_cores_while_streaming"] = {
        "platform": round(cpu[server.pid], 3),
        "ffmpeg": round(sum(v for p, v in cpu.items() if p != server.pid), 3),
        "ffmpeg_processes": len(transcoders),
    }
    figures["counts"] = counts
    figures["machine_busy_pct_while_sampling"] = busy
    figures["load_average_before_sampling"] = round(load_before, 2)
    figures["settings"] = used
    tail = server_log.read_text(errors="replace").strip()
    if tail:
        figures["server_log_tail"] = tail.splitlines()[-20:]
    said = publisher_log.read_text(errors="replace").strip()
    if said:
        figures["publisher_log_tail"] = said.splitlines()[-10:]
    return figures


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5, help="publishes to time the first segment")
    parser.add_argument("--seconds", type=float, default=20, help="seconds of delay sampling")
    parser.add_argument("--renditions", action="store_true", help="ORIGINLIVE_RENDITIONS=true")
    parser.add_argument(
        "--browser", action="store_true", help="also glass to glass in Debian's Chromium"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, HLS)")
    args = parser.parse_args()
    if shutil.which("tesseract") is None:
        sys.exit("tesseract is not installed (Debian: apt-get install tesseract-ocr)")

    work = Path(tempfile.mkdtemp(prefix="originlive-video-"))
    try:
        check = await clock_check(work)
        figures = await run(args, work)
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(
        json.dumps(
            {
                "benchmark": "video",
                "cores": os.cpu_count(),
                "ffmpeg": _version([ffmpeg_binary(), "-version"]),
                "tesseract": _version(["tesseract", "--version"]),
                "publisher": {
                    "size": SIZE,
                    "fps": FPS,
                    "video": "libx264 veryfast zerolatency, keyframe every 1 s, 2500k",
                    "audio": "aac 128k",
                    "readrate_initial_burst": float(BURST),
                },
                "segment_seconds": Settings.model_fields["hls_segment_seconds"].default,
                "runs": args.runs,
                "seconds": args.seconds,
                "clock_check": check,
                **figures,
            },
            indent=2,
            ensure_ascii=False,
        )
    )


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # the finally blocks stop the server and the publishers


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _terminate)
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        print("interrupted: the server and the publishers were stopped", file=sys.stderr)
        sys.exit(130)
