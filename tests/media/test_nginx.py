"""The scale path, for real: deploy/nginx/originlive.conf as shipped (only its ports, folders
and secret swapped for the test's) in a real nginx with nginx-rtmp, the app in external mode
behind it. Only the stream key publishes; nginx serves the live HLS under the session's id;
the session ends after the grace period and its replay, cut by the app from nginx's
recording, plays through nginx. Ending a session or rotating its key through the API puts
the encoder out through nginx-rtmp's control."""

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import IN_CI, ROOT
from tests.live.conftest import watch
from tests.media.conftest import codecs, probe, publish, schedule, wait_for
from tests.servers import free_port

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

CONFIG = ROOT / "deploy" / "nginx" / "originlive.conf"
MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")  # Debian's libnginx-mod-rtmp
SECRET = "nginx-test-hook-secret"
GRACE_SECONDS = 3
PUBLISH_SECONDS = 7


@dataclass
class Nginx:
    """A running nginx with the deploy config: where it serves HTTP and takes RTMP."""

    url: str
    rtmp_port: int
    control_url: str  # nginx-rtmp's control (ORIGINLIVE_MEDIA_CONTROL_URL)
    root: Path  # its pid, logs, temp files, HLS and recordings

    @property
    def hls(self) -> Path:
        return self.root / "rtmp" / "hls"

    @property
    def recordings(self) -> Path:
        return self.root / "rtmp" / "recordings"


def nginx_binary() -> str:
    """Debian's nginx with its RTMP module; skipped without them, failed in CI."""
    binary = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    missing = [
        what for what, there in (("nginx", binary), ("nginx-rtmp", MODULE.exists())) if not there
    ]
    if missing:
        message = f"{' and '.join(missing)} not installed"
        if IN_CI:
            pytest.fail(message + " (CI must test the nginx-rtmp path)")
        pytest.skip(message)
    assert binary is not None
    return binary


def render(root: Path, *, app_port: int, http_port: int, rtmp_port: int, control_port: int) -> str:
    """The deploy config with the test's ports, folders and secret, on loopback only."""
    text = CONFIG.read_text()
    temp_paths = "".join(
        f"    {kind}_temp_path {root / 'temp' / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    swaps = {
        # CI runs as root, and the test's folders are root's alone.
        "user www-data;": "user root;",
        "pid /run/nginx.pid;": f"pid {root / 'nginx.pid'};",
        "/var/log/nginx/": f"{root / 'logs'}/",
        "listen 1935;": f"listen 127.0.0.1:{rtmp_port};",
        "rtmp://127.0.0.1:1935/": f"rtmp://127.0.0.1:{rtmp_port}/",
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen 127.0.0.1:8081;": f"listen 127.0.0.1:{control_port};",
        "127.0.0.1:8000": f"127.0.0.1:{app_port}",
        "/var/lib/originlive-rtmp": str(root / "rtmp"),
        "REPLACE-WITH-ORIGINLIVE_MEDIA_HOOK_SECRET": SECRET,
        "http {\n": "http {\n" + temp_paths,  # nginx's built-in ones are under /var/lib
    }
    for old, new in swaps.items():
        assert old in text, f"{CONFIG.name} no longer holds {old!r}: update this test"
        text = text.replace(old, new)
    for outside in ("/var/", "/run/", "REPLACE-WITH"):
        assert outside not in text, f"{CONFIG.name} has an unswapped {outside!r}"
    return text


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 0.2):
            return True
    except OSError:
        return False


