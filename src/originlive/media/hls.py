"""HLS playlists: the live window served from ffmpeg's full list, and the recording.

ffmpeg keeps one event playlist per stream with every segment (``stream.m3u8``): that is the
session's recording as it grows. Viewers of the live stream get only its last few segments,
numbered as they were (``EXT-X-MEDIA-SEQUENCE``, ``EXT-X-DISCONTINUITY-SEQUENCE``), so a
three-hour session does not mean a 10,000-line playlist fetched every second. Once the session
ends, ``vod.m3u8`` is written: every segment, ``EXT-X-PLAYLIST-TYPE:VOD`` and ``EXT-X-ENDLIST``.
"""

import math
import os
import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from originlive.errors import NotFound
from originlive.media.ffmpeg import MASTER, PLAYLIST, VARIANTS

VOD = "vod.m3u8"
INDEX = "index.m3u8"  # what the app serves: the live window, the recording, or the master list

# What may be asked for under a session's directory: nothing else is ever served from it.
SERVABLE = re.compile(
    r"^(?:(?P<variant>" + "|".join(VARIANTS) + r")/)?(?P<name>index\.m3u8|seg\d{5,9}\.ts)$"
)


@dataclass(frozen=True)
class Segment:
    """A segment's lines (its tags, then its URI) and its length."""

    lines: tuple[str, ...]
    seconds: float
    discontinuity: bool


@dataclass(frozen=True)
class Playlist:
    """A media playlist as ffmpeg wrote it."""

    version: int
    media_sequence: int
    discontinuity_sequence: int
    independent: bool
    segments: tuple[Segment, ...]

    @property
    def seconds(self) -> float:
        """The length of every segment together."""
        return sum(s.seconds for s in self.segments)

    @property
    def target_duration(self) -> int:
        """The longest segment, rounded up, as HLS asks."""
        return max((math.ceil(s.seconds) for s in self.segments), default=1)

    def render(self, start: int = 0, *, vod: bool = False) -> str:
        """The playlist from segment ``start`` on; a finished recording when ``vod``."""
        skipped = self.segments[:start]
        head = ["#EXTM3U", f"#EXT-X-VERSION:{self.version}"]
        head.append(f"#EXT-X-TARGETDURATION:{self.target_duration}")
        head.append(f"#EXT-X-MEDIA-SEQUENCE:{self.media_sequence + start}")
        discontinuities = self.discontinuity_sequence + sum(s.discontinuity for s in skipped)
        if discontinuities:
            head.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuities}")
        if vod:
            head.append("#EXT-X-PLAYLIST-TYPE:VOD")
        if self.independent:
            head.append("#EXT-X-INDEPENDENT-SEGMENTS")
        body = [line for s in self.segments[start:] for line in s.lines]
        tail = ["#EXT-X-ENDLIST"] if vod else []
        return "\n".join([*head, *body, *tail]) + "\n"

    def window(self, segments: int) -> str:
        """The live playlist: the last ``segments`` segments."""
        return self.render(max(len(self.segments) - segments, 0))


def parse(text: str) -> Playlist:
    """A media playlist written by ffmpeg's HLS muxer."""
    version, sequence, discontinuity_sequence, independent = 3, 0, 0, False
    segments: list[Segment] = []
    pending: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line == "#EXTM3U":
            continue
        tag, _, value = line.partition(":")
        if tag == "#EXT-X-VERSION":
            version = int(value)
        elif tag == "#EXT-X-MEDIA-SEQUENCE":
            sequence = int(value)
        elif tag == "#EXT-X-DISCONTINUITY-SEQUENCE":
            discontinuity_sequence = int(value)
        elif tag == "#EXT-X-INDEPENDENT-SEGMENTS":
            independent = True
        elif tag in ("#EXT-X-TARGETDURATION", "#EXT-X-PLAYLIST-TYPE", "#EXT-X-ENDLIST"):
            continue  # worked out anew when rendered
        elif line.startswith("#"):
            pending.append(line)
        else:
            seconds = next(
                (float(p[8:].split(",")[0]) for p in pending if p.startswith("#EXTINF:")), 0.0
            )
            # ffmpeg's discont_start also puts one in the header (read as the first segment's),
            # where there is nothing to be discontinuous with: one a segment, none on the first.
            discontinuity = "#EXT-X-DISCONTINUITY" in pending and bool(segments)
            tags = [p for p in pending if p != "#EXT-X-DISCONTINUITY"]
            if discontinuity:
                tags.insert(0, "#EXT-X-DISCONTINUITY")
            segments.append(Segment((*tags, line), seconds, discontinuity))
            pending = []
    return Playlist(version, sequence, discontinuity_sequence, independent, tuple(segments))


