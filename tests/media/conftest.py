"""A real ffmpeg publishing a test picture over RTMP, and ffprobe to check what comes out."""

import asyncio
import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from originlive.media.ffmpeg import ffmpeg_binary
from tests.conftest import IN_CI, PASSWORD
from tests.crowd import Merchant, merchant_with_shop
from tests.servers import free_port

FPS = 25


def publisher(
    url: str, *, seconds: float, size: str = "640x360", text: str | None = None
) -> list[str]:
    """ffmpeg sending ``seconds`` of a moving test picture with a tone, in real time, a
    keyframe a second, as an anchor's encoder would."""
    video = f"testsrc2=size={size}:rate={FPS}"
    if text:
        video += f",drawtext=text='{text}':fontcolor=white:fontsize=36:x=20:y=20"
    return [
        ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-re",
        "-f", "lavfi", "-i", video, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
        "-t", f"{seconds:g}", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
        "-g", str(FPS), "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", "-f", "flv", url,
    ]  # fmt: skip


def publish(url: str, *, seconds: float, log: Path) -> subprocess.Popen[bytes]:
    """Start publishing (see :func:`publisher`)."""
    with log.open("ab") as out:
        return subprocess.Popen(publisher(url, seconds=seconds), stdout=out, stderr=out)


def ffprobe() -> str:
    """Debian's ffprobe (the wheel ships ffmpeg alone); CI installs it."""
    path = shutil.which("ffprobe")
    if path is None:
        if IN_CI:
            pytest.fail("ffprobe is not installed (CI must test video)")
        pytest.skip("ffprobe is not installed")
    return path


def probe(target: str | Path) -> dict[str, Any]:
    """ffprobe's streams and format of a file or URL, after decoding every frame."""
    result = subprocess.run(
        [ffprobe(), "-v", "error", "-count_frames", "-show_streams", "-show_format",
         "-of", "json", str(target)],
        capture_output=True, check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    info: dict[str, Any] = json.loads(result.stdout)
    return info


def codecs(info: dict[str, Any]) -> set[str]:
    return {s["codec_name"] for s in info["streams"]}


async def wait_for(check: Callable[[], Any], *, timeout: float, every: float = 0.1) -> Any:
    """Poll ``check`` (sync or async) until it returns something true; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not so within {timeout} s")
        await asyncio.sleep(every)


@dataclass
class Studio:
    """A server taking RTMP, and a merchant with a scheduled session."""

    url: str
    rtmp_port: int
    merchant: Merchant
    session_id: int
    stream_key: str
    tmp_path: Path

    def rtmp(self, key: str | None = None) -> str:
        return f"rtmp://127.0.0.1:{self.rtmp_port}/live/{key or self.stream_key}"

    def publish(self, seconds: float, key: str | None = None) -> subprocess.Popen[bytes]:
        return publish(self.rtmp(key), seconds=seconds, log=self.tmp_path / "publisher.log")

    async def session(self) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.url) as api:
            got = await api.get(
                f"/api/v1/live-sessions/{self.session_id}", headers=self.merchant.headers
            )
            assert got.status_code == 200, got.text
            return dict(got.json())

    async def status(self) -> str:
        return str((await self.session())["status"])


async def schedule(url: str) -> tuple[Merchant, dict[str, Any]]:
    """A merchant with an approved shop and a scheduled session of it."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as api:
        email = f"grower-{uuid.uuid4().hex}@example.com"
        merchant = await merchant_with_shop(api, stock=100, password=PASSWORD, email=email)
        created = await api.post(
            "/api/v1/live-sessions",
            json={"shop_id": merchant.shop_id, "title": "多肉大棚直播"},
            headers=merchant.headers,
        )
        assert created.status_code == 201, created.text
        return merchant, created.json()


@pytest.fixture
def studio_factory(farm: Any, tmp_path: Path) -> Callable[..., Any]:
    """Start a server taking RTMP on a free port (with extra settings) and schedule a session."""

    async def make(**env: str) -> Studio:
        rtmp_port = free_port()
        settings = {
            "ORIGINLIVE_RTMP_PORT": str(rtmp_port),
            "ORIGINLIVE_RECONNECT_GRACE_SECONDS": "3",
        }
        url = await farm.start(**(settings | {f"ORIGINLIVE_{k}": v for k, v in env.items()}))
        merchant, live = await schedule(url)
        return Studio(url, rtmp_port, merchant, int(live["id"]), live["stream_key"], tmp_path)

    return make


from tests.orders.conftest import market  # noqa: E402, F401 - the orders tests' shop, reused
