"""Test set-up: one migrated database per backend per run, emptied after every test.

Every test that uses ``app`` or ``client`` runs once on SQLite and once on PostgreSQL. The
PostgreSQL (and Redis) runs are skipped on a developer machine without the server, but
fail in CI (``CI=true``), where a missing server must not pass for a green run.

``make test`` runs the suite in several processes (pytest-xdist): each worker has databases of
its own (a SQLite file, a PostgreSQL database named for its process, a Redis database number
of its own) and ports no other worker is given (``tests.servers.free_port``).
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
from argon2 import PasswordHasher
from sqlalchemy import Connection, delete, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from originlive.accounts import security
from originlive.accounts import service as accounts
from originlive.accounts.models import Role
from originlive.app import create_app
from originlive.bootstrap import migrate
from originlive.db import Base
from originlive.models import import_all_models
from originlive.regions.models import Region
from originlive.settings import Settings
from tests.servers import (
    RedisServer,
    drop_database,
    free_port,
    recreate_database,
    stop,
    wait_until_up,
    xdist_worker,
)

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
POSTGRES_ADMIN_URL = os.environ.get(
    "ORIGINLIVE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
# Under pytest-xdist, worker N uses the database numbered N below this one (15, 14, ...).
REDIS_URL = os.environ.get("ORIGINLIVE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
PASSWORD = "correct horse battery"
ROOT = Path(__file__).resolve().parents[1]

import_all_models()


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (``make test``): a worker per core this process may use, at most eight
    (Redis databases 15 to 8). A third worker on two cores was no faster, only busier."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(cores or 1, 8)


def worker_redis_url(url: str = REDIS_URL) -> str:
    """The Redis URL of this test process: under pytest-xdist, worker N takes the database
    numbered N below the URL's, so that one worker's flushes never touch another's keys."""
    index, _ = xdist_worker()
    if index == 0:
        return url
    parts = urlsplit(url)
    number = int(parts.path.strip("/") or "0") - index
    if number < 0:
        raise pytest.UsageError(f"too many test workers for the Redis databases below {url}")
    return parts._replace(path=f"/{number}").geturl()


# Passwords are hashed with argon2id at the library's default cost (about 0.2 s a hash or a
# check on two cores), and the tests register and sign in hundreds of times. Outside
# tests/accounts, which keep the real cost, the in-process app hashes with argon2id at the
# lowest cost instead: the same code paths, hashes in the same format, a millisecond each.
# (Server processes the tests start keep the production cost.)
_CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
_CHEAP_DUMMY_HASH = _CHEAP_HASHER.hash("originlive-timing-equaliser")
_ACCOUNTS_TESTS = ROOT / "tests" / "accounts"


@pytest.fixture(autouse=True)
def _cheap_password_hashing(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    if request.node.path.is_relative_to(_ACCOUNTS_TESTS):
        return
    monkeypatch.setattr(security, "_hasher", _CHEAP_HASHER)
    monkeypatch.setattr(security, "_DUMMY_HASH", _CHEAP_DUMMY_HASH)


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


class Databases:
    """The run's migrated databases (of this test process), made on first use and kept for
    the whole run, one per backend: a SQLite file, and a PostgreSQL database named for the
    process, dropped at the end."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.urls: dict[str, str] = {}
        self.postgres_name = f"originlive_test_{os.getpid()}"

    def url(self, backend: str) -> str:
        if backend not in self.urls:
            if backend == "sqlite":
                url = f"sqlite+aiosqlite:///{self.directory / 'originlive.db'}"
            else:
                url = asyncio.run(recreate_database(POSTGRES_ADMIN_URL, self.postgres_name))
            migrate(url)
            self.urls[backend] = url
        return self.urls[backend]

    def drop(self) -> None:
        if "postgresql" in self.urls:
            asyncio.run(drop_database(POSTGRES_ADMIN_URL, self.postgres_name))


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Databases]:
    made = Databases(tmp_path_factory.mktemp("db"))
    try:
        yield made
    finally:
        made.drop()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, databases: Databases) -> str:
    """A migrated database with the official regions, one per backend for the whole run."""
    if request.param == "postgresql":
        require_server(POSTGRES_ADMIN_URL, 5432, "PostgreSQL")
    return databases.url(request.param)


async def empty_database(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    """Delete every row a test made; used after each test, in-process or against a live server."""
    # Delete rather than drop: the migrated schema and the official regions stay for the next test.
    async with sessionmaker() as session:
        conn = await session.connection()
        restore = await conn.run_sync(_set_ledger_guards_aside)
        for table in reversed(Base.metadata.sorted_tables):
            if table.name == "regions":
                await session.execute(delete(Region).where(Region.official.is_(False)))
            else:
                await session.execute(delete(table))
        for statement in restore:
            await session.execute(text(statement))
        await session.commit()


LEDGER_TABLES = ("journal_entries", "postings")


def _set_ledger_guards_aside(conn: Connection) -> list[str]:
    """The ledger's tables refuse deletes (their triggers); a test's entries go all the same.
    Their triggers are set aside in the cleaning transaction; returns what puts them back."""
    if conn.dialect.name == "postgresql":
        for table in LEDGER_TABLES:
            conn.exec_driver_sql(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        return [f"ALTER TABLE {table} ENABLE TRIGGER USER" for table in LEDGER_TABLES]
    triggers = conn.exec_driver_sql(
        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"
        " AND tbl_name IN ('journal_entries', 'postings')"
    ).fetchall()
    for name, _sql in triggers:
        conn.exec_driver_sql(f"DROP TRIGGER {name}")
    return [sql for _name, sql in triggers]


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
        settle_interval_seconds=0,  # tests settle when they choose to
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
    """A Redis database for the test (this worker's), flushed before and after."""
    url = worker_redis_url()
    require_server(url, 6379, "Redis")
    import redis

    r = redis.Redis.from_url(url)
    r.flushdb()
    yield url
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