DISCONTINUITY = "#EXT-X-DISCONTINUITY\n"
NUMBERED = re.compile(r"seg(\d+)\.ts")


def live_window(text: str, segments: int) -> str:
    """The last ``segments`` segments of ffmpeg's event playlist, as the live playlist.

    Done from the playlist's end, not by parsing all of it: a three-hour session lists
    10,800 segments (a megabyte; 150 ms to parse here), and the playlist changes every second.
    A segment's media sequence number is the number in its name (ffmpeg numbers them from 0
    and goes on across reconnects, as the event playlist does); discontinuities before the
    window are counted over the whole text, at C speed.
    """
    tail = text[-(segments * 400 + 2048) :]
    if len(tail) < len(text):
        tail = tail[tail.index("\n") + 1 :]  # from a whole line
    window = parse(tail).segments[-segments:]
    if not window:
        return parse(text).window(segments)
    head = parse(text[:1024])
    match = NUMBERED.fullmatch(window[0].lines[-1])
    if match is None:  # not named by ffmpeg as we ask it to: read all of it
        return parse(text).window(segments)
    first_uri = text.find(".ts\n")
    before = text.count(DISCONTINUITY, first_uri) - sum(s.discontinuity for s in window)
    playlist = Playlist(head.version, int(match[1]), max(before, 0), head.independent, window)
    return playlist.render()


class LiveWindows:
    """Live playlists, made again only when ffmpeg has rewritten its own (once a segment)."""

    def __init__(self, segments: int) -> None:
        self.segments = segments
        self._cache: dict[Path, tuple[tuple[int, int], str | None]] = {}

    def get(self, path: Path) -> str | None:
        """The live playlist from ffmpeg's at ``path``; None if there is none (yet)."""
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            self._cache.pop(path, None)
            return None
        stamp = (stat.st_mtime_ns, stat.st_size)
        cached = self._cache.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        text = path.read_text()
        window = live_window(text, self.segments) if ".ts" in text else None
        self._cache[path] = (stamp, window)
        return window


def variants_of(directory: Path) -> list[str]:
    """The renditions a session was cut into ([""] when it was copied as it came)."""
    if (directory / MASTER).exists():
        return [v for v in VARIANTS if (directory / v / PLAYLIST).exists()]
    return [""]


def master(directory: Path) -> str | None:
    """The master playlist of a ladder, pointing at what the app serves; None if no ladder."""
    path = directory / MASTER
    if not path.exists():
        return None
    return path.read_text().replace(PLAYLIST, INDEX)


def finish_recording(directory: Path) -> float:
    """Write the recording's VOD playlists; its length in seconds (0 if nothing was recorded)."""
    lengths = []
    for variant in variants_of(directory):
        source = directory / variant / PLAYLIST
        if not source.exists():
            continue
        playlist = parse(source.read_text())
        if not playlist.segments:
            continue
        target = directory / variant / VOD
        temporary = target.with_suffix(".tmp")
        temporary.write_text(playlist.render(vod=True))
        temporary.replace(target)
        lengths.append(playlist.seconds)
    return max(lengths, default=0.0)


