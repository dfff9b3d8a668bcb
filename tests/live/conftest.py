"""A shop that goes live, and room sockets to it over real WebSockets."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.conftest import PASSWORD
from tests.crowd import go_live, merchant_with_shop

ADDRESS = {"name": "王小满", "phone": "13800000000", "region_code": "610431", "detail": "徐杨村"}


@dataclass
class Stage:
    """A running server with a merchant whose shop has a live session."""

    url: str
    merchant: dict[str, str]
    session_id: int
    sku_id: int

    @property
    def ws(self) -> str:
        return self.url.replace("http://", "ws://") + f"/ws/live/{self.session_id}"


async def register(api: httpx.AsyncClient, name: str) -> tuple[int, str]:
    """A new user's id and bearer token."""
    email = f"{name}-{id(api)}-{asyncio.get_running_loop().time()}@example.com"
    body = {"email": email, "password": PASSWORD, "display_name": name}
    response = await api.post("/api/v1/auth/register", json=body)
    assert response.status_code == 201, response.text
    token = await api.post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})
    return int(response.json()["id"]), str(token.json()["access_token"])


async def stage_on(url: str) -> Stage:
    """A merchant, an approved shop with a SKU, and a session of it that is live."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as api:
        email = f"grower-{uuid.uuid4().hex}@example.com"
        merchant = await merchant_with_shop(api, stock=1000, password=PASSWORD, email=email)
        session_id = await go_live(api, merchant)
    return Stage(url, merchant.headers, session_id, merchant.sku_id)


class Watcher:
    """A room socket that reads in the background and keeps every event by type."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.events: list[dict[str, Any]] = []
        self.state: dict[str, Any] = {}
        self._changed = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())
        self.closed: int | None = None

    async def _read(self) -> None:
        try:
            async for raw in self.socket:
                event = json.loads(raw)
                async with self._changed:
                    if event["type"] == "state":
                        self.state = event
                    else:
                        self.events.append(event)
                    self._changed.notify_all()
        finally:
            self.closed = self.socket.close_code
            async with self._changed:
                self._changed.notify_all()

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]

    async def wait_for(self, check: Callable[["Watcher"], bool], timeout: float = 10) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: check(self))

    async def say(self, text: str) -> None:
        await self.socket.send(json.dumps({"type": "comment", "text": text}))

    async def close(self) -> None:
        await self.socket.close()
        self._reader.cancel()


@asynccontextmanager
async def watch(url: str, token: str | None = None) -> AsyncIterator[Watcher]:
    """A socket in the room (logged in with the token, if given), with its state read."""
    address = url + (f"?token={token}" if token else "")
    async with connect(address, compression=None, max_queue=None) as socket:
        watcher = Watcher(socket)
        await watcher.wait_for(lambda w: bool(w.state))
        try:
            yield watcher
        finally:
            await watcher.close()


@pytest.fixture
async def stage(live_server: str) -> Stage:
    return await stage_on(live_server)


@pytest.fixture
def join() -> Callable[..., Any]:
    return watch


Waiter = Callable[..., Awaitable[None]]


from tests.orders.conftest import market  # noqa: E402, F401 - the orders tests' shop, reused
