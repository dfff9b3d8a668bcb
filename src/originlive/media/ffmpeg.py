"""ffmpeg: where it is, what it is told, and its processes, supervised.

The binary comes from the ``imageio-ffmpeg`` wheel (a static build) unless
``ORIGINLIVE_FFMPEG`` names another. Every process is started so that it dies with us
(``PR_SET_PDEATHSIG``), is stopped gently on shutdown (end of input, then a kill), and logs
its last words when it fails.
"""

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# The ladder of renditions (ORIGINLIVE_RENDITIONS): name, height, video and audio bit rates.
LADDER = (("720p", 720, "2500k", "128k"), ("360p", 360, "700k", "96k"), ("audio", 0, "", "64k"))
VARIANTS = tuple(name for name, *_ in LADDER)
PLAYLIST = "stream.m3u8"  # ffmpeg's own playlist of every segment; the app serves windows of it
MASTER = "master.m3u8"


def ffmpeg_binary(configured: Path | None = None) -> str:
    """The configured ffmpeg, else the one shipped in the ``imageio-ffmpeg`` wheel."""
    if configured is not None:
        return str(configured)
    import imageio_ffmpeg  # imported late: it looks for its binary on import of the function

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def _die_with_parent() -> None:  # pragma: no cover - runs in the child, between fork and exec
    # Its own session: a Ctrl-C at the terminal reaches the platform, which stops its ffmpeg
    # gently (the last segment and playlist written), rather than every ffmpeg at once.
    os.setsid()
    # If the platform is killed outright, the kernel kills its ffmpeg too: never left behind.
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass(frozen=True)
class HlsOptions:
    """How a stream is cut into HLS."""

    segment_seconds: float = 1.0
    renditions: bool = False  # transcode a ladder (720p, 360p, audio) instead of copying


def hls_command(
    binary: str, out_dir: Path, options: HlsOptions, *, resume: bool, source: str = "pipe:0"
) -> list[str]:
    """ffmpeg reading FLV (on its standard input, or a recorded file) and writing HLS into
    ``out_dir``.

    Every segment stays listed (an event playlist, the session's recording); ``resume`` goes
    on with the playlist a dropped publisher left, after a discontinuity.
    """
    # program_date_time: each segment carries its wall-clock time, so that a replay page can
    # line the recording up with the replay timeline (comments, pins, purchases by time).
    flags = "append_list+omit_endlist+independent_segments+temp_file+program_date_time"
    if resume:
        flags += "+discont_start"
    # Half a second of probing finds an encoder's audio and video (they come interleaved
    # from the start); ffmpeg's default held the first segment back by another 0.55 s
    # (measured: 1.65 s from the first picture to the first segment, 1.09 s with this).
    probe = ["-analyzeduration", "500000"]
    command = [binary, "-hide_banner", "-loglevel", "warning", *probe, "-f", "flv", "-i", source]
    hls = [
        "-f",
        "hls",
        "-hls_time",
        f"{options.segment_seconds:g}",
        "-hls_playlist_type",
        "event",
        "-hls_flags",
        flags,
    ]
    if not options.renditions:
        # Copied as it comes: a segment is cut at a keyframe, so its length is the encoder's
        # keyframe interval (the README asks anchors for one second).
        segments = str(out_dir / "seg%05d.ts")
        return [*command, "-map", "0", "-c", "copy", *hls, "-hls_segment_filename", segments,
                str(out_dir / PLAYLIST)]  # fmt: skip
    scales = ";".join(
        f"[v{i}]scale=-2:{height}[o{i}]" for i, (_, height, *_) in enumerate(LADDER) if height
    )
    videos = [i for i, (_, height, *_) in enumerate(LADDER) if height]
    graph = f"[0:v]split={len(videos)}" + "".join(f"[v{i}]" for i in videos) + ";" + scales
    maps: list[str] = []
    rates: list[str] = []
    streams: list[str] = []
    for i, (name, height, video_rate, audio_rate) in enumerate(LADDER):
        if height:
            maps += ["-map", f"[o{i}]"]
            rates += [f"-b:v:{i}", video_rate, f"-maxrate:v:{i}", video_rate]
        maps += ["-map", "0:a"]
        rates += [f"-b:a:{i}", audio_rate]
        streams.append((f"v:{i}," if height else "") + f"a:{i},name:{name}")
    gop = f"expr:gte(t,n_forced*{options.segment_seconds:g})"
    return [
        *command,
        "-filter_complex",
        graph,
        *maps,
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-tune",
        "zerolatency",
        "-force_key_frames",
        gop,
        "-sc_threshold",
        "0",
        "-c:a",
        "aac",
        *rates,
        "-var_stream_map",
        " ".join(streams),
        "-master_pl_name",
        MASTER,
        *hls,
        "-hls_segment_filename",
        str(out_dir / "%v" / "seg%05d.ts"),
        str(out_dir / "%v" / PLAYLIST),
    ]


class Process:
    """One ffmpeg (or other media) process: started, fed, stopped; its last words kept."""

    def __init__(self, argv: Sequence[str], *, name: str, stdin: bool = False) -> None:
        self.argv = list(argv)
        self.name = name
        self._stdin = stdin
        self.proc: asyncio.subprocess.Process | None = None
        self.last_words: deque[str] = deque(maxlen=20)
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the process."""
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.PIPE if self._stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=_die_with_parent,
        )
        self._reader = asyncio.create_task(self._read_stderr())
        log.info("%s started (pid %s)", self.name, self.proc.pid)

    async def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        async for line in self.proc.stderr:
            self.last_words.append(line.decode("utf-8", "replace").rstrip())

    @property
    def running(self) -> bool:
        """Whether it has been started and has not exited."""
        return self.proc is not None and self.proc.returncode is None

    async def write(self, data: bytes) -> None:
        """Feed its standard input; ``BrokenPipeError`` or ``ConnectionResetError`` if it died."""
        assert self.proc is not None and self.proc.stdin is not None
        if self.proc.returncode is not None or self.proc.stdin.is_closing():
            raise BrokenPipeError(f"{self.name} has exited")
        try:
            self.proc.stdin.write(data)
            await self.proc.stdin.drain()
        except RuntimeError as exc:  # uvloop's word for a pipe closed under the write
            raise BrokenPipeError(str(exc)) from exc

    async def wait(self) -> int:
        """Its exit status, once it exits; a failure is logged with what it said last."""
        assert self.proc is not None
        code = await self.proc.wait()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if code != 0:
            said = "\n  ".join(self.last_words) or "(nothing)"
            log.warning("%s exited with %s; it said:\n  %s", self.name, code, said)
        return code

    async def stop(self, grace: float = 10.0) -> int | None:
        """End its input and let it finish its files; kill it if it takes over ``grace`` seconds."""
        if self.proc is None:
            return None
        if self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self.proc.stdin.wait_closed()
        elif self.proc.returncode is None and not self._stdin:
            self.proc.send_signal(signal.SIGINT)  # ffmpeg's own "finish up"
        try:
            return await asyncio.wait_for(self.wait(), grace)
        except TimeoutError:
            log.warning("%s did not finish in %ss; killed", self.name, grace)
            self.kill()
            return await self.proc.wait()

    def kill(self) -> None:
        """Kill it at once."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
