"""SQL for hot paths (placing an order, a bearer token), run on the DB-API cursor directly.

Measured in the SQLite writer thread (python /tmp-style micro-benchmark, see the orders issue
note): a select through SQLAlchemy Core with ORM columns costs about 90 us, ``text()`` 35 us,
``exec_driver_sql`` 14 us, the sqlite3 cursor itself 1.4 us. An order takes about ten
statements, so only the cursor leaves room for thousands of orders a second.

Each statement is written once with ``:named`` parameters and compiled per dialect to its
DB-API's own style (``?`` for sqlite3, ``$1`` for asyncpg), then cached. Values must already be
what the driver stores: use ``db_time`` for timestamps, ``.value`` for enums.
"""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, text

_compiled: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {}


def execute(conn: Connection, sql: str, **params: Any) -> Any:
    """Run ``sql`` on the connection's DB-API cursor; returns the cursor."""
    dialect = conn.dialect
    key = (dialect.name, sql)
    compiled = _compiled.get(key)
    if compiled is None:
        statement = text(sql).compile(dialect=dialect)
        compiled = _compiled[key] = (statement.string, tuple(statement.positiontup or ()))
    string, names = compiled
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    cursor.execute(string, tuple(params[n] for n in names))
    return cursor


def from_db_time(value: Any) -> datetime:
    """A timestamp read by ``execute``: SQLite gives SQLAlchemy's text form (UTC)."""
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    assert isinstance(value, datetime)
    return value.astimezone(UTC)


def db_time(conn: Connection, moment: datetime) -> Any:
    """A timestamp as the column stores it: SQLAlchemy's text form on SQLite, as is elsewhere."""
    if conn.dialect.name == "sqlite":
        # SQLAlchemy's "%Y-%m-%d %H:%M:%S.%f", written faster (isoformat without the offset).
        return moment.astimezone(UTC).isoformat(" ", "microseconds")[:26]
    return moment
