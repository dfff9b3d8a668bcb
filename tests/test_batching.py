"""SQLite's batching: the writer waits for the lock off the event loop; the reader checkpoints."""

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest
from sqlalchemy import Connection, insert
from sqlalchemy.exc import IntegrityError

from originlive.batching import BatchReader, BatchWriter, checkpoint
from originlive.bootstrap import migrate
from originlive.regions.models import Region, RegionLevel


def _add_village(conn: Connection) -> None:
    conn.execute(
        insert(Region).values(
            code="610431102299",
            name="测试村",
            level=RegionLevel.VILLAGE,
            parent_code="610431",
            path="610000/610400/610431/610431102299/",
            official=False,
        )
    )


async def test_reader_checkpoints_the_wal(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'originlive.db'}"
    await asyncio.to_thread(migrate, url)
    writer, reader = BatchWriter(url), BatchReader(url)
    try:
        await writer.run(_add_village)
        busy, wal_pages, done = await reader.run(checkpoint)
        assert busy == 0 and wal_pages > 0 and done == wal_pages
    finally:
        await writer.close()
        await reader.close()


async def test_writer_waits_for_the_lock_off_the_event_loop(tmp_path: Path) -> None:
    # A request's transaction (another connection) holds SQLite's write lock: the writer's
    # round waits for it on its thread, while the event loop goes on serving others.
    url = f"sqlite+aiosqlite:///{tmp_path / 'originlive.db'}"
    await asyncio.to_thread(migrate, url)
    writer = BatchWriter(url)
    holder = sqlite3.connect(tmp_path / "originlive.db", isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        job = asyncio.create_task(writer.run(_add_village))
        gaps = []
        for _ in range(20):  # the loop keeps turning while the writer waits
            started = time.monotonic()
            await asyncio.sleep(0.01)
            gaps.append(time.monotonic() - started)
        assert max(gaps) < 0.1 and not job.done()
        holder.execute("COMMIT")
        await asyncio.wait_for(job, 5)
        count = holder.execute("SELECT count(*) FROM regions WHERE code = '610431102299'")
        assert count.fetchone() == (1,)
        with pytest.raises(IntegrityError):  # the writer's next rounds work as before
            await writer.run(_add_village)
        assert await writer.run(_villages) == 1
    finally:
        holder.close()
        await writer.close()


def _villages(conn: Connection) -> int:
    return int(
        conn.exec_driver_sql("SELECT count(*) FROM regions WHERE level = 'village'").scalar_one()
    )


async def test_a_long_round_leaves_the_event_loop_free_between_commits(tmp_path: Path) -> None:
    # A sweep of many jobs (here 2 ms each, 0.4 s in all) commits in rounds of about
    # ROUND_BUDGET_SECONDS, and the loop serves others between them.
    url = f"sqlite+aiosqlite:///{tmp_path / 'originlive.db'}"
    await asyncio.to_thread(migrate, url)
    writer = BatchWriter(url)
    try:
        jobs = asyncio.gather(*(writer.run(_slow_count) for _ in range(200)))
        gaps = []
        while not jobs.done():
            started = time.monotonic()
            await asyncio.sleep(0)
            gaps.append(time.monotonic() - started)
        assert len(await jobs) == 200
        assert max(gaps) < 0.1
    finally:
        await writer.close()


def _slow_count(conn: Connection) -> int:
    time.sleep(0.002)
    return _villages(conn)
