"""Engine, sessions and the declarative base shared by every feature."""

import enum
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import DateTime, Enum, MetaData, event
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Session
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


def text_enum(cls: type[enum.StrEnum], *, length: int) -> Enum:
    """A column of the enum's values as text: SQLite has no enum type, and PostgreSQL's
    native one would need a migration for every new value."""
    return Enum(
        cls, native_enum=False, length=length, values_callable=lambda e: [m.value for m in e]
    )


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


Committed = Callable[[set[object]], None]
_ON_COMMIT = "on_commit"
_CHANGED = "changed"


def create_sessionmaker(
    engine: AsyncEngine, *, on_commit: Committed | None = None
) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit.

    ``on_commit``, if given, is told after each commit of these sessions which objects the
    transaction added, changed or deleted through the ORM (not what plain SQL statements
    wrote): the pages' cache (``web.pagecache``) forgets the pages that showed them. It runs
    inside the commit's call, so it must be quick and must not raise.
    """
    info = {_ON_COMMIT: on_commit} if on_commit is not None else {}
    return async_sessionmaker(engine, expire_on_commit=False, info=info)


def changed(session: AsyncSession, *objects: object) -> None:
    """Tell the commit's observer of rows written with plain statements, which it cannot see:
    ``objects`` stand for them (a transient ``ShopFollow(user_id=..., shop_id=...)``, say)."""
    if _ON_COMMIT in session.info:
        session.info.setdefault(_CHANGED, set()).update(objects)


@event.listens_for(Session, "after_flush")
def _remember_changes(session: Session, _flush_context: Any) -> None:
    if _ON_COMMIT in session.info:
        changed = session.info.setdefault(_CHANGED, set())
        changed.update(session.new, session.dirty, session.deleted)


@event.listens_for(Session, "after_commit")
def _tell_changes(session: Session) -> None:
    # What a rolled-back flush had changed stays in the set: a later commit of the same
    # session then forgets a page or two more than it had to, which costs a render.
    changed = session.info.pop(_CHANGED, None)
    if changed:
        session.info[_ON_COMMIT](changed)


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
