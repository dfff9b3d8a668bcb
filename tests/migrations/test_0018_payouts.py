"""Migration 0018 on both databases: it makes the payout tables as the models describe
them, and goes down and up again."""

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect

from originlive.bootstrap import alembic_config
from originlive.db import Base, create_engine
from originlive.models import import_all_models
from tests.conftest import POSTGRES_ADMIN_URL, require_server
from tests.servers import drop_database, recreate_database

TABLES = {"payouts", "payout_events"}


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of its own (migrations run forwards and back on it)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'migrating.db'}"
        return
    require_server(POSTGRES_ADMIN_URL, 5432, "PostgreSQL")
    name = f"originlive_migrating_{os.getpid()}"
    yield asyncio.run(recreate_database(POSTGRES_ADMIN_URL, name))
    asyncio.run(drop_database(POSTGRES_ADMIN_URL, name))


def _ours(item: Any, name: str | None, type_: str, _reflected: bool, _compare_to: Any) -> bool:
    return (name if type_ == "table" else item.table.name) in TABLES


def _inspect(url: str) -> tuple[set[str], list[Any]]:
    """The payout tables there, and how they differ from the models."""

    def look(connection: Connection) -> tuple[set[str], list[Any]]:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_object": _ours}
        )
        tables = set(inspect(connection).get_table_names()) & TABLES
        return tables, compare_metadata(context, Base.metadata)

    async def run() -> tuple[set[str], list[Any]]:
        engine = create_engine(url)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(look)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_the_tables_match_the_models_and_go_down_and_up(url: str) -> None:
    import_all_models()
    config = alembic_config(url)
    command.upgrade(config, "0018")
    assert _inspect(url) == (TABLES, [])

    command.downgrade(config, "0017")
    assert _inspect(url)[0] == set()
    command.upgrade(config, "0018")
    assert _inspect(url) == (TABLES, [])
