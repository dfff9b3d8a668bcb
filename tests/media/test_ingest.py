"""Publishing to the embedded ingest with a real ffmpeg: the key gates it, the session goes
live, HLS comes out and decodes, the session ends after the grace period, the replay plays."""

import datetime as dt
import os
import signal
import subprocess
import time

import httpx
import pytest

from tests.live.conftest import watch
from tests.media.conftest import Studio, codecs, probe, publisher, wait_for

# Video runs take seconds each: SQLite only (the sessions' rules run on both in tests/live).
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


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

    room = studio.url.replace("http://", "ws://") + f"/ws/live/{studio.session_id}"
    async with watch(room) as viewer:
        assert viewer.state["session"]["status"] == "scheduled"
        started = time.monotonic()
        publisher = studio.publish(8)
        # Publishing makes the session live: the room is told.
        await viewer.wait_for(lambda w: any(e["status"] == "live" for e in w.of("status")), 20)
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
    # Segments carry their wall-clock time: the replay timeline (offsets from started_at)
    # lines up with the recording.
    first = next(x for x in vod.splitlines() if x.startswith("#EXT-X-PROGRAM-DATE-TIME:"))
    recorded_from = dt.datetime.strptime(first.split(":", 1)[1], "%Y-%m-%dT%H:%M:%S.%f%z")
    started_at = dt.datetime.fromisoformat(session["started_at"])
    assert abs((recorded_from - started_at).total_seconds()) < 3
    whole = probe(replay)
    assert 7 <= float(whole["format"]["duration"]) <= 9.5
    # The live address now gives the recording too.
    assert "#EXT-X-ENDLIST" in (await playlist(live_url) or "")


async def _ended_with_replay(studio: Studio):
    session = await _ended(studio)
    return session if session and session["replay_url"] else None


async def test_an_encoder_that_drops_and_returns_within_the_grace_period(studio_factory) -> None:
    studio: Studio = await studio_factory(RECONNECT_GRACE_SECONDS="5")
    live_url = f"{studio.url}/media/hls/{studio.session_id}/index.m3u8"
    assert studio.publish(4).wait(timeout=30) == 0
    assert await studio.status() == "live"
    time.sleep(1)  # the phone's network is back
    again = studio.publish(4)
    await wait_for(lambda: _has(live_url, "#EXT-X-DISCONTINUITY"), timeout=20)
    assert again.wait(timeout=30) == 0
    assert await studio.status() == "live"  # never ended in between
    session = await wait_for(lambda: _ended_with_replay(studio), timeout=20, every=0.5)
    vod = await playlist(session["replay_url"])
    assert vod is not None and vod.count("#EXT-X-DISCONTINUITY\n") == 1
    numbers = [int(line[3:8]) for line in vod.splitlines() if line.startswith("seg")]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))  # none overwritten
    assert 7 <= probe_duration(session["replay_url"]) <= 10


async def test_a_new_connection_with_the_key_replaces_a_stale_one(studio_factory) -> None:
    studio: Studio = await studio_factory()
    first = studio.publish(30)
    await wait_for(
        lambda: playlist(f"{studio.url}/media/hls/{studio.session_id}/index.m3u8"), timeout=20
    )
    second = studio.publish(3)
    assert first.wait(timeout=20) != 0  # put out for the newer one
    assert second.wait(timeout=30) == 0
    assert await studio.status() == "live"


async def test_ending_the_session_puts_the_encoder_out_and_keeps_the_recording(
    studio_factory,
) -> None:
    studio: Studio = await studio_factory(RECONNECT_GRACE_SECONDS="60")
    publisher = studio.publish(60)
    await wait_for(
        lambda: playlist(f"{studio.url}/media/hls/{studio.session_id}/index.m3u8"), timeout=20
    )
    time.sleep(2)
    async with httpx.AsyncClient(base_url=studio.url) as api:
        ended = await api.post(
            f"/api/v1/live-sessions/{studio.session_id}/end", headers=studio.merchant.headers
        )
        assert ended.status_code == 200
    assert publisher.wait(timeout=10) != 0  # the encoder is told to stop within seconds
    session = await wait_for(lambda: _ended_with_replay(studio), timeout=20, every=0.5)
    assert probe_duration(session["replay_url"]) >= 2
    # An ended session's key publishes no more.
    assert studio.publish(2).wait(timeout=20) != 0


async def test_a_rotated_key_is_refused_and_puts_its_encoder_out(studio_factory) -> None:
    studio: Studio = await studio_factory()
    publisher = studio.publish(60)
    await wait_for(
        lambda: playlist(f"{studio.url}/media/hls/{studio.session_id}/index.m3u8"), timeout=20
    )
    async with httpx.AsyncClient(base_url=studio.url) as api:
        rotated = await api.post(
            f"/api/v1/live-sessions/{studio.session_id}/stream-key",
            headers=studio.merchant.headers,
        )
        assert rotated.status_code == 200
        new_key = rotated.json()["stream_key"]
    assert publisher.wait(timeout=10) != 0
    assert studio.publish(2).wait(timeout=20) != 0  # the old key
    assert studio.publish(2, key=new_key).wait(timeout=30) == 0
    assert await studio.status() == "live"


