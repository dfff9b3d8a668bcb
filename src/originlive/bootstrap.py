"""Bring a database up to date: Alembic migrations, then the shipped region data."""

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from originlive.db import create_engine, create_sessionmaker, is_sqlite
from originlive.regions import service as regions

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic announces each of its plugins at INFO as it is first imported, which would open
# `originlive migrate`'s output; only the migrations it runs are news. So it is told to keep
# quiet here and imported only below.
logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)

# The Alembic scripts ship inside the package, so an installed wheel migrates as a checkout
# does. Alembic reads them from a real directory: the package is never run from a zip.
MIGRATIONS = Path(__file__).resolve().with_name("migrations")


def alembic_config(url: str) -> "Config":
    """Alembic's configuration for the package's migrations and the given database."""
    from alembic.config import Config

    # No alembic.ini: an installed package has none, and upgrading needs nothing from it.
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


async def _load_regions(url: str) -> int:
    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine)() as session:
            added = await regions.load_official(session)
            await session.commit()
    finally:
        await engine.dispose()
    return added


def migrate(url: str) -> int:
    """Upgrade the schema to head and load missing official regions; returns regions added."""
    if is_sqlite(url):
        db_path = url.split("///", 1)[-1]
        if db_path and db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
    from alembic import command

    command.upgrade(alembic_config(url), "head")
    return asyncio.run(_load_regions(url))
