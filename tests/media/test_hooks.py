"""The hooks nginx-rtmp and SRS call, in-process on SQLite and PostgreSQL: only valid stream
keys publish, the secret guards the rest, bad input writes nothing, recordings are cut."""

import asyncio
import subprocess
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.live.models import LiveSession
from originlive.media.ffmpeg import ffmpeg_binary
from originlive.settings import Settings
from tests.live.test_api import schedule
from tests.media.conftest import codecs, probe, wait_for
from tests.orders.conftest import Market

SECRET = "hook-secret-for-tests"
HOOKS = "/api/v1/media/hooks"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The external mode: nginx-rtmp takes the streams; no grace period, to end at once."""
    return settings.model_copy(
        update={"media_mode": "external", "media_hook_secret": SECRET, "reconnect_grace_seconds": 0}
    )


def nginx(name: str, **fields: str) -> dict[str, str]:
    return {"call": "publish", "app": "live", "addr": "10.0.0.7", "name": name} | fields


async def session_row(db: AsyncSession, session_id: int) -> LiveSession:
    db.expire_all()
    live = await db.get(LiveSession, session_id)
    assert live is not None
    return live


async def test_only_a_valid_key_with_the_secret_publishes(
    market: Market, client: httpx.AsyncClient, db: AsyncSession
) -> None:
    live = await schedule(market)
    key, sid = live["stream_key"], live["id"]
    refused: list[tuple[str, dict[str, Any]]] = [
        (f"{HOOKS}/publish", {"data": nginx(key)}),  # no secret
        (f"{HOOKS}/publish?secret=wrong", {"data": nginx(key)}),
        (f"{HOOKS}/publish?secret={SECRET}", {"data": nginx("live_unknown")}),
        (f"{HOOKS}/publish?secret={SECRET}", {"data": nginx("")}),
        (f"{HOOKS}/publish?secret={SECRET}", {"data": nginx("999999")}),  # no such session
    ]
    for url, body in refused:
        got = await client.post(url, **body)
        assert got.status_code == 403, (url, body, got.text)
        assert got.headers["content-type"] == "application/problem+json"
    assert (await session_row(db, sid)).status == "scheduled"

    # nginx-rtmp: a redirect to the session's id renames the stream.
    got = await client.post(f"{HOOKS}/publish?secret={SECRET}", data=nginx(key))
    assert got.status_code == 302 and got.headers["location"] == str(sid)
    row = await session_row(db, sid)
    assert row.status == "live" and row.stream_connected_at is not None
    # ... and its second application publishes the renamed stream, by id.
    got = await client.post(f"{HOOKS}/publish?secret={SECRET}", data=nginx(str(sid), app="session"))
    assert got.status_code == 200
    # SRS sends JSON and wants {"code": 0}.
    body = {"action": "on_publish", "app": "live", "stream": key, "param": ""}
    got = await client.post(f"{HOOKS}/publish?secret={SECRET}", json=body)
    assert got.status_code == 200 and got.json() == {"code": 0}


async def test_bad_bodies_are_refused_and_write_nothing(
    market: Market, client: httpx.AsyncClient, db: AsyncSession
) -> None:
    live = await schedule(market)
    url = f"{HOOKS}/publish?secret={SECRET}"
    for raw in (b"{not json", b"[1, 2]", b'"live_x"'):
        got = await client.post(url, content=raw, headers={"content-type": "application/json"})
        assert got.status_code == 422, raw
    for hook in ("publish-done", "record-done"):
        got = await client.post(f"{HOOKS}/{hook}?secret={SECRET}", data={"name": "live_nope"})
        assert got.status_code == 403, hook
    got = await client.post(
        f"{HOOKS}/record-done?secret={SECRET}",
        data={"name": str(live["id"]), "path": "/etc/passwd"},
    )
    assert got.status_code == 422
    row = await session_row(db, live["id"])
    assert row.status == "scheduled" and row.stream_connected_at is None


async def test_without_a_secret_ids_and_recordings_are_refused(
    app: Any, market: Market, client: httpx.AsyncClient
) -> None:
    app.state.settings = app.state.settings.model_copy(update={"media_hook_secret": None})
    live = await schedule(market)
    for hook, fields in (
        ("publish", nginx(str(live["id"]))),
        ("publish-done", nginx(str(live["id"]))),
        ("record-done", nginx(str(live["id"]), path="/tmp/x.flv")),
    ):
        assert (await client.post(f"{HOOKS}/{hook}", data=fields)).status_code == 403, hook
    # A valid key still publishes: the key is the secret.
    got = await client.post(f"{HOOKS}/publish", data=nginx(live["stream_key"]))
    assert got.status_code == 302


async def test_publish_done_ends_the_session_after_the_grace_and_record_done_makes_the_replay(
    app: Any, market: Market, client: httpx.AsyncClient, db: AsyncSession, tmp_path
) -> None:
    live = await schedule(market)
    sid = live["id"]
    assert (
        await client.post(f"{HOOKS}/publish?secret={SECRET}", data=nginx(live["stream_key"]))
    ).status_code == 302
    got = await client.post(
        f"{HOOKS}/publish-done?secret={SECRET}", data=nginx(str(sid), call="publish_done")
    )
    assert got.status_code == 200
    assert (await session_row(db, sid)).stream_dropped_at is not None
    await app.state.media.sweep()  # the grace period (0 s here) has run out
    assert (await session_row(db, sid)).status == "ended"

    # nginx-rtmp recorded the publish to an FLV file.
    flv = tmp_path / f"{sid}-1764000000.flv"
    await asyncio.to_thread(
        subprocess.run,
        [ffmpeg_binary(), "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
         "-f", "lavfi", "-i", "sine", "-t", "4", "-c:v", "libx264", "-g", "25",
         "-c:a", "aac", "-f", "flv", str(flv)],
        check=True,
    )  # fmt: skip
    fields = nginx(str(sid), call="record_done", path=str(flv))
    got = await client.post(f"{HOOKS}/record-done?secret={SECRET}", data=fields)
    assert got.status_code == 202

    async def replay() -> str | None:
        view = (await client.get(f"/api/v1/live-sessions/{sid}")).json()
        return view["replay_url"]

    url = await wait_for(replay, timeout=20)
    assert url.endswith(f"/media/recordings/{sid}/index.m3u8")
    vod = await client.get(f"/media/recordings/{sid}/index.m3u8")
    assert vod.status_code == 200 and "#EXT-X-ENDLIST" in vod.text
    segment = next(line for line in vod.text.splitlines() if line.endswith(".ts"))
    data = (await client.get(f"/media/recordings/{sid}/{segment}")).content
    (tmp_path / "replay.ts").write_bytes(data)
    assert codecs(probe(tmp_path / "replay.ts")) == {"h264", "aac"}


async def test_what_a_hook_cannot_read_is_a_4xx_with_the_secret_or_without(
    app: Any, market: Market, client: httpx.AsyncClient, db: AsyncSession
) -> None:
    live = await schedule(market)
    nested = [
        b"[" * 5000 + b"]" * 5000,  # json.loads: RecursionError
        b'{"stream": "x", "param": ' + b"[" * 40 + b"]" * 40 + b"}",  # past our depth limit
        b'{"stream": "\\ud800"}',  # a lone surrogate
    ]
    # Digits str.isdigit() takes and int() refuses, and ids past the keys' range.
    names = ["²", "١٢", "2147483648", "9" * 30, "0"]
    for query in (f"?secret={SECRET}", ""):
        if not query:  # the demo: no secret, no login
            settings = app.state.settings.model_copy(update={"media_hook_secret": None})
            app.state.settings = settings
        for hook in ("publish", "publish-done"):
            for raw in nested:
                got = await client.post(
                    f"{HOOKS}/{hook}{query}",
                    content=raw,
                    headers={"content-type": "application/json"},
                )
                assert got.status_code == 422, (hook, raw[:30], got.text)
            for name in names:
                got = await client.post(f"{HOOKS}/{hook}{query}", data=nginx(name))
                assert got.status_code == 403, (hook, name, got.text)
                got = await client.post(f"{HOOKS}/{hook}{query}", json={"stream": name})
                assert got.status_code == 403, (hook, name, got.text)
    row = await session_row(db, live["id"])
    assert row.status == "scheduled" and row.stream_connected_at is None
