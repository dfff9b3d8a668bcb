"""A live room's audience arriving at once (issue 16): pages, the room socket and video.

Sets up a fresh embedded deployment (a temporary ``ORIGINLIVE_DATA_DIR``, SQLite) as
``originlive demo`` would: the demo's data, plus ``--products`` more products in 20 shops
across Yunnan (written straight into the migrated database in batches, with the search text
the catalog service would write, so the FTS5 index has them), plus the buyers the signed-in
viewers are, each with a page session (the cookie a browser keeps from signing in) and a
bearer token. Then starts ``originlive serve`` (one process, its own free HTTP and RTMP
ports, ``ORIGINLIVE_DEMO_BROADCAST=true``: the demo room streams real HLS from ffmpeg) and,
under the same uvicorn, the bare ASGI app of ``bench/bare.py``, whose rate under wrk (the same
``-t2 -c`` and seconds as every wrk run here) is the anchor of the ratios.

Surge (the default): ``--viewers`` arrive at the demo room (session 1), evenly spread over
``--arrival`` seconds, and each watches for ``--watch`` seconds after its page has loaded.
A viewer, as a phone's browser would:

1. loads the room page (``/live/1``), then what it links: its stylesheets and scripts (the CSS
   on the page's connection, the scripts on a second one, at once). hls.js (the page's
   ``data-hls``, 389 KB) is fetched only by the ``--hlsjs`` share of viewers: a phone's
   browser plays HLS itself (``canPlayType``), and the script loads it only when it cannot;
   the default, 0, is an audience on phones.
2. opens the room socket (``/ws/live/1``, with the session cookie and the page's Origin when
   signed in) and reads it until the ``state`` event, then keeps it open, read;
3. meanwhile, like a player, fetches the live playlist, then its newest segment, and then the
   playlist every second (on a fixed schedule) and every segment it has not had yet.

``--signed-in`` of them (spread evenly) send the page session cookie of a pre-registered
buyer. Per viewer, the times from arrival to the page (HTML, CSS and JS), to the socket's
state and to the first segment (p50/p90/p99/max, and how many never got there); per kind of
request, the count, rate, p50/p99 latency, bytes, and errors (HTTP status, timeout after
``--timeout`` seconds, 60 by default: longer than the server's 30 s wait for a database
connection, so that its answer is counted, not our impatience; connection error); segments
missed (every segment cut on the server, read from ffmpeg's own
playlist on disk, between a viewer's first segment and its last playlist fetch, that it did
not get) and how long after being cut viewers had each segment; the server's CPU seconds
(and its ffmpeg children's) and peak RSS from /proc; the machine's load average.

The load generator is one asyncio process (uvloop) with a small raw HTTP/1.1 client
(keep-alive, Content-Length or chunked) and bench/wsclient.py's socket: httpx would spend
more CPU than the server it measures. Its own limits are printed beside the figures: its CPU
share during the surge, its event loop's lag, and its ceiling, the requests/s and MB/s the
same client reaches against the bare app before the surge (``generator``).

Plain wrk (``--wrk [PATH ...]``): wrk on each path anonymously, then signed in (the session
cookie on pages, the bearer token on ``/api/``), with req/s, p50/p99, the ratio to the bare
ASGI rate and, for segments, MB/s. ``segment`` stands for the newest segment of the demo room.

    python bench/surge.py [--viewers 2000] [--arrival 10] [--watch 60] [--signed-in 0.1]
    python bench/surge.py --wrk [PATH ...] [-d 10] [-c 64] [--commits-per-s 0]

``--commits-per-s`` commits that many plain-SQL writes a second to the database while wrk runs
(a SKU's stock down and up again, as the order path takes stock): a search or a page as a
flash sale sells.

Prints one JSON object.
"""

