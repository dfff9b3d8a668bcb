"""Where synchronous database work runs: batching on SQLite, the async engine elsewhere.

The order writer runs the rules of ``orders.stock`` and ``payments.records``: on SQLite one
connection that commits the jobs of a moment together (``BatchWriter``), a transaction per
call on PostgreSQL. Both commit before they answer, so a caller that gets a result knows it
is durable (invariant 6). They are the one place outside the request's session that commits:
the flash-sale hot path must commit on its own, and on SQLite every change to orders and
stock goes through one connection, so that no request transaction ever fights the writer for
SQLite's single write lock.

The reader does the same for hot reads (bearer tokens on a buyer's first press, the Redis
gate's loads): on SQLite a thread that answers a batch of lookups per wake-up, elsewhere a
connection of its own that runs a batch of reads per trip. On SQLite it also checkpoints the
WAL, which the writer leaves alone. (New orders on PostgreSQL do not use the writer: see
``orders/bulk.py``.)
"""

import asyncio
import contextlib
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import Connection, Engine, RootTransaction, create_engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from originlive.db import BUSY_TIMEOUT_MS, is_sqlite, sqlite_pragmas
from originlive.errors import OriginliveError

log = logging.getLogger(__name__)

T = TypeVar("T")


class Runner(Protocol):
    """Runs ``fn(connection, **kwargs)`` and returns its result (once committed, for writers)."""

    async def run(self, fn: Callable[..., T], /, **kwargs: Any) -> T: ...

    async def close(self) -> None: ...


OrderWriter = Runner


# For PostgreSQL connections whose every statement looks rows up by an index (the order
# writer, the bulk placer, the reader). A connection keeps the plans it made while the tables
# were small (a fresh deployment, a new sale): a sequential scan of orders per key, and in the
# foreign-key checks, that grows with every order until autovacuum's next analyze. Measured
# (bulk.place_many, 22,400 orders in batches of 16 from a fresh database): 3.6 ms a batch
# growing to 7.3 ms with the default, a steady 3.6 ms with this.
INDEX_PLANS = {"server_settings": {"enable_seqscan": "off"}}


class TransactionWriter:
    """One transaction per call (PostgreSQL): correct across processes.

    It has its own connection pool. A request holds a connection of the request pool while it
    waits here; were the writer to draw from that pool too, a burst of requests could take
    every connection and wait for one more for ever.
    """

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self._engine = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            connect_args=INDEX_PLANS,
        )

    async def run(self, fn: Callable[..., T], /, **kwargs: Any) -> T:
        async with self._engine.begin() as conn:
            return await conn.run_sync(lambda sync: fn(sync, **kwargs))

    async def close(self) -> None:
        await self._engine.dispose()


_STOP = object()

Item = TypeVar("Item")


@dataclass(frozen=True)
class Batched(Generic[Item, T]):
    """A rule the writer may decide for many jobs in one call: ``many(conn, items)`` answers
    each item (a result, or the ``OriginliveError`` it is refused with), as ``one(conn,
    item)`` would one after another. If ``many`` raises, each item runs alone with ``one``."""

    many: Callable[[Connection, list[Item]], Sequence[T | OriginliveError]]
    one: Callable[[Connection, Item], T]


def _alone(conn: Connection, *, rule: Batched[Any, Any], item: Any) -> Any:
    return rule.one(conn, item)


def checkpoint(conn: Connection) -> tuple[int, int, int]:
    """Copy what the WAL holds into the SQLite file without blocking anyone (PASSIVE)."""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    busy, wal_pages, done = cursor.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return int(busy), int(wal_pages), int(done)


async def run_checkpoints(reader: Runner, *, interval_seconds: float = 1.0) -> None:
    """Checkpoint the SQLite WAL forever, every ``interval_seconds``; errors are logged."""
    while True:
        try:
            await reader.run(checkpoint)
        except Exception:
            log.exception("WAL checkpoint failed")
        await asyncio.sleep(interval_seconds)


READER_CACHE_KIB = 64 * 1024  # the reader's page cache (catalog searches count from it)
READER_MMAP_BYTES = 256 * 1024 * 1024


