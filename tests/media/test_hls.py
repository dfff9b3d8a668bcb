"""Live windows and recordings made of ffmpeg's event playlists, and what may be served."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from originlive.media import hls

EVENT = "\n".join(
    ["#EXTM3U", "#EXT-X-VERSION:6", "#EXT-X-TARGETDURATION:1", "#EXT-X-MEDIA-SEQUENCE:0",
     "#EXT-X-PLAYLIST-TYPE:EVENT", "#EXT-X-DISCONTINUITY", "#EXT-X-INDEPENDENT-SEGMENTS"]
    + [line for i in range(10)
       for line in ((["#EXT-X-DISCONTINUITY"] if i in (0, 6) else [])
                    + ["#EXTINF:1.000000,", f"seg{i:05d}.ts"])]
)  # fmt: skip


def test_the_live_window_keeps_the_numbering() -> None:
    playlist = hls.parse(EVENT)
    assert len(playlist.segments) == 10 and playlist.seconds == 10
    # ffmpeg's header discontinuity, before the very first segment, means nothing.
    assert [s.discontinuity for s in playlist.segments].count(True) == 1
    wide = playlist.window(6)
    assert "#EXT-X-MEDIA-SEQUENCE:4" in wide and "DISCONTINUITY-SEQUENCE" not in wide
    assert wide.count("#EXT-X-DISCONTINUITY\n") == 1 and "seg00003.ts" not in wide
    narrow = playlist.window(3)
    assert "#EXT-X-MEDIA-SEQUENCE:7" in narrow and "#EXT-X-DISCONTINUITY-SEQUENCE:1" in narrow
    assert "PLAYLIST-TYPE" not in narrow and "ENDLIST" not in narrow


def test_the_recording_lists_everything_and_ends() -> None:
    vod = hls.parse(EVENT).render(vod=True)
    assert vod.count(".ts") == 10 and vod.endswith("#EXT-X-ENDLIST\n")
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in vod and "#EXT-X-MEDIA-SEQUENCE:0" in vod


@pytest.mark.parametrize(
    "path",
    ["stream.m3u8", "vod.m3u8", "../secret_key", "seg1.ts", "720p/../x.ts", "4k/index.m3u8",
     "seg00001.ts.tmp", "/etc/passwd", "index.m3u8/", ""],
)  # fmt: skip
async def test_nothing_but_playlists_and_segments_is_served(client, path) -> None:
    for prefix in ("/media/hls/1/", "/media/recordings/1/"):
        got = await client.get(prefix + path)
        assert got.status_code == 404, (prefix + path, got.text)


async def test_no_stream_yet_is_a_404(client) -> None:
    got = await client.get("/media/hls/1/index.m3u8")
    assert got.status_code == 404
    assert "not streaming" in got.json()["detail"]


def event_playlist(count: int, breaks: set[int]) -> str:
    """As ffmpeg writes it after a reconnect (discont_start), with wall-clock times."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:6", "#EXT-X-TARGETDURATION:1"]
    lines += ["#EXT-X-MEDIA-SEQUENCE:0", "#EXT-X-PLAYLIST-TYPE:EVENT", "#EXT-X-DISCONTINUITY"]
    lines += ["#EXT-X-INDEPENDENT-SEGMENTS"]
    for i in range(count):
        if i in breaks or i == 0:
            lines.append("#EXT-X-DISCONTINUITY")
        clock = f"2026-11-24T22:{i // 60 % 60:02d}:{i % 60:02d}.974+0000"
        lines += ["#EXTINF:1.000000,", f"#EXT-X-PROGRAM-DATE-TIME:{clock}", f"seg{i:05d}.ts"]
    return "\n".join(lines) + "\n"


@given(
    count=st.integers(1, 400),
    breaks=st.sets(st.integers(0, 399), max_size=6),
    size=st.sampled_from([3, 6, 10]),
)
def test_the_window_from_the_tail_is_the_window_of_the_whole(count, breaks, size) -> None:
    text = event_playlist(count, breaks)
    assert hls.live_window(text, size) == hls.parse(text).window(size)
