"""Video (issue 5): how soon a stream plays, and how far behind the anchor a viewer is.

Starts ``originlive serve`` (one process, embedded RTMP ingest on a free port, a temporary
data folder, SQLite), makes a merchant with an approved shop through the API, and publishes
to it as an anchor's encoder would: ffmpeg, in real time, a 1280x720 25 fps test picture
(testsrc2) and a tone, libx264 veryfast/zerolatency with a keyframe every second, AAC, FLV
over RTMP. ``-readrate_initial_burst 0``: a camera cannot send its first half second ahead of
time (ffmpeg's default burst would make the stream look 0.5 s fresher than it is).

1. Time to first playable segment, ``--runs`` times, a new session each: from starting the
   publisher process (its own start-up included, as an anchor's "go live" would) until the
   live playlist (``/media/hls/{id}/index.m3u8``) answers 200 and the newest segment it
   lists has been downloaded; that download must decode (else polling goes on and the
   failure is counted). The playlist is polled every 50 ms.

2. Glass-to-glass: the publisher burns the wall clock into each picture when the picture is
   made (drawtext ``%{localtime:%s.%3N}``, epoch seconds with milliseconds, white on a black
   box, top left; in the output filter, so after ``-re`` has released the frame). Every 0.5 s
   for ``--seconds``, the bench fetches the live playlist and its newest segment, decodes
   the segment's last picture, crops the box, reads the clock back with tesseract (digits
   only, ``--psm 7``) and records the edge delay: the time the download finished minus the
   clock in that picture. That is the freshest picture any player could show at that
   moment. Every poll is a sample, the same segment read twice included (its picture is
   older by then, as it is for a player): the samples are the delay at evenly spread
   moments. Reads that do not parse, or are absurd (before the publisher started, after the
   download, older than a segment seen earlier, or over 30 s behind), are rejected and
   counted. The player delay is estimated, not measured: hls.js by default plays
   ``liveSyncDurationCount`` (3) target durations behind the live edge, so the edge delay
   plus 3 x ``#EXT-X-TARGETDURATION`` of the playlist.

   Before the server starts, the clock is checked: the same source and drawtext write raw
   pictures to a pipe; the difference between the time each picture arrives and the clock
   burned into it must be small and steady, and the burned clock must advance as fast as
   the wall clock (``clock_check``).

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
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
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
FIRST_SEGMENT_TIMEOUT = 30.0
POLL_FIRST = 0.05
POLL_EDGE = 0.5
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
    paced = ["-re", "-readrate_initial_burst", "0", "-f", "lavfi"]
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


async def last_picture(segment: bytes) -> tuple[bytes | None, int, str]:
    """Decode a segment; the clock box of its last picture (8-bit gray), the pictures decoded
    and what ffmpeg complained of."""
    crop = f"crop={CROP_W}:{CROP_H}:{CROP_X}:{CROP_Y},format=gray"
    proc = await asyncio.create_subprocess_exec(
        ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-f", "mpegts", "-i", "pipe:0",
        "-map", "0:v:0", "-vf", crop, "-f", "rawvideo", "pipe:1",
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate(segment)
    size = CROP_W * CROP_H
    frames = len(out) // size
    if proc.returncode != 0 or frames == 0:
        return None, frames, err.decode(errors="replace").strip()
    return out[(frames - 1) * size : frames * size], frames, err.decode(errors="replace").strip()


async def read_clock(gray: bytes) -> tuple[float | None, str]:
    """The epoch time tesseract reads in the clock box (None if it does not parse), and the
    raw text."""
    negated = bytes(255 - b for b in gray)  # dark digits on white, as tesseract prefers
    pgm = f"P5\n{CROP_W} {CROP_H}\n255\n".encode() + negated
    proc = await asyncio.create_subprocess_exec(
        "tesseract", "stdin", "stdout", "--psm", "7",
        "-c", "tessedit_char_whitelist=0123456789.",
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    out, _ = await proc.communicate(pgm)
    text = out.decode(errors="replace").strip().replace(" ", "")
    return (float(text) if READING.match(text) else None), text


async def clock_check(work: Path, seconds: float = 4.0) -> dict[str, Any]:
    """The burned clock against the wall clock when each picture comes out of the filter."""
    argv = publisher_argv("", seconds, output=["-f", "rawvideo", "pipe:1"])
    proc = await _start(argv, work / "clock-check.log", stdout=subprocess.PIPE)
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
    samples = frames[FPS // 2 :: 5]  # past start-up, five a second
    readings = await asyncio.gather(*(read_clock(p) for _, p in samples))
    pairs = [(t, c) for (t, _), (c, _) in zip(samples, readings, strict=True) if c is not None]
    lags = [t - c for t, c in pairs]
    rate = None
    if len(pairs) >= 2:
        (t0, c0), (t1, c1) = pairs[0], pairs[-1]
        rate = round((c1 - c0) / (t1 - t0), 4)
    return {
        "pictures": len(frames),
        "read": len(pairs),
        "unreadable": len(samples) - len(pairs),
        # picture out of ffmpeg minus the clock in it: what the burned clock lags the wall by
        "lag_ms_median": _ms(statistics.median(lags)) if lags else None,
        "lag_ms_min": _ms(min(lags)) if lags else None,
        "lag_ms_max": _ms(max(lags)) if lags else None,
        "clock_rate": rate,  # burned seconds per wall-clock second; 1.0 if it tracks the wall
    }


# HLS


@dataclass
class Live:
    """A session being published to, and what the bench has read of it."""

    session_id: int
    playlist_url: str
    publisher: Any = None
    started_wall: float = 0.0
    clocks: dict[str, float | None] = field(default_factory=dict)


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


async def first_segment(api: httpx.AsyncClient, live: Live, counts: dict[str, Any]) -> float:
    """Seconds from the publisher's start until the newest segment listed downloads and
    decodes."""
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
            _, _, content, fetched = newest
            picture, _, _ = await last_picture(content)
            if picture is not None:
                return fetched - started
            counts["undecodable_segments"] += 1
        await asyncio.sleep(POLL_FIRST)
    raise RuntimeError(f"no playable segment within {FIRST_SEGMENT_TIMEOUT} s")


async def edge_delays(
    api: httpx.AsyncClient, live: Live, seconds: float, counts: dict[str, Any]
) -> tuple[list[float], list[float], list[int]]:
    """Every ``POLL_EDGE`` s for ``seconds``: the edge delay of the newest segment; the
    delays, those of segments seen for the first time, and the target durations read."""
    delays: list[float] = []
    fresh: list[float] = []
    targets: list[int] = []
    newest_clock = 0.0
    start = time.monotonic()
    polls = int(seconds / POLL_EDGE)
    for i in range(polls):
        wait = start + i * POLL_EDGE - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        elif wait < -POLL_EDGE:
            counts["polls_skipped"] += 1  # the previous read overran this poll's slot
            continue
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
        first_time = uri not in live.clocks
        if first_time:
            counts["segments_read"] += 1
            picture, _, _ = await last_picture(content)
            clock: float | None = None
            if picture is None:
                counts["undecodable_segments"] += 1
            else:
                clock, text = await read_clock(picture)
                if clock is None:
                    counts["ocr_unparsed"] += 1
                    if len(counts["ocr_unparsed_texts"]) < 5:
                        counts["ocr_unparsed_texts"].append(text)
                elif not (
                    live.started_wall - 1 <= clock <= fetched
                    and fetched - clock <= ABSURD_DELAY
                    and clock >= newest_clock
                ):
                    counts["ocr_absurd"] += 1
                    clock = None
                else:
                    newest_clock = clock
            live.clocks[uri] = clock
        clock = live.clocks[uri]
        if clock is None:
            continue
        delays.append(fetched - clock)
        if first_time:
            fresh.append(fetched - clock)
    return delays, fresh, targets


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
    env = {"RTMP_PORT": str(rtmp_port), "RENDITIONS": "true" if args.renditions else "false"}
    used = {
        "media_mode": "embedded",
        "rtmp_port": rtmp_port,
        "renditions": args.renditions,
        # the server's defaults (not set here)
        "hls_segment_seconds": Settings.model_fields["hls_segment_seconds"].default,
        "hls_live_segments": Settings.model_fields["hls_live_segments"].default,
    }
    server_log = work / "server.log"
    publisher_log = work / "publisher.log"
    counts: dict[str, Any] = {
        k: 0
        for k in (
            "polls", "polls_skipped", "no_segment", "segments_read", "undecodable_segments",
            "ocr_unparsed", "ocr_absurd", "http_errors",
        )
    }  # fmt: skip
    counts["ocr_unparsed_texts"] = []
    figures: dict[str, Any] = {}
    with server_log.open("wb") as log:
        server = serve(port=port, data_dir=settings.data_dir, database_url=url, log=log, **env)
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
            firsts: list[float] = []
            for number in range(args.runs):
                live = await new_live(number, FIRST_SEGMENT_TIMEOUT + 5)
                firsts.append(await first_segment(api, live, counts))
                await _end(live.publisher)
                await end(api, merchant, live.session_id)
                live = None
                await asyncio.sleep(1)  # the server's ffmpeg finishes its files
            figures["first_segment"] = {
                "runs": len(firsts),
                **_spread(firsts, ("min", "median", "max")),
                "each_s": [round(s, 3) for s in firsts],
            }

            # 2. glass to glass
            live = await new_live(args.runs, FIRST_SEGMENT_TIMEOUT + WARMUP + args.seconds + 10)
            await first_segment(api, live, counts)
            await asyncio.sleep(WARMUP)
            busy_since, load_before = _machine(), os.getloadavg()[0]
            delays, fresh, targets = await edge_delays(api, live, args.seconds, counts)
            busy = _busy_pct(busy_since)
            await _end(live.publisher)
            await end(api, merchant, live.session_id)
            live = None
    finally:
        if live is not None:
            await _end(live.publisher)
        stop(server)
    target = statistics.median(targets) if targets else None
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
                    "readrate_initial_burst": 0,
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
    asyncio.run(main())
