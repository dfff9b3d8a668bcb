"""Publishing to the embedded ingest with a real ffmpeg: the key gates it, the session goes
live, HLS comes out and decodes, the session ends after the grace period, the replay plays."""

import time

import httpx

from tests.media.conftest import Studio, codecs, probe, wait_for


async def playlist(url: str) -> str | None:
    async with httpx.AsyncClient(base_url=url) as api:
        got = await api.get(url)
        return got.text if got.status_code == 200 else None


async def test_only_the_key_publishes_and_the_stream_plays_then_replays(studio_factory) -> None:
    studio: Studio = await studio_factory()
    live_url = f"{studio.url}/media/hls/{studio.session_id}/index.m3u8"

    # A wrong key: refused, nothing written, the session stays scheduled.
    wrong = studio.publish(3, key="live_not-the-key")
    assert wrong.wait(timeout=20) != 0
    assert await studio.status() == "scheduled"
    assert await playlist(live_url) is None

    started = time.monotonic()
    publisher = studio.publish(8)
    text = await wait_for(lambda: playlist(live_url), timeout=20)
    first_segment_after = time.monotonic() - started
    assert "#EXTINF" in text and "#EXT-X-ENDLIST" not in text
    assert await studio.status() == "live"
    segment = next(line for line in text.splitlines() if line.endswith(".ts"))
    async with httpx.AsyncClient(base_url=studio.url) as api:
        got = await api.get(f"/media/hls/{studio.session_id}/{segment}")
        assert got.status_code == 200
        assert got.headers["content-type"] == "video/mp2t"
        assert "immutable" in got.headers["cache-control"]
    path = studio.tmp_path / "first.ts"
    path.write_bytes(got.content)
    info = probe(path)
    assert codecs(info) == {"h264", "aac"}
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    assert int(video["nb_read_frames"]) >= 20  # about a second at 25 frames a second
    print(f"first playable segment {first_segment_after:.2f} s after publishing began")

    assert publisher.wait(timeout=30) == 0
    # Still live during the grace period (3 s here), then ended with a recording.
    assert await studio.status() == "live"
    session = await wait_for(lambda: _ended_with_replay(studio), timeout=20, every=0.5)
    assert session["recording_seconds"] > 6
    replay = session["replay_url"]
    assert replay.endswith(f"/media/recordings/{studio.session_id}/index.m3u8")
    vod = await playlist(replay)
    assert vod is not None and "#EXT-X-ENDLIST" in vod and "#EXT-X-PLAYLIST-TYPE:VOD" in vod
    whole = probe(replay)
    assert 7 <= float(whole["format"]["duration"]) <= 9.5
    # The live address now gives the recording too.
    assert "#EXT-X-ENDLIST" in (await playlist(live_url) or "")


async def _ended_with_replay(studio: Studio):
    session = await studio.session()
    return session if session["status"] == "ended" and session["replay_url"] else None
