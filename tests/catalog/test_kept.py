"""``catalog.service.kept``: what the reader read is answered again only while nothing has
been committed to the database since, by any connection, and never inside a transaction."""

from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, create_engine

from originlive.catalog.service import KEPT_READS, kept


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    made = create_engine(f"sqlite:///{tmp_path / 'kept.db'}")
    with made.begin() as conn:
        conn.exec_driver_sql("PRAGMA journal_mode=WAL")
        conn.exec_driver_sql("CREATE TABLE t (n INTEGER)")
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    return made


class Reads:
    """``read`` for ``kept``: the sum of ``t``, counting how often it was really read."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, conn: Connection) -> int:
        self.count += 1
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        return int(cursor.execute("SELECT sum(n) FROM t").fetchone()[0])


def test_kept_until_another_connection_commits(engine: Engine) -> None:
    reads = Reads()
    with engine.connect() as reader, engine.connect() as writer:
        assert [kept(reader, key="sum", read=reads) for _ in range(3)] == [1, 1, 1]
        assert reads.count == 1
        assert kept(reader, key="other", read=reads) == 1
        assert reads.count == 2

        writer.exec_driver_sql("INSERT INTO t VALUES (2)")
        assert kept(reader, key="sum", read=reads) == 1  # not committed yet: the same
        writer.rollback()
        assert kept(reader, key="sum", read=reads) == 1
        assert reads.count == 2

        writer.exec_driver_sql("INSERT INTO t VALUES (2)")
        writer.commit()
        assert kept(reader, key="sum", read=reads) == 3
        assert kept(reader, key="other", read=reads) == 3  # every key is read again
        assert reads.count == 4


def test_a_connections_own_writes_are_never_missed(engine: Engine) -> None:
    reads = Reads()
    with engine.connect() as conn:
        assert kept(conn, key="sum", read=reads) == 1
        conn.exec_driver_sql("INSERT INTO t VALUES (5)")  # in a transaction: read each time
        assert kept(conn, key="sum", read=reads) == 6
        assert kept(conn, key="sum", read=reads) == 6
        assert reads.count == 3
        conn.rollback()  # its own changes, even undone, count: read again
        assert kept(conn, key="sum", read=reads) == 1
        assert kept(conn, key="sum", read=reads) == 1
        assert reads.count == 4


def test_only_the_latest_keys_are_kept(engine: Engine) -> None:
    reads = Reads()
    with engine.connect() as reader:
        for key in range(KEPT_READS + 1):
            kept(reader, key=key, read=reads)
        kept(reader, key=KEPT_READS, read=reads)
        assert reads.count == KEPT_READS + 1
        kept(reader, key=0, read=reads)  # the oldest went
        assert reads.count == KEPT_READS + 2


def test_with_fresh_for_a_commit_it_was_not_told_of_shows_within_that_time(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While orders commit every moment, a search is kept for ``fresh_for`` seconds; a change
    the caller was told of (``generation`` moved) is read at once."""
    import originlive.catalog.service as service

    clock = [100.0]
    monkeypatch.setattr(service.time, "monotonic", lambda: clock[0])
    reads = Reads()
    with engine.connect() as reader, engine.connect() as writer:
        assert kept(reader, key="sum", read=reads, generation=7, fresh_for=1.0) == 1
        writer.exec_driver_sql("INSERT INTO t VALUES (2)")
        writer.commit()  # an order's plain SQL, say: not told of
        clock[0] += 0.5
        assert kept(reader, key="sum", read=reads, generation=7, fresh_for=1.0) == 1
        assert reads.count == 1
        clock[0] += 0.6  # over a second since it was read: read again
        assert kept(reader, key="sum", read=reads, generation=7, fresh_for=1.0) == 3
        assert reads.count == 2

        writer.exec_driver_sql("INSERT INTO t VALUES (4)")
        writer.commit()  # a product's change, told of: read at once
        assert kept(reader, key="sum", read=reads, generation=8, fresh_for=1.0) == 7
        assert reads.count == 3
        # Nothing committed since, and nothing told of: kept however old.
        clock[0] += 60
        assert kept(reader, key="sum", read=reads, generation=8, fresh_for=1.0) == 7
        assert reads.count == 3