def _sqlite_thread_engine(url: str, *, writer: bool) -> Engine:
    """A synchronous engine on the same file, with one connection and real savepoints."""
    engine = create_engine(
        url.replace("+aiosqlite", ""),
        poolclass=StaticPool,
        # The writer's connection begins and commits on its thread, and runs its jobs on the
        # event loop's: one at a time, never at once.
        connect_args={"check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, record: Any) -> None:
        sqlite_pragmas(dbapi_connection, record)
        # Orders and payments survive a power cut, not just a crash: fsync at every commit.
        # Commits carry a whole batch, so the fsync is shared (group commit).
        dbapi_connection.execute("PRAGMA synchronous=FULL")
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin, so that
        # SAVEPOINT works (and a reader's statements each stand alone).
        dbapi_connection.isolation_level = None

    if writer:

        @event.listens_for(engine, "connect")
        def _no_checkpoints(dbapi_connection: Any, record: Any) -> None:
            # A commit that crosses the WAL's size mark would copy the WAL back into the
            # database right there, with the orders of the batch waiting; the reader thread
            # checkpoints instead (``checkpoint``), beside the writer.
            dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")

        @event.listens_for(engine, "connect")
        def _no_waiting(dbapi_connection: Any, record: Any) -> None:
            # The writer begins on the event loop, which must never wait for the lock.
            dbapi_connection.execute("PRAGMA busy_timeout=0")

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # the writer takes the write lock up front

    else:

        @event.listens_for(engine, "connect")
        def _read_from_memory(dbapi_connection: Any, record: Any) -> None:
            # SQLite caches 2 MB of pages per connection by default: fewer than the product
            # rows a search matching a thousand products reads to count them, so every search
            # read them again from the operating system (3-6 ms instead of under 1). And a
            # connection's cache is emptied whenever another connection commits: the count
            # then reads them again too (3.9 ms), unless the file is mapped (1.5 ms).
            dbapi_connection.execute(f"PRAGMA cache_size=-{READER_CACHE_KIB}")
            dbapi_connection.execute(f"PRAGMA mmap_size={READER_MMAP_BYTES}")

    return engine


J = TypeVar("J")


class Gatherer(Generic[J]):
    """Jobs of a moment, gathered and handled together by one task of the event loop.

    A caller ``_submit``s a job and waits for its answer; the task takes what has gathered
    (``_take``) and hands it to ``_handle``, which answers each job's future. What comes in
    meanwhile waits for the next round, so rounds grow with the load: one round trip to a
    server serves many callers.
    """

    def __init__(self) -> None:
        self._waiting: list[tuple[J, asyncio.Future[Any]]] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()  # nothing waits or is being handled
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    async def _submit(self, job: J) -> Any:
        loop = asyncio.get_running_loop()
        if self._task is None:
            self._task = loop.create_task(self._loop())
        future: asyncio.Future[Any] = loop.create_future()
        self._waiting.append((job, future))
        self._idle.clear()
        self._wake.set()
        try:
            return await future
        finally:
            # A raised SoldOut's traceback holds this frame, which held the future, which
            # holds the exception: a cycle per refusal, left to the cycle collector. At
            # thousands of refusals a second its pauses were the scarce burst's p99.
            del future

    async def _stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _take(self) -> list[tuple[J, asyncio.Future[Any]]]:
        """The jobs of the next round (all that wait, unless a subclass says otherwise)."""
        jobs, self._waiting = self._waiting, []
        return jobs

    async def _handle(self, jobs: list[tuple[J, asyncio.Future[Any]]]) -> None:
        raise NotImplementedError

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._waiting:
                await self._handle(self._take())
            self._idle.set()


def answer(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    """Resolve the future with a result or an exception, unless its caller has gone."""
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


# A writer's job: a rule and its keyword arguments, or a batched rule and {"item": item}.
_Job = tuple[Callable[..., Any] | Batched[Any, Any], dict[str, Any]]


class BatchWriter(Gatherer[_Job]):
    """SQLite's order writer: the jobs of a moment run together and commit at once (group
    commit), each in a savepoint, so that one that raises rolls back alone.

    The jobs run on the event loop itself, one round at a time; only the two waits leave it
    for a thread of the writer's own: taking the write lock (``BEGIN IMMEDIATE``, which waits
    while a request's transaction writes) and the commit (its fsync). When the jobs ran on a
    thread of their own, the two threads handed the GIL to each other at every statement,
    and a flash sale's orders waited on those hand-overs: 7,900 orders a second here, against
    9,400 with this (bench/flash_sale.py). A round holds the loop for about
    ``ROUND_BUDGET_SECONDS`` at most, then commits, so that a long sweep does not hold it for
    the whole sweep.

    Results reach their callers only after the commit; if it fails, every job of the round
    fails with it.
    """

    name = "order-writer"
    # How long a round may hold the event loop before it commits what it has done. A sweep
    # that expires thousands of orders after a sale leaves the loop free between rounds.
    ROUND_BUDGET_SECONDS = 0.01

    def __init__(self, url: str, *, max_batch: int = 256) -> None:
        super().__init__()
        self._engine = _sqlite_thread_engine(url, writer=True)
        self._conn = self._engine.connect()
        self._max_batch = max_batch
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)

    async def run(self, fn: Callable[..., T], /, **kwargs: Any) -> T:
        result: T = await self._submit((fn, kwargs))
        return result

    async def run_batched(self, rule: Batched[Item, T], item: Item) -> T:
        """``rule`` for ``item``, decided together with the jobs of the same rule that wait
        beside it (one call of ``rule.many``), committed before it answers."""
        result: T = await self._submit((rule, {"item": item}))
        return result

    async def close(self) -> None:
        """Finish what was submitted, then let go of the database."""
        await self._idle.wait()
        await self._stop()
        await asyncio.get_running_loop().run_in_executor(self._thread, self._conn.close)
        self._thread.shutdown()
        self._engine.dispose()

    def _take(self) -> list[tuple[_Job, Any]]:
        jobs, self._waiting = self._waiting[: self._max_batch], self._waiting[self._max_batch :]
        return jobs

    async def _handle(self, jobs: list[tuple[_Job, Any]]) -> None:
        outcomes = await self._round(asyncio.get_running_loop(), [job for job, _ in jobs])
        # What the round had no time for goes first into the next round.
        self._waiting[:0] = jobs[len(outcomes) :]
        for (_job, future), (ok, value) in zip(jobs, outcomes, strict=False):
            answer(future, ok, value)  # a caller that gave up: the order stands regardless

    async def _round(
        self, loop: asyncio.AbstractEventLoop, jobs: list[_Job]
    ) -> list[tuple[bool, Any]]:
        """Run jobs from the start of ``jobs`` until the time budget is spent, then commit;
        returns the outcomes of those that ran (all of ``jobs``' if the round failed)."""
        conn = self._conn
        try:
            # Mostly the write lock is free and taking it costs a few microseconds here; a
            # hop to the thread for it would cost the round a wait for the GIL. While a
            # request's transaction holds it (catalog edits, sign-ups), the thread waits.
            transaction = conn.begin()
        except OperationalError:
            try:
                transaction = await loop.run_in_executor(self._thread, self._begin_waiting)
            except Exception as exc:  # the lock stayed taken past the busy timeout
                log.exception("%s could not begin", self.name)
                return [(False, exc)] * len(jobs)
        try:
            # Savepoints on the raw cursor: through SQLAlchemy each costs a statement
            # compilation, as much as the rest of an order (measured, see rawsql).
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            outcomes: list[tuple[bool, Any]] = []
            deadline = time.monotonic() + self.ROUND_BUDGET_SECONDS
            for fn, group in itertools.groupby(jobs, key=lambda job: job[0]):
                if outcomes and time.monotonic() > deadline:
                    break
                if isinstance(fn, Batched):
                    items = [kwargs["item"] for _fn, kwargs in group]
                    outcomes += self._many(conn, cursor, fn, items)
                    continue
                for _fn, kwargs in group:
                    outcomes.append(self._one(conn, cursor, fn, kwargs))
                    if time.monotonic() > deadline:
                        break
            await loop.run_in_executor(self._thread, transaction.commit)
        except Exception as exc:  # the round failed or its commit: nothing of it is durable
            log.exception("%s round failed", self.name)
            with contextlib.suppress(Exception):
                await loop.run_in_executor(self._thread, transaction.rollback)
            return [(False, exc)] * len(jobs)
        return outcomes

    def _begin_waiting(self) -> RootTransaction:
        """Begin, waiting up to SQLite's busy timeout for the write lock (on the thread)."""
        cursor = self._conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        try:
            return self._conn.begin()
        finally:
            cursor.execute("PRAGMA busy_timeout=0")

    def _one(
        self, conn: Connection, cursor: Any, fn: Callable[..., Any], kwargs: dict[str, Any]
    ) -> tuple[bool, Any]:
        """One job in a savepoint of its own: if it raises, it rolls back alone."""
        cursor.execute("SAVEPOINT job")
        try:
            return (True, fn(conn, **kwargs))
        except Exception as exc:
            cursor.execute("ROLLBACK TO job")
            if not isinstance(exc, OriginliveError):
                log.exception("%s job failed", self.name)
            # Without its traceback, whose frames hold what holds the exception: no cycle
            # per refusal for the cycle collector to find.
            return (False, exc.with_traceback(None))
        finally:
            cursor.execute("RELEASE job")

    def _many(
        self, conn: Connection, cursor: Any, rule: Batched[Any, Any], items: list[Any]
    ) -> list[tuple[bool, Any]]:
        cursor.execute("SAVEPOINT jobs")
        try:
            answers = rule.many(conn, items)
        except Exception:
            cursor.execute("ROLLBACK TO jobs")
            log.exception("%s batch failed; its jobs run one by one", self.name)
            return [self._one(conn, cursor, _alone, {"rule": rule, "item": i}) for i in items]
        finally:
            cursor.execute("RELEASE jobs")
        return [
            (False, a.with_traceback(None)) if isinstance(a, OriginliveError) else (True, a)
            for a in answers
        ]


class ConnectionReader(Gatherer[tuple[Callable[..., Any], dict[str, Any]]]):
    """Hot reads on PostgreSQL: one connection of its own (autocommit), a batch of reads per
    trip through ``run_sync``.

    Through the request pool each token lookup took a checkout, a ping, BEGIN, the query and
    a rollback, and a burst of first presses drove the pool past its size into opening and
    closing connections: 28% of a server's CPU in the flash-sale bench (py-spy). Here the
    reads of a moment queue and run one after another on the same connection.
    """

    def __init__(self, url: str) -> None:
        super().__init__()
        self._engine = create_async_engine(
            url,
            pool_size=1,
            max_overflow=0,
            pool_pre_ping=True,
            isolation_level="AUTOCOMMIT",
            connect_args=INDEX_PLANS,
        )

    async def run(self, fn: Callable[..., T], /, **kwargs: Any) -> T:
        result: T = await self._submit((fn, kwargs))
        return result

    async def close(self) -> None:
        await self._stop()
        await self._engine.dispose()

    async def _handle(self, jobs: list[tuple[Any, asyncio.Future[Any]]]) -> None:
        try:
            async with self._engine.connect() as conn:
                outcomes = await conn.run_sync(_each, [job for job, _ in jobs])
        except Exception as exc:  # the connection failed: every read of the batch
            outcomes = [(False, exc)] * len(jobs)
        for (_job, future), (ok, value) in zip(jobs, outcomes, strict=True):
            answer(future, ok, value)


class BatchReader:
    """Hot reads on SQLite (a buyer's token on the first press, the WAL's checkpoints): a
    thread with a connection of its own answers every read waiting when it wakes.

    Each read is a statement of its own (autocommit): it sees what is committed and takes no
    lock, and a batch of them costs one wake-up of the thread, not aiosqlite's hops per call.
    """

    name = "sqlite-reader"

    def __init__(self, url: str, *, max_batch: int = 512) -> None:
        self._engine = _sqlite_thread_engine(url, writer=False)
        self._max_batch = max_batch
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    async def run(self, fn: Callable[..., T], /, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((fn, kwargs, future, loop))
        try:
            return await future
        finally:
            del future  # no exception-traceback-future cycle (see Gatherer._submit)

    async def close(self) -> None:
        self._jobs.put(_STOP)
        await asyncio.to_thread(self._thread.join)
        self._engine.dispose()

    def _loop(self) -> None:
        with self._engine.connect() as conn:
            while True:
                batch = [self._jobs.get()]
                while len(batch) < self._max_batch:
                    try:
                        batch.append(self._jobs.get_nowait())
                    except queue.Empty:
                        break
                jobs = [job for job in batch if job is not _STOP]
                if jobs:
                    _hand_back(jobs, _each(conn, [(fn, kwargs) for fn, kwargs, _, _ in jobs]))
                if len(jobs) < len(batch):
                    return


def _hand_back(jobs: list[Any], outcomes: list[tuple[bool, Any]]) -> None:
    """Resolve the callers' futures on their own event loops: one wake-up per loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
    for (_fn, _kw, future, loop), (ok, value) in zip(jobs, outcomes, strict=True):
        by_loop.setdefault(loop, []).append((future, ok, value))
    for loop, loop_outcomes in by_loop.items():
        # RuntimeError: that loop has closed, and its callers are gone with it.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_deliver, loop_outcomes)


def _deliver(outcomes: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in outcomes:
        answer(future, ok, value)


def _each(conn: Connection, jobs: list[Any]) -> list[tuple[bool, Any]]:
    outcomes: list[tuple[bool, Any]] = []
    for fn, kwargs in jobs:
        try:
            outcomes.append((True, fn(conn, **kwargs)))
        except Exception as exc:
            log.exception("read failed")
            outcomes.append((False, exc.with_traceback(None)))
    return outcomes


def create_order_writer(url: str) -> OrderWriter:
    """The batching writer for SQLite, a transaction per call for every other database."""
    if is_sqlite(url):
        return BatchWriter(url)
    return TransactionWriter(url)


def create_reader(engine: AsyncEngine) -> Runner:
    """The batching reader thread for SQLite, a connection of its own elsewhere."""
    url = engine.url.render_as_string(hide_password=False)
    if engine.dialect.name == "sqlite":
        return BatchReader(url)
    return ConnectionReader(url)
