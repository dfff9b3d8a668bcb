"""What the database itself refuses, whatever code writes to it; and what ``verify`` finds."""

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from originlive import cli
from originlive.bootstrap import alembic_config
from originlive.ledger import service
from originlive.settings import get_settings
from tests.ledger.conftest import NOW, sale

_ENTRY = (
    "INSERT INTO journal_entries (id, kind, ref, idempotency_key, reverses_id, currency, at,"
    " recorded_at) VALUES (:id, 'adjustment', 'by hand', :key, :reverses, 'CNY', :at, :at)"
)
_POSTING = (
    "INSERT INTO postings (entry_id, account, amount_fen, currency, at)"
    " VALUES (:entry, :account, :amount, 'CNY', :at)"
)


async def _raw_entry(
    conn: AsyncConnection, entry_id: int, *legs: tuple[str, int], reverses: int | None = None
) -> None:
    """An entry written by hand, past ``service.post`` and its checks."""
    at = {"at": NOW}
    await conn.execute(
        text(_ENTRY), {"id": entry_id, "key": f"raw:{entry_id}", "reverses": reverses} | at
    )
    for account, amount in legs:
        await conn.execute(
            text(_POSTING), {"entry": entry_id, "account": account, "amount": amount} | at
        )


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE journal_entries SET ref = 'changed'",
        "DELETE FROM journal_entries",
        "UPDATE postings SET amount_fen = amount_fen * 2",
        "DELETE FROM postings",
    ],
)
async def test_entries_and_postings_are_never_changed(
    book: AsyncConnection, statement: str
) -> None:
    await book.run_sync(service.post, [sale("a")])
    with pytest.raises(DBAPIError, match="never changed or removed"):
        async with book.begin_nested():
            await book.execute(text(statement))
    count = await book.execute(text("SELECT count(*), sum(amount_fen) FROM postings"))
    assert tuple(count.one()) == (3, 0)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize(
    "legs",
    [[("clearing:payments", -100), ("shop:1:pending", 99)], []],
    ids=["unbalanced", "without postings"],
)
async def test_postgresql_refuses_an_unbalanced_entry_at_commit(
    database_url: str, legs: list[tuple[str, int]]
) -> None:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            await conn.begin()
            # Written one statement at a time, the entry is unbalanced in between: allowed...
            await _raw_entry(conn, 900_001, *legs)
            # ...until the commit.
            with pytest.raises(IntegrityError, match="ledger entry 900001"):
                await conn.commit()
            await conn.rollback()
            left = await conn.execute(text("SELECT count(*) FROM journal_entries"))
            assert left.scalar_one() == 0
    finally:
        await engine.dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_postgresql_refuses_a_posting_added_to_a_checked_entry(
    book: AsyncConnection,
) -> None:
    await _raw_entry(book, 900_002, ("clearing:payments", -100), ("shop:1:pending", 100))
    await book.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))  # checked now, as at a commit
    with pytest.raises(IntegrityError, match="does not sum to zero"):
        await book.execute(
            text(_POSTING), {"entry": 900_002, "account": "platform:fees", "amount": 1, "at": NOW}
        )


async def test_verify_finds_a_broken_book(book: AsyncConnection) -> None:
    [posted] = await book.run_sync(service.post, [sale("a", 1000)])
    assert (await book.run_sync(service.verify)).ok
    # Rows the service would never write (on PostgreSQL they would not pass the commit).
    await _raw_entry(book, 900_010, ("clearing:payments", -100), ("shop:1:pending", 99))
    await _raw_entry(book, 900_011)
    await _raw_entry(
        book,
        900_012,
        ("clearing:payments", 1000),
        ("shop:1:pending", -1000),
        reverses=posted.entry_id,
    )
    report = await book.run_sync(service.verify)
    assert not report.ok
    assert report.unbalanced == [900_010]
    assert report.empty == [900_011]
    assert report.unmirrored == [900_012]
    assert report.stale_totals == [  # the rows written by hand added nothing to the totals
        "clearing:payments CNY day 2026-12-07 00:00",
        "clearing:payments CNY hour 2026-12-07 12:00",
        "shop:1:pending CNY day 2026-12-07 00:00",
        "shop:1:pending CNY hour 2026-12-07 12:00",
    ]
    assert report.off == {"CNY": 1}
    assert report.lines()[-1] == "THE BOOK IS OFF"


@pytest.fixture
def embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A migrated SQLite database of the test's own, as the command line's settings."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"
    command.upgrade(alembic_config(url), "head")
    monkeypatch.setenv("ORIGINLIVE_DATABASE_URL", url)
    monkeypatch.setenv("ORIGINLIVE_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def test_the_verify_command(embedded: str, capsys: pytest.CaptureFixture[str]) -> None:
    asyncio.run(_committed(embedded, lambda conn: conn.run_sync(service.post, [sale("a", 1000)])))
    cli.main(["ledger", "verify"])
    assert capsys.readouterr().out.splitlines() == [
        "1 entries, 3 postings",
        "CNY: in 1000 fen = held 1000 + paid out 0",
        "the book balances",
    ]
    # SQLite leaves the sum to the code that posts: a row written by hand gets in.
    unbalanced = (("clearing:payments", -100), ("shop:1:pending", 99))
    asyncio.run(_committed(embedded, lambda conn: _raw_entry(conn, 2, *unbalanced)))
    with pytest.raises(SystemExit) as exited:
        cli.main(["ledger", "verify"])
    assert "entries not summing to zero: 2" in str(exited.value.code)
    assert str(exited.value.code).endswith("THE BOOK IS OFF")


async def _committed(url: str, write: Callable[[AsyncConnection], Awaitable[object]]) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await write(conn)
    finally:
        await engine.dispose()
