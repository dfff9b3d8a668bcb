"""Migrations run forwards and back on a database of their own, on both backends."""

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import POSTGRES_ADMIN_URL, require_server
from tests.servers import drop_database, recreate_database


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