import argparse
import asyncio
import bisect
import contextlib
import datetime as dt
import json
import math
import os
import re
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import bare as bare_app  # noqa: E402
from bench.fanout import _cpu_s, _status_mb  # noqa: E402
from bench.wrkrun import require_wrk, wrk  # noqa: E402
from bench.wsclient import Socket, Tally, install_uvloop, raise_nofile_limit  # noqa: E402
from sqlalchemy import insert, select  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from originlive.accounts import security  # noqa: E402
from originlive.accounts import service as accounts  # noqa: E402
from originlive.accounts.deps import SESSION_COOKIE  # noqa: E402
from originlive.accounts.models import AccessToken, Role, TokenKind, User, UserRole  # noqa: E402
from originlive.bootstrap import migrate  # noqa: E402
from originlive.catalog import schemas  # noqa: E402
from originlive.catalog import service as catalog  # noqa: E402
from originlive.catalog.models import Product, ProductStatus, Sku  # noqa: E402
from originlive.db import create_engine, create_sessionmaker, utcnow  # noqa: E402
from originlive.demo import seed_session  # noqa: E402
from originlive.media.ffmpeg import PLAYLIST  # noqa: E402
from originlive.regions.models import Region, RegionLevel  # noqa: E402
from originlive.settings import Settings  # noqa: E402
from tests.servers import free_port, serve, stop, wait_until_up  # noqa: E402

ROOM = 1  # the demo's live session
FRUITS = ["猕猴桃", "苹果", "核桃", "普洱茶", "鲜花饼", "野生菌", "咖啡豆", "多肉", "石榴", "芒果"]
BATCH = 1000
SEARCH = "/api/v1/products?q=" + quote("猕猴桃")
WRK_PATHS = ["/healthz", "/", f"/live/{ROOM}", "/products/1", SEARCH]
WRK_PATHS += [f"/media/hls/{ROOM}/index.m3u8", "segment"]
_SEGMENT = re.compile(rb"^(\S*?seg(\d+)\.ts)\s*$", re.M)
_ASSETS = re.compile(rb'<(?:link rel="stylesheet" href|script src)="(/[^"]+)"')
_HLS_JS = re.compile(rb'data-hls="(/[^"]+)"')


# The deployment


@dataclass
class Deployment:
    data_dir: Path
    url: str
    cookies: list[str]  # page session secrets of the pre-registered buyers
    bearers: list[str]  # their API tokens
    names: list[str]  # their display names


async def _products(session: Any, products: int) -> None:
    """``products`` products (one SKU each) in 20 new shops across Yunnan's counties."""
    counties = list(
        await session.scalars(
            select(Region)
            .where(Region.level == RegionLevel.COUNTY, Region.code.startswith("53"))
            .order_by(Region.code)
        )
    )
    places = await catalog.place_names(session, places=counties)
    owner = await accounts.create(
        session, email="bench@example.com", password="bench-password", display_name="bench"
    )
    shops = []
    for i, county in enumerate(counties[:20]):
        data = schemas.ShopCreate(name=f"云南特产店 {i}", region_code=county.code)
        shops.append(await catalog.open_shop(session, owner=owner, data=data, approve=True))
    conn = await session.connection()
    description = "产地直发，现摘现发。" * 5
    for start in range(0, products, BATCH):
        rows = []
        for i in range(start, min(products, start + BATCH)):
            shop, county = shops[i % len(shops)], counties[i % len(counties)]
            title = f"{FRUITS[i % len(FRUITS)]} 礼盒 {i}"
            origin = " ".join(places[county.code])
            rows.append(
                {
                    "shop_id": shop.id,
                    "title": title,
                    "description": description,
                    "category": "农产品",
                    "origin_region_code": county.code,
                    "status": ProductStatus.ACTIVE,
                    # as catalog.service._reindex writes it; the FTS5 triggers index it
                    "search_text": "\n".join((title, "农产品", description, shop.name, origin)),
                }
            )
        made = insert(Product).returning(Product.id, sort_by_parameter_order=True)
        ids = (await conn.execute(made, rows)).scalars()
        skus = [
            {"product_id": pid, "name": "标准装", "price_cents": 1990 + n, "stock": 100}
            for n, pid in enumerate(ids, start)
        ]
        await conn.execute(insert(Sku), skus)


