"""Alembic environment: async engines, batch mode on SQLite, every feature's tables."""

import asyncio

from alembic import context
from alembic.runtime.environment import NameFilterParentNames, NameFilterType
from sqlalchemy.engine import Connection

from originlive.db import Base, create_engine, is_sqlite
from originlive.models import import_all_models
from originlive.settings import get_settings

import_all_models()
config = context.config
target_metadata = Base.metadata


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or get_settings().resolved_database_url


def _include_name(name: str | None, type_: NameFilterType, _parents: NameFilterParentNames) -> bool:
    # Objects a migration makes by hand for one backend (an FTS5 table and its shadow tables, a
    # trigram index) are not in the metadata; autogenerate must not offer to drop them.
    hand_made = target_metadata.info.get("hand_made", ())
    return not (name and any(name == h or name.startswith(f"{h}_") for h in hand_made))


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=is_sqlite(_url()),  # SQLite alters tables by copying them
        compare_type=True,
        include_name=_include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    engine = create_engine(_url())
    async with engine.connect() as connection:
        await connection.run_sync(_configure)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_online())
