"""The operators' flagged scans are read from their partial index, not from every event."""

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.logistics import queries


async def test_flagged_scans_read_the_partial_index(db: AsyncSession) -> None:
    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, sql: str, params: Any, *_: Any) -> None:
        statements.append((sql, params))

    engine = db.bind.sync_engine  # type: ignore[union-attr]
    event.listen(engine, "before_cursor_execute", capture)
    try:
        assert await queries.flagged_scans(db, limit=20, offset=0) == ([], 0)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    reads = [(sql, params) for sql, params in statements if "tracking_events" in sql]
    assert len(reads) == 2  # the count and the page
    conn = await db.connection()
    if db.bind.dialect.name != "sqlite":  # an empty table: make the planner show the index
        await conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
    explain = "EXPLAIN QUERY PLAN" if db.bind.dialect.name == "sqlite" else "EXPLAIN"
    for sql, params in reads:
        plan = (await conn.exec_driver_sql(f"{explain} {sql}", tuple(params))).all()
        assert "ix_tracking_events_flagged" in str(plan), plan
