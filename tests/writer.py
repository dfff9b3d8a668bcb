"""Running a synchronous test body on a connection like the order writer's."""

import asyncio
from collections.abc import Callable

from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from originlive.batching import _sqlite_thread_engine


async def on_writer_connection(database_url: str, run: Callable[[Connection], None]) -> None:
    """``run(connection)`` as the order writer runs its rules: on SQLite a synchronous
    connection of its own (in a thread), on PostgreSQL asyncpg's driven through run_sync."""
    if database_url.startswith("sqlite"):
        engine = _sqlite_thread_engine(database_url, writer=True)
        try:
            with engine.connect() as connection:
                await asyncio.to_thread(run, connection)
        finally:
            engine.dispose()
        return
    async_engine = create_async_engine(database_url)
    try:
        async with async_engine.connect() as connection:
            await connection.run_sync(run)
    finally:
        await async_engine.dispose()