async def _buyers(session: Any, count: int) -> tuple[list[str], list[str], list[str]]:
    """``count`` buyers, each with a page session and an API token (secrets), and their names."""
    password_hash = await security.hash_password("bench-password")
    names = [f"观众{i}号" for i in range(count)]
    rows = [
        {"email": f"viewer{i}@example.com", "password_hash": password_hash, "display_name": n}
        for i, n in enumerate(names)
    ]
    ids = list((await session.scalars(insert(User).returning(User.id), rows)).all())
    await session.execute(insert(UserRole), [{"user_id": i, "role": Role.BUYER} for i in ids])
    expires = utcnow() + dt.timedelta(days=1)
    secrets: dict[TokenKind, list[str]] = {TokenKind.SESSION: [], TokenKind.API: []}
    tokens = []
    for kind, kept in secrets.items():
        for user_id in ids:
            kept.append(security.new_token())
            digest = security.token_digest(kept[-1])
            tokens.append(
                {"token_hash": digest, "user_id": user_id, "kind": kind, "expires_at": expires}
            )
    await session.execute(insert(AccessToken), tokens)
    return secrets[TokenKind.SESSION], secrets[TokenKind.API], names


async def _fill(url: str, products: int, buyers: int) -> tuple[list[str], list[str], list[str]]:
    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine)() as session:
            await seed_session(session)
            await _products(session, products)
            made = await _buyers(session, buyers)
            await session.commit()
    finally:
        await engine.dispose()
    return made


def deploy(products: int, buyers: int) -> Deployment:
    """A migrated SQLite deployment with the demo, the extra products and the buyers."""
    data_dir = Path(tempfile.mkdtemp(prefix="originlive-surge-"))
    url = Settings(data_dir=data_dir).resolved_database_url
    migrate(url)
    cookies, bearers, names = asyncio.run(_fill(url, products, max(1, buyers)))
    return Deployment(data_dir, url, cookies, bearers, names)


def _wait_for_stream(base: str, timeout: float = 60) -> None:
    """Return once the demo room's playlist lists two segments."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            answer = httpx.get(f"{base}/media/hls/{ROOM}/index.m3u8", timeout=2)
            if answer.status_code == 200 and len(_SEGMENT.findall(answer.content)) >= 2:
                return
        time.sleep(0.25)
    raise RuntimeError(f"the demo room did not stream within {timeout} s")


# A raw HTTP/1.1 client


class Http:
    """One keep-alive connection: GET with extra headers; the status and the body."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str, headers: str = "") -> tuple[int, bytes]:
        reused = self.writer is not None
        try:
            return await self._get(path, headers)
        except (ConnectionError, asyncio.IncompleteReadError):
            self.close()
            if not reused:
                raise
        # The server closed the idle connection as we sent on it: once more, on a new one.
        return await self._get(path, headers)

    async def _get(self, path: str, headers: str) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{headers}\r\n".encode()
        )
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
        status = int(head.split(" ", 2)[1])
        fields = dict(
            (k.strip(), v.strip()) for k, _, v in (x.partition(":") for x in head.split("\r\n")[1:])
        )
        if "content-length" in fields:
            body = await self.reader.readexactly(int(fields["content-length"]))
        elif fields.get("transfer-encoding") == "chunked":
            body = await self._chunks()
        else:
            body = await self.reader.read()
            self.close()
        if fields.get("connection") == "close":
            self.close()
        return status, body

    async def _chunks(self) -> bytes:
        assert self.reader is not None
        parts = []
        while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)
        await self.reader.readuntil(b"\r\n")
        return b"".join(parts)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


# The surge