# What a player gets: one decision for the FastAPI routes and the fast route in front


PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
SEGMENT_TYPE = "video/mp2t"
LIVE_CACHE = "no-cache"  # a new segment a second: players must fetch the playlist again
VOD_CACHE = "public, max-age=3600"
SEGMENT_CACHE = "public, max-age=86400, immutable"


@dataclass(frozen=True)
class Answer:
    """What to send for a path: a playlist made here (``text``) or a file as it is on disk."""

    content_type: str
    cache_control: str
    text: str | None = None
    file: Path | None = None


def servable(path: str) -> tuple[str, str]:
    """The variant ("" if none) and name of a path under a session's directory; NotFound for
    anything but a playlist or a segment."""
    match = SERVABLE.match(path)
    if match is None:
        raise NotFound(f"No {path} here.")
    return match["variant"] or "", match["name"]


def live_answer(directory: Path, path: str, windows: LiveWindows) -> Answer:
    """The live stream's playlists and segments (the recording once the session has ended)."""
    variant, name = servable(path)
    if name != INDEX:
        return _segment(directory, variant, name)
    if not variant and (ladder := master(directory)) is not None:
        return Answer(PLAYLIST_TYPE, LIVE_CACHE, text=ladder)
    recording = _recording(directory, variant)
    if recording is not None:
        return recording
    window = windows.get(directory / variant / PLAYLIST)
    if window is None:
        raise NotFound("This session is not streaming (yet).")
    return Answer(PLAYLIST_TYPE, LIVE_CACHE, text=window)


def recording_answer(directory: Path, path: str) -> Answer:
    """A finished session's recording: its playlists and segments."""
    variant, name = servable(path)
    recording = _recording(directory, variant)
    if recording is None:
        raise NotFound("No recording of this session (yet).")
    if name != INDEX:
        return _segment(directory, variant, name)
    if not variant and (ladder := master(directory)) is not None:
        return Answer(PLAYLIST_TYPE, VOD_CACHE, text=ladder)
    return recording


def _segment(directory: Path, variant: str, name: str) -> Answer:
    path = directory / variant / name
    if not path.is_file():
        raise NotFound(f"No segment {name}.")
    return Answer(SEGMENT_TYPE, SEGMENT_CACHE, file=path)


def _recording(directory: Path, variant: str) -> Answer | None:
    vod = directory / variant / VOD
    return Answer(PLAYLIST_TYPE, VOD_CACHE, file=vod) if vod.is_file() else None


class Files:
    """Segments and recordings' playlists kept in memory, the most recently sent first, up to
    ``max_bytes``: every viewer of a room asks for the same few files each second.

    A file is read again if its size or time changed (ffmpeg writes segments whole, under
    another name, and renames them: what is read is never half a segment); one ``stat`` a
    request checks that."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._kept: OrderedDict[Path, tuple[tuple[int, int], bytes]] = OrderedDict()
        self._bytes = 0

    @property
    def kept_bytes(self) -> int:
        """How much is kept now."""
        return self._bytes

    def stamp(self, path: Path) -> tuple[int, int] | None:
        """The (mtime, size) of the file as kept, if it is."""
        kept = self._kept.get(path)
        return None if kept is None else kept[0]

    def read(self, path: Path) -> bytes:
        """The file's bytes; FileNotFoundError if it is gone."""
        stat = os.stat(path)
        stamp = (stat.st_mtime_ns, stat.st_size)
        kept = self._kept.get(path)
        if kept is not None and kept[0] == stamp:
            self._kept.move_to_end(path)
            return kept[1]
        data = path.read_bytes()
        if kept is not None:
            self._bytes -= len(kept[1])
        self._kept[path] = (stamp, data)
        self._kept.move_to_end(path)
        self._bytes += len(data)
        while self._bytes > self.max_bytes and self._kept:
            _, (_, old) = self._kept.popitem(last=False)
            self._bytes -= len(old)
        return data
