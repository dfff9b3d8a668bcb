"""A small, fast HTTP/1.1 client for crowd tests: many keep-alive connections, JSON in and out.

httpx spends more CPU queueing a thousand concurrent requests than the server spends
answering them, so on two cores it measures itself. This client does only what the crowd
tests need: POST or GET with JSON, responses with Content-Length, reconnect and retry (with
the same request, hence the same Idempotency-Key) when the server closes a connection.
"""

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from originlive.accounts import security
from originlive.accounts import service as accounts
from originlive.accounts.models import Role, TokenKind, User, UserRole


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: Any = None


@dataclass(frozen=True)
class Response:
    status: int
    body: Any


class _Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self, request: Request) -> Response:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        body = b"" if request.body is None else json.dumps(request.body).encode()
        head = [f"{request.method} {request.path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        head += [f"{k}: {v}" for k, v in request.headers.items()]
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}", "", ""]
        self.writer.write("\r\n".join(head).encode() + body)
        status_line = await self.reader.readuntil(b"\r\n")
        headers = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
        length = int(headers.split("content-length:", 1)[1].split("\r\n", 1)[0])
        payload = await self.reader.readexactly(length)
        if "connection: close" in headers:
            self.close()
        return Response(int(status_line.split()[1]), json.loads(payload) if payload else None)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def crowd(
    url: str | list[str],
    requests: Iterable[Request],
    *,
    connections: int = 100,
    retries: int = 4,
) -> list[Response | None]:
    """Send every request over ``connections`` keep-alive connections; answers in order.

    With several URLs (several server processes), the connections are shared out among them.

    A request whose connection fails is sent again (the same request, so the same
    Idempotency-Key) up to ``retries`` times; then its answer is None.
    """
    servers = [urlsplit(u) for u in ([url] if isinstance(url, str) else url)]
    jobs: asyncio.Queue[tuple[int, Request]] = asyncio.Queue()
    for job in enumerate(requests):
        jobs.put_nowait(job)
    answers: dict[int, Response | None] = {}

    async def worker(number: int) -> None:
        parts = servers[number % len(servers)]
        conn = _Connection(parts.hostname or "127.0.0.1", parts.port or 80)
        try:
            while not jobs.empty():
                index, request = jobs.get_nowait()
                answers[index] = None
                for attempt in range(retries + 1):
                    try:
                        answers[index] = await conn.send(request)
                        break
                    except (OSError, asyncio.IncompleteReadError):
                        conn.close()  # closed under us (keep-alive race): retry, same request
                        if attempt < retries:
                            await asyncio.sleep(0.05)
        finally:
            conn.close()

    await asyncio.gather(*(worker(n) for n in range(connections)))
    return [answers[i] for i in range(len(answers))]


async def make_buyers(database_url: str, count: int, *, password: str) -> list[str]:
    """Bearer tokens of ``count`` new buyers, made in the database (hashing is slow on purpose)."""
    engine = create_async_engine(database_url)
    password_hash = await security.hash_password(password)
    try:
        async with async_sessionmaker(engine, expire_on_commit=False)() as session:
            rows = [
                {
                    "email": f"crowd{i}@example.com",
                    "password_hash": password_hash,
                    "display_name": f"买家{i}",
                }
                for i in range(count)
            ]
            ids = (await session.scalars(insert(User).returning(User.id), rows)).all()
            await session.execute(
                insert(UserRole), [{"user_id": i, "role": Role.BUYER} for i in ids]
            )
            users = (await session.scalars(select(User).where(User.id.in_(ids)))).all()
            tokens = [
                await accounts.issue_token(session, user=u, kind=TokenKind.API, ttl_seconds=3600)
                for u in users
            ]
            await session.commit()
    finally:
        await engine.dispose()
    return tokens


@dataclass
class Merchant:
    headers: dict[str, str]
    shop_id: int
    sku_id: int


async def merchant_with_shop(
    api: httpx.AsyncClient, *, stock: int, password: str, email: str = "farm@example.com"
) -> Merchant:
    """A merchant with an approved shop (auto-approval on) and one SKU."""
    account = {"email": email, "password": password, "display_name": "果园"}
    registered = await api.post("/api/v1/auth/register", json=account)
    assert registered.status_code == 201, registered.text
    token = await api.post("/api/v1/auth/token", data={"username": email, "password": password})
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    shop_name = f"徐杨果园 {email.split('@')[0]}"  # one a merchant: names are unique
    shop = await api.post(
        "/api/v1/shops", json={"name": shop_name, "region_code": "610431"}, headers=headers
    )
    assert shop.status_code == 201, shop.text
    product = await api.post(
        f"/api/v1/shops/{shop.json()['id']}/products",
        json={
            "title": "徐香猕猴桃",
            "category": "水果",
            "origin_region_code": "610431",
            "skus": [{"name": "5斤", "price_cents": 3990, "stock": stock}],
        },
        headers=headers,
    )
    assert product.status_code == 201, product.text
    return Merchant(headers, int(shop.json()["id"]), int(product.json()["skus"][0]["id"]))


async def merchant_with_sku(
    api: httpx.AsyncClient, *, stock: int, password: str, email: str = "farm@example.com"
) -> tuple[dict[str, str], int]:
    """A merchant with an approved shop (auto-approval on) and one SKU; headers and SKU id."""
    merchant = await merchant_with_shop(api, stock=stock, password=password, email=email)
    return merchant.headers, merchant.sku_id


async def go_live(
    api: httpx.AsyncClient, merchant: Merchant, *, title: str = "猕猴桃开园直播"
) -> int:
    """A session of the merchant's shop, started; its id."""
    live = await api.post(
        "/api/v1/live-sessions",
        json={"shop_id": merchant.shop_id, "title": title},
        headers=merchant.headers,
    )
    assert live.status_code == 201, live.text
    session_id = int(live.json()["id"])
    started = await api.post(f"/api/v1/live-sessions/{session_id}/start", headers=merchant.headers)
    assert started.status_code == 200 and started.json()["status"] == "live", started.text
    return session_id
