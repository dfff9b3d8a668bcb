"""Test set-up: one migrated database per backend per run, emptied after every test.

Every test that uses ``app`` or ``client`` runs once on SQLite and once on PostgreSQL. The
PostgreSQL (and Redis) runs are skipped on a developer machine without the server, but
fail in CI (``CI=true``), where a missing server must not pass for a green run.
"""

import asyncio
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from originlive.accounts import service as accounts
from originlive.accounts.models import Role
from originlive.app import create_app
from originlive.bootstrap import migrate
from originlive.db import Base
from originlive.models import import_all_models
from originlive.regions.models import Region
from originlive.settings import Settings
from tests.servers import RedisServer, free_port, recreate_database, stop, wait_until_up

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
POSTGRES_ADMIN_URL = os.environ.get(
    "ORIGINLIVE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("ORIGINLIVE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
PASSWORD = "correct horse battery"
ROOT = Path(__file__).resolve().parents[1]

import_all_models()


def server_reachable(url: str, default_port: int) -> bool:
    """Whether something listens at the URL's host and port."""
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), 1
        ):
            return True
    except OSError:
        return False


def require_server(url: str, default_port: int, what: str) -> None:
    """Skip without the server on a developer machine; fail in CI."""
    if server_reachable(url, default_port):
        return
    message = f"{what} is not reachable at {url}"
    if IN_CI:
        pytest.fail(message + " (CI must test this path)")
    pytest.skip(message)


def _fresh_postgres_database() -> str:
    """A new empty database beside the admin one, named for this test process."""
    return asyncio.run(recreate_database(POSTGRES_ADMIN_URL, f"originlive_test_{os.getpid()}"))


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated database with the official regions, one per backend for the whole run."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'originlive.db'}"
    else:
        require_server(POSTGRES_ADMIN_URL, 5432, "PostgreSQL")
        url = _fresh_postgres_database()
    migrate(url)
    return url


async def empty_database(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    """Delete every row a test made; used after each test, in-process or against a live server."""
    # Delete rather than drop: the migrated schema and the official regions stay for the next test.
    async with sessionmaker() as session:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name == "regions":
                await session.execute(delete(Region).where(Region.official.is_(False)))
            else:
                await session.execute(delete(table))
        await session.commit()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings for one test: its own data directory, the run's database."""
    return Settings(
        database_url=database_url,
        data_dir=tmp_path / "data",
        secret_key="test-secret-key",
        login_attempts=5,
        # In-process tests deliver the sandbox's webhooks themselves, when they choose to.
        sandbox_courier=False,
        gc_tuning=False,  # a server process's choice, not a test run's
        rtmp_port=0,  # any free port: tests run side by side
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Any]:
    """The application with its lifespan running; the database is emptied afterwards."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        try:
            yield application
        finally:
            await empty_database(application.state.sessionmaker)


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client speaking to the app in-process."""
    transport = httpx.ASGITransport(app=app)
    # The pages are asserted in English; Chinese has tests of its own (tests/web/test_i18n.py).
    headers = {"Accept-Language": "en"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers=headers
    ) as c:
        yield c


@pytest.fixture
async def db(app: Any) -> AsyncIterator[AsyncSession]:
    """A session on the test database, for arranging and checking state directly."""
    async with app.state.sessionmaker() as session:
        yield session


@dataclass
class Actor:
    """A signed-in user as a test sees it."""

    id: int
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def sign_in(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> str:
    """A bearer token for the user."""
    response = await client.post(
        "/api/v1/auth/token", data={"username": email, "password": password}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


@pytest.fixture
def make_user(client: httpx.AsyncClient) -> Callable[..., Awaitable[Actor]]:
    """Register a user over the API and sign them in."""
    counter = iter(range(1, 1_000_000))

    async def make(name: str = "user", *, email: str | None = None) -> Actor:
        email = email or f"{name}{next(counter)}@example.com"
        response = await client.post(
            "/api/v1/auth/register",
            json={"email": email, "password": PASSWORD, "display_name": name},
        )
        assert response.status_code == 201, response.text
        return Actor(id=response.json()["id"], email=email, token=await sign_in(client, email))

    return make


@pytest.fixture
def make_operator(client: httpx.AsyncClient, app: Any) -> Callable[..., Awaitable[Actor]]:
    """Create an operator the way the command line does, then sign them in."""
    counter = iter(range(1, 1_000_000))

    async def make() -> Actor:
        email = f"operator{next(counter)}@example.com"
        async with app.state.sessionmaker() as session:
            user = await accounts.create(
                session,
                email=email,
                password=PASSWORD,
                display_name="Operator",
                roles=(Role.OPERATOR,),
            )
            await session.commit()
        return Actor(id=user.id, email=email, token=await sign_in(client, email))

    return make


@dataclass
class Farm:
    """``originlive.app`` under uvicorn in processes of its own, on the run's database."""

    database_url: str
    tmp_path: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    async def start(self, *, port: int | None = None, **env: str) -> str:
        """Start a process (with extra ``ORIGINLIVE_*`` settings) and return its base URL."""
        port = port or free_port()
        url = f"http://127.0.0.1:{port}"
        environ = os.environ | {
            "ORIGINLIVE_PUBLIC_URL": url,
            "ORIGINLIVE_DATABASE_URL": self.database_url,
            "ORIGINLIVE_DATA_DIR": str(self.tmp_path / "data"),
            "ORIGINLIVE_SECRET_KEY": "live-test-secret",
            "ORIGINLIVE_AUTO_APPROVE_SHOPS": "true",
            "ORIGINLIVE_RTMP_PORT": "0",  # any free port, unless the test names one
        }
        command = [sys.executable, "-m", "uvicorn", "originlive.app:create_app", "--factory"]
        log = (self.tmp_path / f"server-{port}.log").open("ab")
        server = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            env=environ | env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.processes[url] = server
        await asyncio.to_thread(wait_until_up, server, url)
        return url

    def kill(self, url: str) -> None:
        """Kill the process at once (SIGKILL), as a power cut would."""
        server = self.processes.pop(url)
        server.kill()
        server.wait()

    def stop_all(self) -> None:
        for server in self.processes.values():
            stop(server)
        for log in sorted(self.tmp_path.glob("server-*.log")):  # shown when a test fails
            print(f"--- {log.name}\n{log.read_text(errors='replace')[-5000:]}")


@pytest.fixture
async def farm(database_url: str, tmp_path: Path) -> AsyncIterator[Farm]:
    """Server processes for the test; stopped, and the database emptied, when it ends."""
    servers = Farm(database_url, tmp_path)
    try:
        yield servers
    finally:
        servers.stop_all()
        engine = create_async_engine(database_url)
        try:
            await empty_database(async_sessionmaker(engine))
        finally:
            await engine.dispose()


@pytest.fixture
def start_server(farm: Farm) -> Callable[..., Awaitable[str]]:
    """Start one more server process; returns its base URL (see ``Farm.start``)."""
    return farm.start


@pytest.fixture
async def live_server(start_server: Callable[..., Awaitable[str]]) -> str:
    """One server process on the run's database; its base URL."""
    return await start_server()


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis database for the test, flushed before and after."""
    require_server(REDIS_URL, 6379, "Redis")
    import redis

    r = redis.Redis.from_url(REDIS_URL)
    r.flushdb()
    yield REDIS_URL
    r.flushdb()
    r.close()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of the test's own (``tests.servers.RedisServer``), killed afterwards."""
    if shutil.which("redis-server") is None:
        message = "redis-server is not installed"
        if IN_CI:
            pytest.fail(message + " (CI must test this path)")
        pytest.skip(message)
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.kill()