def _percentiles(values: list[float]) -> dict[str, float | None]:
    ordered = sorted(values)
    if not ordered:
        return {"p50_s": None, "p90_s": None, "p99_s": None, "max_s": None}

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {"p50_s": at(0.5), "p90_s": at(0.9), "p99_s": at(0.99), "max_s": round(ordered[-1], 3)}


def _ms(values: list[float], q: float) -> float | None:
    ordered = sorted(values)
    return (
        round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1) if values else None
    )


@dataclass
class Viewer:
    page_s: float | None = None
    state_s: float | None = None
    first_segment_s: float | None = None
    first_seq: int | None = None
    got: set[int] = field(default_factory=set)
    last_tick: float = 0.0


class RoomSocket(Socket):
    """bench/wsclient.py's socket, sending the page's session cookie and Origin when given."""

    def __init__(self, host: str, port: int, target: str, tally: Tally, extra: str) -> None:
        super().__init__(host, port, target, tally)
        if extra:  # the handshake the parent built, with the browser's extra headers
            self._request = self._request[:-2] + extra.encode() + b"\r\n"


class Surge:
    """The viewers, what they measured, and the stream's true timeline (read from disk)."""

    def __init__(self, args: argparse.Namespace, port: int, dep: Deployment) -> None:
        self.args, self.host, self.port, self.dep = args, "127.0.0.1", port, dep
        self.loop = asyncio.get_running_loop()
        self.viewers: list[Viewer] = []
        self.count: Counter[str] = Counter()
        self.bytes: Counter[str] = Counter()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, Counter[str]] = defaultdict(Counter)
        self.tally = Tally()
        self.sockets: list[Socket] = []
        self.cut: list[tuple[float, int]] = []  # (time first seen on disk, newest segment)
        self.cut_at: dict[int, float] = {}
        self.lag: list[float] = []
        self.rss_peak = 0.0
        self.playlist = Settings(data_dir=dep.data_dir).hls_dir / str(ROOM) / PLAYLIST

    async def fetch(self, conn: Http, kind: str, path: str, headers: str) -> bytes | None:
        """GET, counted under ``kind``; the body of a 200, else None (the error counted)."""
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.args.timeout):
                status, body = await conn.get(path, headers)
        except TimeoutError:
            conn.close()
            self.errors[kind]["timeout"] += 1
            return None
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
            conn.close()
            self.errors[kind][f"connection: {type(exc).__name__}"] += 1
            return None
        self.count[kind] += 1
        self.bytes[kind] += len(body)
        self.latency[kind].append(time.monotonic() - started)
        if status != 200:
            self.errors[kind][str(status)] += 1
            return None
        return body

    async def viewer(self, n: int, arrival: float) -> None:
        args = self.args
        await asyncio.sleep(max(0.0, arrival - time.monotonic()))
        v = Viewer()
        self.viewers.append(v)
        t0 = time.monotonic()
        signed_in = math.floor((n + 1) * args.signed_in) > math.floor(n * args.signed_in)
        cookie = self.dep.cookies[n % len(self.dep.cookies)] if signed_in else None
        headers = f"Cookie: {SESSION_COOKIE}={cookie}\r\n" if cookie else ""
        page, second = Http(self.host, self.port), Http(self.host, self.port)
        try:
            html = await self.fetch(page, "page", f"/live/{ROOM}", headers)
            if html is None:
                return
            assets = _ASSETS.findall(html)
            hlsjs = math.floor((n + 1) * args.hlsjs) > math.floor(n * args.hlsjs)
            if hlsjs:
                assets += _HLS_JS.findall(html)
            # A static file's name may carry ?v=<its hash> (web.assets.static_url).
            css = [a.decode() for a in assets if a.split(b"?")[0].endswith(b".css")]
            scripts = [a.decode() for a in assets if not a.split(b"?")[0].endswith(b".css")]
            got = await asyncio.gather(
                self._all(page, "css", css, headers), self._all(second, "js", scripts, headers)
            )
            second.close()
            if not all(got):
                return
            v.page_s = time.monotonic() - t0
            until = time.monotonic() + args.watch
            origin = f"Origin: http://{self.host}:{self.port}\r\n" if cookie else ""
            await asyncio.gather(
                self._socket(v, t0, headers + origin, until),
                self._player(v, t0, page, headers, until),
            )
        finally:
            page.close()
            second.close()

    async def _all(self, conn: Http, kind: str, paths: list[str], headers: str) -> bool:
        for path in paths:
            if await self.fetch(conn, kind, path, headers) is None:
                return False
        return True

    async def _socket(self, v: Viewer, t0: float, headers: str, until: float) -> None:
        target = f"/ws/live/{ROOM}"
        started = time.monotonic()
        errors_before = sum(self.tally.errors.values())
        sock = RoomSocket(self.host, self.port, target, self.tally, headers)
        try:
            async with asyncio.timeout(self.args.timeout):
                await self.loop.create_connection(lambda: sock, self.host, self.port)
                ready = await sock.ready
        except TimeoutError:
            if sock.transport is not None:
                sock.transport.abort()
            self.errors["socket"]["timeout"] += 1
            return
        except OSError as exc:
            self.errors["socket"][f"connection: {type(exc).__name__}"] += 1
            return
        self.count["socket"] += 1
        self.latency["socket"].append(time.monotonic() - started)
        if not ready:
            if sum(self.tally.errors.values()) == errors_before:
                self.errors["socket"]["refused"] += 1
            return
        v.state_s = time.monotonic() - t0
        sock.counting = True  # from now a lost connection counts as dropped
        self.sockets.append(sock)
        await asyncio.sleep(max(0.0, until - time.monotonic()))
        sock.counting = False
        sock.close()

    async def _player(self, v: Viewer, t0: float, conn: Http, headers: str, until: float) -> None:
        playlist = f"/media/hls/{ROOM}/index.m3u8"
        tick = time.monotonic()
        while tick < until:
            v.last_tick = tick
            body = await self.fetch(conn, "playlist", playlist, headers)
            listed = [(int(seq), name.decode()) for name, seq in _SEGMENT.findall(body or b"")]
            if v.first_seq is None:
                listed = listed[-1:]  # a player starts at the newest segment
            for seq, name in listed:
                if seq in v.got or (v.first_seq is not None and seq < v.first_seq):
                    continue
                path = name if name.startswith("/") else f"/media/hls/{ROOM}/{name}"
                if await self.fetch(conn, "segment", path, headers) is None:
                    continue
                now = time.monotonic()
                if v.first_seq is None:
                    v.first_seq, v.first_segment_s = seq, now - t0
                v.got.add(seq)
                if seq in self.cut_at:
                    self.lag.append(now - self.cut_at[seq])
            # Every second; at once if this round took longer (a slow answer skips no more).
            tick = max(tick + 1.0, time.monotonic())
            await asyncio.sleep(tick - time.monotonic())

    async def watch_stream(self) -> None:
        """Note when each segment is cut: ffmpeg's own playlist, read from disk."""
        while True:
            with contextlib.suppress(OSError):
                found = _SEGMENT.findall(self.playlist.read_bytes())
                if found:
                    newest = int(found[-1][1])
                    now = time.monotonic()
                    for _, seq in found:
                        self.cut_at.setdefault(int(seq), now)
                    if not self.cut or self.cut[-1][1] != newest:
                        self.cut.append((now, newest))
            await asyncio.sleep(0.1)

    def newest_at(self, when: float) -> int | None:
        """The newest segment cut at that moment."""
        i = bisect.bisect_right(self.cut, (when, math.inf)) - 1
        return self.cut[i][1] if i >= 0 else None

    def missed(self) -> tuple[int, int, int]:
        """Segments missed in all, viewers that missed any, segments expected in all."""
        missed = viewers = expected = 0
        for v in self.viewers:
            if v.first_seq is None:
                continue
            newest = self.newest_at(v.last_tick - 0.5)  # cut in time for the last fetch
            wanted = set(range(v.first_seq, (newest or v.first_seq) + 1))
            lost = len(wanted - v.got)
            expected += len(wanted)
            missed += lost
            viewers += lost > 0
        return missed, viewers, expected


