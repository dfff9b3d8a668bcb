"""`make demo` shows moving video in its live session without anyone running an encoder."""

import httpx
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from originlive.demo import seed_session
from tests.media.conftest import codecs, probe, wait_for

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


async def test_the_demo_session_streams_a_test_picture(farm, database_url, tmp_path) -> None:
    engine = create_async_engine(database_url)
    try:
        async with async_sessionmaker(engine, expire_on_commit=False)() as session:
            await seed_session(session)
            await session.commit()
    finally:
        await engine.dispose()
    url = await farm.start(ORIGINLIVE_DEMO_BROADCAST="true")
    async with httpx.AsyncClient(base_url=url) as api:
        live = (await api.get("/api/v1/live-sessions", params={"status": "live"})).json()
        [session] = live["items"]
        playlist = f"/media/hls/{session['id']}/index.m3u8"

        async def segment() -> bytes | None:
            got = await api.get(playlist)
            if got.status_code != 200:
                return None
            name = [line for line in got.text.splitlines() if line.endswith(".ts")][-1]
            return (await api.get(f"/media/hls/{session['id']}/{name}")).content

        data = await wait_for(segment, timeout=30)
    path = tmp_path / "demo.ts"
    path.write_bytes(data)
    info = probe(path)
    assert codecs(info) == {"h264", "aac"}
    assert next(s for s in info["streams"] if s["codec_type"] == "video")["width"] == 640
