"""Migration 0008 on a database with shops in it: keys filled, look-alikes kept, nothing lost."""

import asyncio
import datetime as dt
from typing import Any

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from originlive.bootstrap import alembic_config
from originlive.db import create_engine

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
NAMES = ["武功猕猴桃合作社", "ABC 农场", "ＡＢＣ　农场", "武功猕猴桃合作社\u200b", "abc  农场"]


async def _run(url: str, statement: str, rows: list[dict[str, Any]] | None = None) -> list[Any]:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(text(statement), rows or {})
            return list(result.all()) if result.returns_rows else []
    finally:
        await engine.dispose()


def run(url: str, statement: str, rows: list[dict[str, Any]] | None = None) -> list[Any]:
    return asyncio.run(_run(url, statement, rows))


def _shops_before_0008(url: str) -> None:
    run(
        url,
        "INSERT INTO regions (code, name, level, parent_code, path, official)"
        " VALUES ('610000', '陕西省', 'province', NULL, '610000/', true)",
    )
    run(
        url,
        "INSERT INTO users (id, email, password_hash, display_name, is_active, created_at)"
        " VALUES (1, 'a@example.com', 'x', 'A', true, :now)",
        [{"now": NOW}],
    )
    run(
        url,
        "INSERT INTO shops (id, owner_id, name, description, region_code, status, created_at,"
        " updated_at) VALUES (:id, 1, :name, '', '610000', 'approved', :now, :now)",
        [{"id": i, "name": name, "now": NOW} for i, name in enumerate(NAMES, 1)],
    )
    run(
        url,
        "INSERT INTO products (shop_id, title, description, category, origin_region_code,"
        " status, search_text, created_at, updated_at)"
        " VALUES (1, '猕猴桃', '', '水果', '610000', 'active', '', :now, :now)",
        [{"now": NOW}],
    )


def test_keys_are_filled_and_look_alikes_keep_their_names(url: str) -> None:
    config = alembic_config(url)
    command.upgrade(config, "0007")
    _shops_before_0008(url)

    command.upgrade(config, "0008")

    keys = dict(run(url, "SELECT id, name_key FROM shops ORDER BY id"))
    assert keys == {
        1: "武功猕猴桃合作社",
        2: "abc 农场",
        3: "abc 农场  #3",
        4: "武功猕猴桃合作社  #4",
        5: "abc 农场  #5",
    }
    assert [n for (n,) in run(url, "SELECT name FROM shops ORDER BY id")] == NAMES
    with pytest.raises(IntegrityError):  # the index holds from now on
        run(url, "UPDATE shops SET name_key = 'abc 农场' WHERE id = 4")

    # Down and up again without copying the shops table: the product is still there.
    command.downgrade(config, "0007")
    assert "name_key" not in str(run(url, "SELECT * FROM shops WHERE id = 1")[0]._fields)
    command.upgrade(config, "head")
    assert run(url, "SELECT count(*) FROM products") == [(1,)]
