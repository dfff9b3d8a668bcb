"""What a migration's test asks of a database: which of some tables it has, how they differ
from the models, and whether a revision goes down and up again."""

import asyncio
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect

from originlive.bootstrap import alembic_config
from originlive.db import Base, create_engine
from originlive.models import import_all_models


def tables_at(url: str, tables: set[str]) -> tuple[set[str], list[Any]]:
    """Which of ``tables`` the database has, and how they differ from the models."""

    def ours(item: Any, name: str | None, type_: str, _reflected: bool, _compare: Any) -> bool:
        return (name if type_ == "table" else item.table.name) in tables

    def look(connection: Connection) -> tuple[set[str], list[Any]]:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_object": ours}
        )
        found = set(inspect(connection).get_table_names()) & tables
        return found, compare_metadata(context, Base.metadata)

    async def run() -> tuple[set[str], list[Any]]:
        engine = create_engine(url)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(look)
        finally:
            await engine.dispose()

    import_all_models()
    return asyncio.run(run())


def down_and_up(
    url: str, revision: str, before: str, tables: set[str]
) -> tuple[set[str], list[Any]]:
    """Upgrade to ``revision`` (its tables must then match the models), down to ``before``,
    and up again; returns what ``tables_at`` saw at ``before``."""
    config = alembic_config(url)
    command.upgrade(config, revision)
    assert tables_at(url, tables) == (tables, [])
    command.downgrade(config, before)
    seen = tables_at(url, tables)
    command.upgrade(config, revision)
    assert tables_at(url, tables) == (tables, [])
    return seen