async def _loop_lag(lags: list[float]) -> None:
    """How late the generator's event loop wakes (its own saturation)."""
    while True:
        before = time.monotonic()
        await asyncio.sleep(0.05)
        lags.append(time.monotonic() - before - 0.05)


async def _sample_rss(surge: Surge, pid: int) -> None:
    while True:
        surge.rss_peak = max(surge.rss_peak, _status_mb(pid, "VmRSS"))
        await asyncio.sleep(0.25)


def _children_cpu_s(pid: int) -> float:
    """CPU seconds of a process's children (the server's ffmpeg) so far."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                total += _cpu_s(int(stat.parent.name))
    return total


async def generator_ceiling(port: int, seconds: float = 3.0) -> dict[str, Any]:
    """What this client reaches against the bare app: small answers, then segment-sized ones."""

    async def run(path: str, connections: int) -> tuple[float, float, float]:
        done, size = 0, 0
        deadline = time.monotonic() + seconds

        async def one() -> None:
            nonlocal done, size
            conn = Http("127.0.0.1", port)
            while time.monotonic() < deadline:
                _, body = await conn.get(path)
                size += len(body)  # not ``size += len(await ...)``: read before the await
                done += 1
            conn.close()

        cpu, started = time.process_time(), time.monotonic()
        await asyncio.gather(*(one() for _ in range(connections)))
        wall = time.monotonic() - started
        return done / wall, size / wall / 1e6, (time.process_time() - cpu) / wall

    small, _, small_cpu = await run("/", 200)
    large, mb, large_cpu = await run("/bytes", 100)
    return {
        "small_requests_per_s": round(small),
        "small_cpu_share": round(small_cpu, 2),
        "segment_sized_requests_per_s": round(large),
        "segment_sized_mb_per_s": round(mb, 1),
        "segment_sized_cpu_share": round(large_cpu, 2),
    }


async def surge(
    args: argparse.Namespace, port: int, bare_port: int, dep: Deployment, pid: int
) -> dict[str, Any]:
    """The surge's figures."""
    ceiling = await generator_ceiling(bare_port)
    s = Surge(args, port, dep)
    lags: list[float] = []
    helpers = [
        asyncio.create_task(s.watch_stream()),
        asyncio.create_task(_loop_lag(lags)),
        asyncio.create_task(_sample_rss(s, pid)),
    ]
    cpu0, ffmpeg0 = _cpu_s(pid), _children_cpu_s(pid)
    own0, load0 = time.process_time(), os.getloadavg()
    start = time.monotonic() + 0.5
    spacing = args.arrival / max(1, args.viewers)
    await asyncio.gather(*(s.viewer(n, start + n * spacing) for n in range(args.viewers)))
    window = time.monotonic() - start
    server_cpu, own_cpu = _cpu_s(pid) - cpu0, time.process_time() - own0
    ffmpeg_cpu = _children_cpu_s(pid) - ffmpeg0
    await asyncio.sleep(0.5)  # the sockets' closes
    for task in helpers:
        task.cancel()
    missed, missing_viewers, expected = s.missed()
    vs = s.viewers
    kinds = ["page", "css", "js", "socket", "playlist", "segment"]
    errors = {k: dict(c) for k, c in s.errors.items() if c}
    if s.tally.errors:
        errors["socket frames"] = dict(s.tally.errors)
    return {
        "time_to_page": _percentiles([v.page_s for v in vs if v.page_s is not None]),
        "time_to_state": _percentiles([v.state_s for v in vs if v.state_s is not None]),
        "time_to_first_segment": _percentiles(
            [v.first_segment_s for v in vs if v.first_segment_s is not None]
        ),
        "viewers_without": {
            "page": sum(v.page_s is None for v in vs),
            "state": sum(v.state_s is None for v in vs),
            "first_segment": sum(v.first_segment_s is None for v in vs),
        },
        "requests": {
            k: {
                "count": s.count[k],
                "per_s": round(s.count[k] / window, 1),
                "p50_ms": _ms(s.latency[k], 0.5),
                "p99_ms": _ms(s.latency[k], 0.99),
                "mb": round(s.bytes[k] / 1e6, 1),
            }
            for k in kinds
        },
        "errors": errors,
        "socket_closes": {k: v for k, v in s.tally.closes.items() if k != "1000 "},
        "sockets_dropped": s.tally.dropped,
        "segments_expected": expected,
        "segments_missed": missed,
        "viewers_missing_segments": missing_viewers,
        "segment_lag_after_cut": _percentiles(s.lag),
        "window_s": round(window, 1),
        "server_cpu_s": round(server_cpu, 1),
        "server_cpu_per_s": round(server_cpu / window, 2),
        "server_ffmpeg_cpu_s": round(ffmpeg_cpu, 1),
        "server_peak_rss_mb": max(s.rss_peak, _status_mb(pid, "VmHWM")),
        "generator": {
            "cpu_s": round(own_cpu, 1),
            "cpu_share": round(own_cpu / window, 2),
            "loop_lag_p99_ms": _ms(lags, 0.99),
            "loop_lag_max_ms": _ms(lags, 1.0),
            "ceiling_against_bare_app": ceiling,
        },
        "load_average_before": [round(x, 2) for x in load0],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }


