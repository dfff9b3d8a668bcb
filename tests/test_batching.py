"""The batching threads on SQLite: the reader checkpoints what the writer leaves in the WAL."""

import asyncio
from pathlib import Path

from sqlalchemy import Connection, insert

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
