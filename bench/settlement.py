"""Settlement at volume: ``--orders`` received orders, captured and released in one run.

On a new embedded deployment (SQLite in a temporary directory; with ``--database
postgresql``, a database of its own on the server at ``--postgres-url``), writes ``--orders``
orders straight in (``tests.writer.completed_orders``: paid, received and completed a month
ago, one to three lines each, the second and third sold by anchors, so that a capture has
three to five legs), then times ``ledger.settlement.service.run`` through the order writer,
as the server runs it: every payment captured and every order released, a transaction a
batch of ``--batch``. Prints orders/s (the issue's target: 20,000 embedded), entries and
postings, and whether ``ledger verify`` finds the book right afterwards, as one JSON object.

    python bench/settlement.py [--orders 100000] [--batch 2000] [--database sqlite|postgresql]

Balance reads over a million postings are measured by ``bench/ledger.py``.
"""

import argparse
import asyncio
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from originlive.batching import create_order_writer  # noqa: E402
from originlive.bootstrap import migrate  # noqa: E402
from originlive.ledger import service as ledger  # noqa: E402
from originlive.ledger.models import JournalEntry, Posting  # noqa: E402
from originlive.ledger.settlement import service as settlement  # noqa: E402
from originlive.ledger.settlement import split  # noqa: E402
from tests.servers import drop_database, recreate_database  # noqa: E402
from tests.writer import completed_orders, shop_with_a_sku  # noqa: E402

BENCH_DATABASE = "originlive_bench_settlement"
POLICY = settlement.Policy(
    rule=split.SplitRule(platform_fee_bp=500, station_fee_fen=100),
    auto_confirm=timedelta(days=7),
    after_sales=timedelta(days=7),
)


def seed(conn: Connection, orders: int) -> None:
    now = datetime.now(UTC)
    seeded = shop_with_a_sku(conn, at=now, buyers=50, price_cents=1990, stock=10)
    for start in range(0, orders, 20_000):
        count = min(20_000, orders - start)
        completed_orders(conn, seeded, count=count, at=now - timedelta(days=30))


async def settle(url: str, batch: int) -> dict[str, Any]:
    writer = create_order_writer(url)
    try:
        started = time.perf_counter()
        done = await settlement.run(writer, policy=POLICY, limit=batch)
        seconds = time.perf_counter() - started
    finally:
        await writer.close()
    return {"done": done, "seconds": seconds}


def book(conn: Connection) -> dict[str, Any]:
    report = ledger.verify(conn)
    entries = conn.execute(select(func.count()).select_from(JournalEntry)).scalar()
    postings = conn.execute(select(func.count()).select_from(Posting)).scalar()
    return {"verified": report.ok, "entries": entries, "postings": postings}


async def measure(url: str, args: argparse.Namespace) -> dict[str, Any]:
    await asyncio.to_thread(migrate, url)
    engine = create_async_engine(url)
    try:
        started = time.perf_counter()
        async with engine.begin() as conn:
            await conn.run_sync(seed, args.orders)
        seeded_s = time.perf_counter() - started
        run = await settle(url, args.batch)
        async with engine.connect() as conn:
            checked = await conn.run_sync(book)
    finally:
        await engine.dispose()
    done: settlement.Settled = run["done"]
    return {
        "database": args.database,
        "orders": args.orders,
        "batch": args.batch,
        "seed_seconds": round(seeded_s, 2),
        "captured": done.captured,
        "released": done.released,
        "settle_seconds": round(run["seconds"], 3),
        "orders_per_second": round(args.orders / run["seconds"]),
        "target_orders_per_second": 20_000,
        **checked,
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    if args.database == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            return await measure(f"sqlite+aiosqlite:///{tmp}/originlive.db", args)
    url = await recreate_database(args.postgres_url, BENCH_DATABASE)
    try:
        return await measure(url, args)
    finally:
        await drop_database(args.postgres_url, BENCH_DATABASE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--postgres-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    )
    print(json.dumps(asyncio.run(main_async(parser.parse_args()))))


if __name__ == "__main__":
    main()
