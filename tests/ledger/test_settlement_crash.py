"""A settlement run killed with SIGKILL half-way leaves whole entries only, and the next run
posts the rest and nothing twice.

``originlive ledger settle`` (what the server runs every ``settle_interval_seconds``) settles
3,000 received orders in batches of 40, a transaction each; it is killed once a few batches
are in. The book must then verify (no entry without postings or out of balance), and a second
run must capture and release every order exactly once.
"""

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Connection, func, select
from sqlalchemy.ext.asyncio import create_async_engine

from originlive.ledger import service as ledger
from originlive.ledger.models import EntryKind, JournalEntry
from tests.writer import completed_orders, shop_with_a_sku

ORDERS = 3000
ORIGINLIVE = str(Path(sys.executable).with_name("originlive"))


def seed(conn: Connection) -> None:
    seeded = shop_with_a_sku(conn, at=datetime.now(UTC), buyers=20, price_cents=1990, stock=1)
    completed_orders(conn, seeded, count=ORDERS, at=datetime.now(UTC) - timedelta(days=30))


def counted(conn: Connection) -> dict[str, int]:
    rows = conn.execute(select(JournalEntry.kind, func.count()).group_by(JournalEntry.kind)).all()
    return {str(kind): n for kind, n in rows}


def settle(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [ORIGINLIVE, "ledger", "settle", "--batch", "40"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


async def test_a_run_killed_half_way_posts_nothing_twice(
    app, database_url: str, tmp_path: Path
) -> None:
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(seed)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORIGINLIVE_")} | {
            "ORIGINLIVE_DATABASE_URL": database_url,
            "ORIGINLIVE_DATA_DIR": str(tmp_path / "data"),
            "ORIGINLIVE_LOG_LEVEL": "warning",
        }
        run = settle(env)
        deadline = time.monotonic() + 60
        seen: dict[str, int] = {}
        while sum(seen.values()) < 400 and time.monotonic() < deadline and run.poll() is None:
            await asyncio.sleep(0.02)
            async with engine.connect() as conn:
                seen = await conn.run_sync(counted)
        assert run.poll() is None, "the run ended before it could be killed"
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=10)
        assert run.returncode == -signal.SIGKILL

        async with engine.connect() as conn:
            report = await conn.run_sync(ledger.verify)
            half = await conn.run_sync(counted)
        assert report.ok, report  # every entry whole and balanced
        assert 0 < half[EntryKind.CAPTURE] < ORDERS, half

        again = settle(env)
        out, _ = again.communicate(timeout=120)
        assert again.returncode == 0, out.decode()
        async with engine.connect() as conn:
            report = await conn.run_sync(ledger.verify)
            done = await conn.run_sync(counted)
        assert report.ok, report
        assert done == {EntryKind.CAPTURE: ORDERS, EntryKind.RELEASE: ORDERS}
        # What the second run posted is what the first had left, to the entry.
        captured = f"{ORDERS - half[EntryKind.CAPTURE]} payments captured"
        assert captured in out.decode(), out.decode()
        assert report.money_in == report.held  # nothing paid out yet: all of it held
    finally:
        await engine.dispose()
