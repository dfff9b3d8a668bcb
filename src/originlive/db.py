"""Engine, sessions and the declarative base shared by every feature."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import DateTime, MetaData, event
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

# Named constraints let Alembic drop and alter them on SQLite (batch mode) and PostgreSQL alike.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base; every table of every feature hangs off its metadata."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp; SQLite forgets the zone, so it is put back on read."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        try:
            return value.astimezone(UTC)
        except OverflowError:  # 9999-12-31T23:59-14:00 is past the calendar's end in UTC
            raise ValueError(f"{value.isoformat()} has no UTC time; bound it at the edge") from None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    """Now, in UTC, timezone-aware."""
    return datetime.now(UTC)


def is_sqlite(url: str) -> bool:
    """Whether the URL points at SQLite."""
    return url.startswith("sqlite")


BUSY_TIMEOUT_MS = 10_000  # how long a SQLite writer waits for another's lock
# How long a request waits for a free connection of the pool before it is answered 503 with
# Retry-After (``errors.Busy``): under a surge a quick "again in a second" beats a 500 after
# SQLAlchemy's default 30 s, while every connection serves queries of milliseconds.
POOL_TIMEOUT_SECONDS = 2


def sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the single writer; busy_timeout makes a writer wait for
    # the lock instead of failing at once; foreign keys are off by default in SQLite.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.close()


def create_engine(url: str, *, echo: bool = False, jobs: bool = False) -> AsyncEngine:
    """An async engine for the URL, with SQLite tuned for a server.

    ``jobs``: a small pool of its own for the process's background work (the live rooms'
    second, the media sweep, the sandbox gateway's courier), so that a surge of requests,
    which may find the requests' pool full, never starves it; a job waits its turn there
    rather than failing.
    """
    pool: dict[str, Any]
    if jobs:
        pool = {"pool_size": 2, "max_overflow": 2, "pool_timeout": 30}
    elif is_sqlite(url):
        pool = {"pool_size": 8, "max_overflow": 8, "pool_timeout": POOL_TIMEOUT_SECONDS}
    else:
        pool = {"pool_size": 10, "max_overflow": 20, "pool_timeout": POOL_TIMEOUT_SECONDS}
    if is_sqlite(url):
        engine = create_async_engine(url, echo=echo, **pool)
        event.listen(engine.sync_engine, "connect", sqlite_pragmas)
        return engine
    return create_async_engine(url, echo=echo, pool_pre_ping=True, **pool)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """A unit of work: committed at the end, rolled back if it raises; then what was queued
    with :func:`after_commit` runs."""
    async with sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        await session.commit()
        for callback in session.info.pop("after_commit", []):
            await callback()


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's session: committed when the handler returns, rolled back if it raises."""
    async with transaction(request.app.state.sessionmaker) as session:
        yield session


def after_commit(session: AsyncSession, callback: Any) -> None:
    """Queue an awaitable callback to run once the request's transaction has committed."""
    session.info.setdefault("after_commit", []).append(callback)


# scope="function": the commit happens before the response is sent, so a 2xx means committed.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