def stop_nginx(process: subprocess.Popen[bytes]) -> None:
    """Fast shutdown (its workers with it); the whole process group killed if it lingers."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # workers, should the master have left any
    process.wait()


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Callable[[int], Nginx]]:
    """Start nginx with the deploy config in front of the app at a given port; stopped after."""
    binary = nginx_binary()
    started: list[subprocess.Popen[bytes]] = []
    root = tmp_path / "nginx"

    def start(app_port: int) -> Nginx:
        for folder in ("logs", "temp", "rtmp/hls", "rtmp/recordings"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        http_port, rtmp_port, control_port = free_port(), free_port(), free_port()
        conf = root / "nginx.conf"
        ports = {"http_port": http_port, "rtmp_port": rtmp_port, "control_port": control_port}
        conf.write_text(render(root, app_port=app_port, **ports))
        with (root / "logs" / "nginx.out").open("ab") as log:
            process = subprocess.Popen(
                [binary, "-c", str(conf), "-e", str(root / "logs" / "error.log"),
                 "-g", "daemon off;"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        started.append(process)
        deadline = time.monotonic() + 10
        while not all(listening(port) for port in ports.values()):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not start:\n{_logs(root)}")
            time.sleep(0.05)
        control = f"http://127.0.0.1:{control_port}/control"
        return Nginx(f"http://127.0.0.1:{http_port}", rtmp_port, control, root)

    try:
        yield start
    finally:
        for process in started:
            stop_nginx(process)
        if started:
            print(f"--- nginx\n{_logs(root)}")  # shown when the test fails


def _logs(root: Path) -> str:
    return "\n".join(
        path.read_text(errors="replace")[-5000:]
        for path in sorted((root / "logs").glob("*"))
        if path.is_file()
    )


async def get(url: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.get(url)


async def test_nginx_takes_the_streams_and_the_app_keeps_the_sessions(
    farm, nginx, tmp_path: Path
) -> None:
    app_port = free_port()
    front = nginx(app_port)
    app_url = await farm.start(
        port=app_port,
        ORIGINLIVE_MEDIA_MODE="external",
        ORIGINLIVE_MEDIA_HOOK_SECRET=SECRET,
        ORIGINLIVE_RECONNECT_GRACE_SECONDS=str(GRACE_SECONDS),
        # What anchors and viewers are given: nginx's addresses.
        ORIGINLIVE_PUBLIC_URL=front.url,
        ORIGINLIVE_RTMP_PORT=str(front.rtmp_port),
    )
    merchant, live = await schedule(front.url)  # the API through nginx's proxy
    session_id, key = live["id"], live["stream_key"]
    assert live["ingest_url"] == f"rtmp://127.0.0.1:{front.rtmp_port}/live"
    live_url = f"{front.url}/media/hls/{session_id}/index.m3u8"
    publisher_log = tmp_path / "publisher.log"

    async def session() -> dict:
        async with httpx.AsyncClient(base_url=front.url) as api:
            got = await api.get(f"/api/v1/live-sessions/{session_id}", headers=merchant.headers)
            assert got.status_code == 200, got.text
            return dict(got.json())

    # The hooks are the app's alone: not reachable through nginx, and not without the secret.
    async with httpx.AsyncClient() as client:
        hook = "/api/v1/media/hooks/publish"
        assert (await client.post(f"{front.url}{hook}", data={"name": key})).status_code == 404
        wrong = await client.post(f"{app_url}{hook}?secret=wrong", data={"name": key})
        assert wrong.status_code == 403
    assert (await session())["status"] == "scheduled"
    # Styles and scripts reach slow phones compressed, through nginx as from the app itself.
    async with httpx.AsyncClient() as client:
        script = "/static/vendor/hls.js-1.7.4/hls.light.min.js"
        packed = await client.get(f"{front.url}{script}", headers={"Accept-Encoding": "gzip"})
        plain = await client.get(f"{app_url}{script}", headers={"Accept-Encoding": "gzip"})
        assert packed.headers["content-encoding"] == "gzip" and packed.content == plain.content
        assert packed.num_bytes_downloaded < len(plain.content) / 2  # 389 KB → about 120 KB

    publishers: list[subprocess.Popen[bytes]] = []
    try:
        # (a) A wrong key: nginx refuses it, nothing is written, the session stays scheduled.
        refused = publish(f"{live['ingest_url']}/live_not-the-key", seconds=3, log=publisher_log)
        publishers.append(refused)
        assert await asyncio.to_thread(refused.wait, 20) != 0
        assert (await session())["status"] == "scheduled"
        assert not any(front.hls.iterdir()) and not any(front.recordings.iterdir())
        missing = await get(live_url)  # nginx has nothing: the app answers
        assert missing.status_code == 404 and "not streaming" in missing.text

        # (b) The key: live (the room, through nginx's WebSocket proxy, is told), and nginx
        # serves the HLS under the session's id.
        room = front.url.replace("http://", "ws://") + live["room_url"]
        async with watch(room) as viewer:
            assert viewer.state["session"]["status"] == "scheduled"
            started = time.monotonic()
            publisher = publish(
                f"{live['ingest_url']}/{key}", seconds=PUBLISH_SECONDS, log=publisher_log
            )
            publishers.append(publisher)
            await viewer.wait_for(lambda w: any(e["status"] == "live" for e in w.of("status")), 15)

        async def playlist() -> httpx.Response | None:
            got = await get(live_url)
            return got if got.status_code == 200 and "#EXTINF" in got.text else None

        got = await wait_for(playlist, timeout=15, every=0.2)
        print(f"first playable segment {time.monotonic() - started:.2f} s after publishing began")
        assert got.headers["content-type"] == "application/vnd.apple.mpegurl"
        assert got.headers["cache-control"] == "no-cache"
        assert got.headers["x-content-type-options"] == "nosniff"
        assert (await session())["status"] == "live"
        assert [p.name for p in front.hls.iterdir()] == [str(session_id)]
        assert key not in got.text
        segment = next(line for line in got.text.splitlines() if line.endswith(".ts"))
        got = await get(f"{front.url}/media/hls/{session_id}/{segment}")
        assert got.status_code == 200
        assert got.headers["content-type"] == "video/mp2t"
        assert "max-age" in got.headers["cache-control"]
        (tmp_path / "first.ts").write_bytes(got.content)
        info = probe(tmp_path / "first.ts")
        assert codecs(info) == {"h264", "aac"}
        video = next(s for s in info["streams"] if s["codec_type"] == "video")
        assert int(video["nb_read_frames"]) >= 20  # a second at 25 frames a second

        # (c) The publisher stops: still live for the grace period, then ended; the replay,
        # cut from nginx's recording, plays through nginx.
        assert await asyncio.to_thread(publisher.wait, 30) == 0
        stopped = time.monotonic()
        assert (await session())["status"] == "live"

        async def ended_with_replay() -> dict | None:
            current = await session()
            return current if current["status"] == "ended" and current["replay_url"] else None

        ended = await wait_for(ended_with_replay, timeout=20, every=0.25)
        assert time.monotonic() - stopped >= GRACE_SECONDS - 0.5
        assert [p.name.split("-")[0] for p in front.recordings.glob("*.flv")] == [str(session_id)]
        # The published length, but for up to a keyframe interval or so at the start: what the
        # encoder sends before nginx has handed the stream on to "session" is not recorded.
        assert PUBLISH_SECONDS - 2 <= ended["recording_seconds"] <= PUBLISH_SECONDS + 1
        replay = ended["replay_url"]
        assert replay == f"{front.url}/media/recordings/{session_id}/index.m3u8"
        vod = await get(replay)
        assert vod.status_code == 200
        assert "#EXT-X-ENDLIST" in vod.text and "#EXT-X-PLAYLIST-TYPE:VOD" in vod.text
        whole = probe(replay)
        assert codecs(whole) == {"h264", "aac"}
        assert PUBLISH_SECONDS - 2 <= float(whole["format"]["duration"]) <= PUBLISH_SECONDS + 1
    finally:
        for process in publishers:
            if process.poll() is None:
                process.kill()
            process.wait()


def segments(folder: Path) -> set[str]:
    """The HLS segments nginx has written to a session's folder so far."""
    return {p.name for p in folder.glob("*.ts")} if folder.is_dir() else set()


