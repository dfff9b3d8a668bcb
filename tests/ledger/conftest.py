"""The ledger's tests work in one transaction each, rolled back at the end.

The database refuses to delete entries and postings, so a test must leave none behind in the
run's shared database: each works in a transaction that is never committed (a commit the
database refuses leaves nothing either).
"""

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from originlive.ledger.models import EntryKind
from originlive.ledger.service import Entry, Leg
from tests.logistics.conftest import market, network  # noqa: F401 (fixtures, for settlement)

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


@pytest.fixture
async def book(database_url: str) -> AsyncIterator[AsyncConnection]:
    """A connection to the run's database in a transaction that is rolled back afterwards."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            await conn.begin()
            try:
                yield conn
            finally:
                await conn.rollback()
    finally:
        await engine.dispose()


def sale(key: str, total: int = 1000, *, shop: int = 1, at: datetime = NOW, fee: int = 50) -> Entry:
    """A capture of ``total`` fen: from clearing to the shop's pending, less the platform's fee."""
    legs = (
        Leg("clearing:payments", -total),
        Leg(f"shop:{shop}:pending", total - fee),
        Leg("platform:fees", fee),
    )
    return Entry(EntryKind.CAPTURE, f"order:{key}", key, legs, at)