# Plain wrk


def _header_script(folder: Path, name: str, value: str) -> Path:
    path = folder / f"{name.lower()}.lua"
    path.write_text(f'wrk.headers["{name}"] = "{value}"\n')
    return path


def _newest_segment(base: str) -> tuple[str, int]:
    playlist = httpx.get(f"{base}/media/hls/{ROOM}/index.m3u8").content
    name = _SEGMENT.findall(playlist)[-1][0].decode()
    path = name if name.startswith("/") else f"/media/hls/{ROOM}/{name}"
    return path, len(httpx.get(base + path).content)


@contextlib.contextmanager
def committing(dep: Deployment, per_s: float) -> Iterator[dict[str, int]]:
    """While it is open, commit ``per_s`` times a second to the server's SQLite database on a
    connection of our own, in plain SQL, as the order path takes stock (a SKU's stock one
    down, then up again): what a search sees while a flash sale sells. Counts the commits."""
    done = {"commits": 0}
    if per_s <= 0:
        yield done
        return
    stop = threading.Event()

    def run() -> None:
        conn = sqlite3.connect(make_url(dep.url).database or "", timeout=5, isolation_level=None)
        step = -1
        try:
            while not stop.wait(1 / per_s):
                conn.execute("UPDATE skus SET stock = stock + ? WHERE id = 1", (step,))
                done["commits"] += 1
                step = -step
        finally:
            conn.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield done
    finally:
        stop.set()
        thread.join()