async def test_ending_or_rotating_the_key_puts_the_encoder_out(farm, nginx, tmp_path: Path) -> None:
    app_port = free_port()
    front = nginx(app_port)
    await farm.start(
        port=app_port,
        ORIGINLIVE_MEDIA_MODE="external",
        ORIGINLIVE_MEDIA_HOOK_SECRET=SECRET,
        ORIGINLIVE_MEDIA_CONTROL_URL=front.control_url,
        ORIGINLIVE_PUBLIC_URL=front.url,
        ORIGINLIVE_RTMP_PORT=str(front.rtmp_port),
    )
    publisher_log = tmp_path / "publisher.log"
    publishers: list[subprocess.Popen[bytes]] = []

    def start_publishing(ingest_url: str, key: str) -> subprocess.Popen[bytes]:
        # Far longer than the test: only nginx putting it out ends it in time.
        process = publish(f"{ingest_url}/{key}", seconds=60, log=publisher_log)
        publishers.append(process)
        return process

    async def streaming(folder: Path, after: Iterable[str] = ()) -> None:
        """Wait for nginx to write a segment not among ``after``: the stream has gone all the
        way through "live" and "session"."""
        await wait_for(lambda: segments(folder).difference(after), timeout=15, every=0.1)

    async def put_out(process: subprocess.Popen[bytes]) -> float:
        """Seconds until the publisher exits (it would stream on for a minute)."""
        began = time.monotonic()
        await asyncio.to_thread(process.wait, 5)
        return time.monotonic() - began

    try:
        async with httpx.AsyncClient(base_url=front.url) as api:
            # (a) Ending the session: the encoder is put out, and nginx writes no more HLS.
            merchant, live = await schedule(front.url)
            folder = front.hls / str(live["id"])
            publisher = start_publishing(live["ingest_url"], live["stream_key"])
            await streaming(folder)
            ended = await api.post(
                f"/api/v1/live-sessions/{live['id']}/end", headers=merchant.headers
            )
            assert ended.status_code == 200, ended.text
            print(f"publisher put out {await put_out(publisher):.2f} s after the end")
            await asyncio.sleep(0.5)  # nginx closes the last segment as the stream goes
            written = segments(folder)
            await asyncio.sleep(2)  # a segment a second while the encoder streamed
            assert segments(folder) == written

            # (b) Rotating the key while publishing: the encoder is put out, the old key is
            # refused, the new key publishes (the session live throughout, in its grace).
            merchant, live = await schedule(front.url)
            url = f"/api/v1/live-sessions/{live['id']}"
            folder = front.hls / str(live["id"])
            old_key = live["stream_key"]
            publisher = start_publishing(live["ingest_url"], old_key)
            await streaming(folder)
            rotated = await api.post(f"{url}/stream-key", headers=merchant.headers)
            assert rotated.status_code == 200, rotated.text
            new_key = rotated.json()["stream_key"]
            assert new_key != old_key
            print(f"publisher put out {await put_out(publisher):.2f} s after the rotation")

            again = start_publishing(live["ingest_url"], old_key)
            assert await asyncio.to_thread(again.wait, 10) != 0
            written = segments(folder)
            start_publishing(live["ingest_url"], new_key)
            await streaming(folder, after=written)
            got = await api.get(url, headers=merchant.headers)
            assert got.json()["status"] == "live"
    finally:
        for process in publishers:
            if process.poll() is None:
                process.kill()
            process.wait()