async def test_ffmpeg_is_restarted_when_it_dies_and_never_left_behind(studio_factory, farm) -> None:
    studio: Studio = await studio_factory()
    live_url = f"{studio.url}/media/hls/{studio.session_id}/index.m3u8"
    publisher = studio.publish(60)
    await wait_for(lambda: playlist(live_url), timeout=20)
    server = farm.processes[studio.url]
    first = children(server.pid)
    assert len(first) == 1
    os.kill(first[0], signal.SIGKILL)
    # A new ffmpeg takes over, the stream goes on, after a discontinuity.
    await wait_for(lambda: (c := children(server.pid)) and c != first, timeout=10)
    await wait_for(lambda: _has(live_url, "#EXT-X-DISCONTINUITY"), timeout=20)
    assert publisher.poll() is None
    # The platform is killed outright: its ffmpeg dies with it.
    survivor = children(server.pid)
    farm.kill(studio.url)
    await wait_for(
        lambda: not any(os.path.exists(f"/proc/{p}") and not _zombie(p) for p in survivor),
        timeout=5,
    )
    publisher.kill()
    publisher.wait()


def children(pid: int) -> list[int]:
    """The ffmpeg processes the server runs."""
    found = subprocess.run(["pgrep", "-P", str(pid), "ffmpeg"], capture_output=True, text=True)
    return sorted(int(p) for p in found.stdout.split())


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def probe_duration(url: str) -> float:
    return float(probe(url)["format"]["duration"])


async def _has(url: str, text: str) -> bool:
    return text in (await playlist(url) or "")


async def test_renditions_ladder_in_one_master_playlist(studio_factory) -> None:
    studio: Studio = await studio_factory(RENDITIONS="true")
    base = f"{studio.url}/media/hls/{studio.session_id}"
    publisher = publish_720p(studio, seconds=8)
    master = await wait_for(lambda: playlist(f"{base}/index.m3u8"), timeout=30)
    assert master.count("#EXT-X-STREAM-INF") == 3
    expected = {
        "720p": ({"h264", "aac"}, 720),
        "360p": ({"h264", "aac"}, 360),
        "audio": ({"aac"}, None),
    }
    for variant, (names, height) in expected.items():
        assert f"{variant}/index.m3u8" in master
        text = await wait_for(lambda v=variant: playlist(f"{base}/{v}/index.m3u8"), timeout=30)
        segment = next(line for line in text.splitlines() if line.endswith(".ts"))
        async with httpx.AsyncClient() as api:
            got = await api.get(f"{base}/{variant}/{segment}")
        path = studio.tmp_path / f"{variant}.ts"
        path.write_bytes(got.content)
        info = probe(path)
        assert codecs(info) == names, variant
        if height:
            assert (
                next(s for s in info["streams"] if s["codec_type"] == "video")["height"] == height
            )
    publisher.kill()
    publisher.wait()


def publish_720p(studio: Studio, *, seconds: float) -> subprocess.Popen[bytes]:
    with (studio.tmp_path / "publisher.log").open("ab") as log:
        return subprocess.Popen(
            publisher(studio.rtmp(), seconds=seconds, size="1280x720"), stdout=log, stderr=log
        )


async def test_a_platform_stopped_mid_stream_leaves_no_ffmpeg_and_a_crash_ends_the_session(
    studio_factory, farm
) -> None:
    studio: Studio = await studio_factory(RECONNECT_GRACE_SECONDS="30")
    live_url = f"{studio.url}/media/hls/{studio.session_id}/index.m3u8"
    publisher = studio.publish(60)
    await wait_for(lambda: playlist(live_url), timeout=20)
    server = farm.processes.pop(studio.url)
    ffmpeg = children(server.pid)
    server.terminate()  # a clean stop: its ffmpeg finishes and exits with it
    assert server.wait(timeout=15) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal
    assert not [p for p in ffmpeg if os.path.exists(f"/proc/{p}") and not _zombie(p)]
    assert publisher.wait(timeout=10) != 0  # the encoder was put out
    # Back up; the encoder returns (OBS reconnects by itself), then the platform is killed.
    port = int(studio.url.rsplit(":", 1)[1])
    url = await farm.start(
        port=port,
        ORIGINLIVE_RTMP_PORT=str(studio.rtmp_port),
        ORIGINLIVE_RECONNECT_GRACE_SECONDS="30",
    )
    publisher = studio.publish(60)
    await wait_for(lambda: _has(live_url, "#EXT-X-DISCONTINUITY"), timeout=20)
    farm.kill(url)
    publisher.wait(timeout=10)
    # After the crash nobody streams: once up again, the grace period runs out and the
    # session ends with what was recorded before.
    await farm.start(
        port=port,
        ORIGINLIVE_RTMP_PORT=str(studio.rtmp_port),
        ORIGINLIVE_RECONNECT_GRACE_SECONDS="3",
    )
    session = await wait_for(lambda: _ended_with_replay(studio), timeout=20, every=0.5)
    assert probe_duration(session["replay_url"]) >= 1


async def test_an_ffmpeg_that_keeps_failing_puts_the_stream_out(studio_factory) -> None:
    studio: Studio = await studio_factory(FFMPEG="/bin/false")
    publisher = studio.publish(30)
    assert publisher.wait(timeout=20) != 0  # given up on, not retried for ever
    # The session went live with the publish, and ends after the grace period, unrecorded.
    session = await wait_for(lambda: _ended(studio), timeout=20, every=0.5)
    assert session["replay_url"] is None


async def _ended(studio: Studio):
    session = await studio.session()
    return session if session["status"] == "ended" else None