def wrk_paths(args: argparse.Namespace, base: str, dep: Deployment, bare: float) -> dict[str, Any]:
    """wrk on each path, anonymously and signed in (with ``--commits-per-s`` commits a second
    meanwhile)."""
    cookie = _header_script(dep.data_dir, "Cookie", f"{SESSION_COOKIE}={dep.cookies[0]}")
    bearer = _header_script(dep.data_dir, "Authorization", f"Bearer {dep.bearers[0]}")
    results: dict[str, Any] = {}
    for path in args.wrk or WRK_PATHS:
        size = None
        if path == "segment":
            path, size = _newest_segment(base)
        figures = {}
        for who, script in (
            ("anonymous", None),
            ("signed_in", bearer if path.startswith("/api/") else cookie),
        ):
            with committing(dep, args.commits_per_s) as commits:
                got = wrk(base + path, args.duration, args.connections, script)
            if args.commits_per_s:
                got["commits_meanwhile"] = commits["commits"]
            got["ratio_to_bare"] = round(got["requests_per_s"] / bare, 4)
            if size is not None:
                got["mb_per_s"] = round(got["requests_per_s"] * size / 1e6, 1)
            figures[who] = got
        results[path] = figures
    return results


# Main


def _server_log_errors(log: Path) -> dict[str, int]:
    """The server's error lines (first 160 characters), counted."""
    found: Counter[str] = Counter()
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith(("ERROR", "CRITICAL")) or "Error:" in line:
            found[line[:160]] += 1
    return dict(found.most_common(10))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--products", type=int, default=10_000, help="besides the demo's")
    parser.add_argument("--viewers", type=int, default=2000)
    parser.add_argument("--arrival", type=float, default=10.0, help="seconds they arrive over")
    parser.add_argument("--watch", type=float, default=60.0, help="seconds each one watches")
    parser.add_argument("--signed-in", type=float, default=0.1, help="share signed in")
    parser.add_argument("--hlsjs", type=float, default=0.0, help="share that loads hls.js")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds for an answer")
    parser.add_argument("--wrk", nargs="*", metavar="PATH", help="plain wrk mode on these paths")
    parser.add_argument("-d", "--duration", type=int, default=10, help="wrk's seconds a path")
    parser.add_argument("-c", "--connections", type=int, default=64, help="wrk's connections")
    parser.add_argument(
        "--commits-per-s",
        type=float,
        default=0.0,
        help="wrk mode: plain-SQL commits a second to the database meanwhile, as orders make",
    )
    return parser


