"""HLS for players from memory, in front of FastAPI: the same answers as the routes behind."""

import os
from pathlib import Path
from typing import Any

import httpx

from originlive.media import hls
from originlive.media.ffmpeg import PLAYLIST
from tests.media.test_hls import EVENT

SEGMENT = bytes(range(256)) * 400  # about 100 KB, as a second of video


def stream(app: Any, session_id: int) -> Path:
    """A session's directory as ffmpeg leaves it mid-stream: its event playlist, ten segments."""
    directory: Path = app.state.media.directory(session_id)
    directory.mkdir(parents=True)
    (directory / PLAYLIST).write_text(EVENT)
    for i in range(10):
        (directory / f"seg{i:05d}.ts").write_bytes(SEGMENT + bytes([i]))
    return directory


async def test_players_get_the_stream_as_the_routes_give_it(app, client: httpx.AsyncClient) -> None:
    stream(app, 7)
    got = await client.get("/media/hls/7/seg00009.ts")
    assert got.status_code == 200 and got.content == SEGMENT + b"\x09"
    assert got.headers["content-type"] == "video/mp2t"
    assert got.headers["cache-control"] == hls.SEGMENT_CACHE
    assert got.headers["content-length"] == str(len(SEGMENT) + 1)
    assert got.headers["x-content-type-options"] == "nosniff"
    assert "etag" not in got.headers  # from memory, not FastAPI's FileResponse

    playlist = await client.get("/media/hls/7/index.m3u8")
    assert playlist.status_code == 200
    assert playlist.headers["content-type"] == hls.PLAYLIST_TYPE
    assert playlist.headers["cache-control"] == "no-cache"
    assert "seg00009.ts" in playlist.text and "seg00003.ts" not in playlist.text  # the window

    # A range is the FastAPI route's: the same file, the same headers.
    part = await client.get("/media/hls/7/seg00009.ts", headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == SEGMENT[:100]
    assert part.headers["cache-control"] == hls.SEGMENT_CACHE and "etag" in part.headers

    # Refusals are worded there too.
    for path in ("seg00010.ts", "stream.m3u8", "../secret_key", "seg٠٠٠٠١.ts"):
        refused = await client.get(f"/media/hls/7/{path}")
        assert refused.status_code == 404, path
    assert (await client.get("/media/recordings/7/index.m3u8")).status_code == 404
    too_far = await client.get(f"/media/hls/{2**31}/seg00001.ts")
    assert too_far.status_code in (404, 422)


async def test_a_recording_is_served_whole_once_the_session_ends(
    app, client: httpx.AsyncClient
) -> None:
    directory = stream(app, 8)
    hls.finish_recording(directory)
    for prefix in ("/media/hls/8/", "/media/recordings/8/"):
        vod = await client.get(prefix + "index.m3u8")
        assert vod.status_code == 200 and vod.headers["cache-control"] == hls.VOD_CACHE
        assert vod.text.count(".ts") == 10 and vod.text.endswith("#EXT-X-ENDLIST\n")
        first = await client.get(prefix + "seg00000.ts")
        assert first.status_code == 200 and first.content == SEGMENT + b"\x00"


def test_files_are_read_again_when_they_change_and_kept_within_their_budget(
    tmp_path: Path,
) -> None:
    files = hls.Files(max_bytes=250)
    path = tmp_path / "seg00000.ts"
    path.write_bytes(b"a" * 100)
    assert files.read(path) == b"a" * 100
    path.write_bytes(b"b" * 120)  # rewritten: another size
    assert files.read(path) == b"b" * 120
    stamp = path.stat()
    path.write_bytes(b"c" * 120)  # the same size, another time
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 1_000_000))
    assert files.read(path) == b"c" * 120
    for i in range(1, 4):
        other = tmp_path / f"seg0000{i}.ts"
        other.write_bytes(bytes([i]) * 100)
        assert files.read(other) == bytes([i]) * 100
        assert files.kept_bytes <= 250
    path.unlink()
    try:
        files.read(path)
        raise AssertionError("a file that is gone was read")
    except FileNotFoundError:
        pass


async def test_a_segment_written_again_under_its_name_is_sent_anew(
    app, client: httpx.AsyncClient
) -> None:
    directory = stream(app, 9)
    path = "/media/hls/9/seg00009.ts"
    for _ in range(2):  # decided once, then answered from the route's hot segments
        assert (await client.get(path)).content == SEGMENT + b"\x09"
    segment = directory / "seg00009.ts"
    stamp = segment.stat()
    segment.write_bytes(SEGMENT + b"\x10")  # an encoder that started again: same name, size
    os.utime(segment, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 1_000_000))
    assert (await client.get(path)).content == SEGMENT + b"\x10"
    segment.unlink()
    assert (await client.get(path)).status_code == 404  # FastAPI's refusal, as before