def main() -> None:
    args = _parser().parse_args()
    require_wrk()
    raise_nofile_limit()
    install_uvloop()
    buyers = math.ceil(args.viewers * args.signed_in) if args.wrk is None else 1
    dep = deploy(args.products, buyers)
    port, rtmp_port, bare_port = free_port(), free_port(), free_port()
    log_path = dep.data_dir / "server.log"
    base, bare_base = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{bare_port}"
    with log_path.open("wb") as log:
        server = serve(
            port=port,
            data_dir=dep.data_dir,
            database_url=dep.url,
            log=log,
            RTMP_PORT=str(rtmp_port),
            DEMO_BROADCAST="true",
        )
        bare = bare_app.start(bare_port, log)
    result: dict[str, Any] = {"benchmark": "surge", "database": "sqlite (embedded)"}
    try:
        wait_until_up(server, base)
        wait_until_up(bare, bare_base)
        _wait_for_stream(base)
        name = dep.names[0]
        page = httpx.get(f"{base}/live/{ROOM}", cookies={SESSION_COOKIE: dep.cookies[0]}).text
        result["signed_in_page_names_the_viewer"] = name in page
        bare_figures = wrk(bare_base + "/", args.duration, args.connections)
        result |= {
            "products": args.products,
            "wrk": f"-t2 -c{args.connections} -d{args.duration}s",
            "bare_asgi": bare_figures,
        }
        if args.wrk is not None:
            rate = bare_figures["requests_per_s"]
            result["paths"] = wrk_paths(args, base, dep, rate)
        else:
            result |= {
                "viewers": args.viewers,
                "arrival_s": args.arrival,
                "watch_s": args.watch,
                "signed_in": args.signed_in,
                "hlsjs": args.hlsjs,
            }
            result |= asyncio.run(surge(args, port, bare_port, dep, server.pid))
        result["server_log_errors"] = _server_log_errors(log_path)
    finally:
        stop(server)
        stop(bare)
        shutil.rmtree(dep.data_dir, ignore_errors=True)
    print(json.dumps(result, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
