"""The ledger: posting entries in batches, and balance reads over a million postings.

On a new database of each backend (embedded SQLite in a temporary directory; PostgreSQL at
``--postgres-url`` if it answers, on a database of its own):

1. Posting. ``--entries`` captures of 3-5 legs each (clearing, the shop's pending, the
   platform's fee, and an anchor's commission or a station's fee or a co-operative's share for
   some), over 1,000 shops, posted by ``ledger.service.post`` in batches of ``--batch``, a
   transaction (and a commit) a batch, as the settlement will post them. Entries/s and
   postings/s, and a batch's p50/p99.
2. Balances. More entries (two legs: clearing and a shop's pending, spread over a year) until
   ``clearing:payments`` has ``--hot-postings`` postings; then ``--reads`` balance reads each
   (``ledger.service.balance``, p50/p99 ms): of the hot account and of a random shop's, now
   and as of a random moment. Beside them, the plain sum of the hot account's postings over
   an index led by the account, which the account totals spare a read (``ledger/service.py``).

``ledger.service.verify`` runs at the end of each and must find the book right.

    python bench/ledger.py [--entries 100000] [--batch 2000] [--hot-postings 1000000]
                           [--reads 200] [--database sqlite postgresql]

Prints one JSON object.
"""

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from alembic import command
from sqlalchemy import Connection, create_engine, event, text
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from originlive.bootstrap import alembic_config  # noqa: E402
from originlive.db import sqlite_pragmas  # noqa: E402
from originlive.ledger import service  # noqa: E402
from originlive.ledger.models import EntryKind  # noqa: E402
from originlive.ledger.service import Entry, Leg  # noqa: E402
from tests.servers import drop_database, recreate_database  # noqa: E402

BENCH_DATABASE = "originlive_bench_ledger"
HOT = "clearing:payments"
SHOPS = 1000
PLAIN_INDEX, PLAIN_COLUMNS = "bench_postings_account", "account, currency, amount_fen"
NOW = datetime.now(UTC)

# Runs a function on a synchronous connection in a transaction and commits it.
Run = Callable[..., Any]


def capture(rng: random.Random, n: int) -> Entry:
    """A buyer's payment of an order, 3-5 legs: what settlement posts for it."""
    total = rng.randrange(1_000, 100_000)
    fee = total // 50
    legs = [Leg(HOT, -total), Leg("platform:fees", fee)]
    rest = total - fee
    for holder, share in (("anchor", 0.1), ("station", 0.02), ("coop", 0.01)):
        if rng.random() < 0.5:
            cut = int(rest * share) or 1
            bucket = {"anchor": "pending", "station": "fees", "coop": "share"}[holder]
            legs.append(Leg(f"{holder}:{rng.randrange(1, 50)}:{bucket}", cut))
            rest -= cut
    legs.append(Leg(f"shop:{rng.randrange(1, SHOPS + 1)}:pending", rest))
    return Entry(EntryKind.CAPTURE, f"order:{n}", f"capture:order:{n}", tuple(legs), NOW)


def filler(n: int, count: int, rng: random.Random) -> Entry:
    """Two legs, the ``n``th of ``count`` moments of the past year: the hot account's history,
    written in the order it happened."""
    amount = rng.randrange(100, 10_000)
    legs = (Leg(HOT, -amount), Leg(f"shop:{rng.randrange(1, SHOPS + 1)}:pending", amount))
    at = NOW - timedelta(days=365) * (1 - n / count)
    return Entry(EntryKind.CAPTURE, f"fill:{n}", f"fill:{n}", legs, at)


def percentiles(seconds: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(seconds, n=100)
    return {"p50_ms": round(cuts[49] * 1000, 3), "p99_ms": round(cuts[98] * 1000, 3)}


def bench_posting(run: Run, entries: int, batch: int) -> dict[str, Any]:
    rng = random.Random(1)
    made = [capture(rng, n) for n in range(entries)]
    batches = [made[i : i + batch] for i in range(0, entries, batch)]
    times = []
    started, cpu = time.perf_counter(), time.process_time()
    for chunk in batches:
        t = time.perf_counter()
        run(service.post, chunk)
        times.append(time.perf_counter() - t)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    postings = sum(len(e.legs) for e in made)
    return {
        "entries": entries,
        "postings": postings,
        "batch": batch,
        "seconds": round(elapsed, 2),
        "entries_per_s": round(entries / elapsed),
        # This process's CPU: all of the work on SQLite, where a busy machine stretches the
        # wall clock; on PostgreSQL the server's share is not in it.
        "entries_per_cpu_s": round(entries / cpu),
        "postings_per_s": round(postings / elapsed),
        "batch_seconds": {k.replace("_ms", "_s"): v / 1000 for k, v in percentiles(times).items()},
    }


def fill(run: Run, hot_postings: int, already: int, batch: int) -> float:
    """Post fillers until the hot account has ``hot_postings`` postings; the seconds it took."""
    rng = random.Random(2)
    started = time.perf_counter()
    for start in range(already, hot_postings, batch):
        stop = min(start + batch, hot_postings)
        run(service.post, [filler(n, hot_postings, rng) for n in range(start, stop)])
    return time.perf_counter() - started


def bench_balances(run: Run, reads: int) -> dict[str, Any]:
    rng = random.Random(3)

    def timed(account: Callable[[], str], as_of: Callable[[], datetime | None]) -> dict[str, Any]:
        times = []
        for _ in range(reads):
            name, moment = account(), as_of()
            t = time.perf_counter()
            run(partial(service.balance, as_of=moment), name)
            times.append(time.perf_counter() - t)
        return percentiles(times)

    def shop() -> str:
        return f"shop:{rng.randrange(1, SHOPS + 1)}:pending"

    def moment() -> datetime:
        return NOW - timedelta(seconds=rng.randrange(365 * 86_400))

    found = {
        "hot_now": timed(lambda: HOT, lambda: None),
        "hot_as_of": timed(lambda: HOT, moment),
        "random_now": timed(shop, lambda: None),
        "random_as_of": timed(shop, moment),
    }
    # The plain sum, over an index made for it (the ledger has none led by the account).
    run(lambda c: c.execute(text(f"CREATE INDEX {PLAIN_INDEX} ON postings ({PLAIN_COLUMNS})")))
    summed = "SELECT sum(amount_fen) FROM postings WHERE account = :a AND currency = 'CNY'"
    plain = []
    for _ in range(max(reads // 10, 5)):
        t = time.perf_counter()
        run(lambda c: c.execute(text(summed), {"a": HOT}).scalar_one())
        plain.append(time.perf_counter() - t)
    return found | {"hot_plain_sum_over_an_account_index": percentiles(plain)}


def measure(run: Run, args: argparse.Namespace) -> dict[str, Any]:
    posting = bench_posting(run, args.entries, args.batch)
    filled = fill(run, args.hot_postings, args.entries, max(args.batch, 5000))
    counts = run(
        lambda c: c.execute(
            text("SELECT count(*), sum(CASE WHEN account = :a THEN 1 ELSE 0 END) FROM postings"),
            {"a": HOT},
        ).one()
    )
    run(lambda c: c.execute(text("ANALYZE")))
    balances = bench_balances(run, args.reads)
    t = time.perf_counter()
    report = run(service.verify)
    verify_s = time.perf_counter() - t
    if not report.ok:
        sys.exit("\n".join(report.lines()))
    return {
        "post": posting,
        "fill_seconds": round(filled, 1),
        "postings": int(counts[0]),
        "hot_account_postings": int(counts[1]),
        "balance": balances,
        "verify_seconds": round(verify_s, 2),
    }


def embedded(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "ledger.db"
        command.upgrade(alembic_config(f"sqlite+aiosqlite:///{path}"), "head")
        # A synchronous connection, as the embedded order writer has (originlive.batching).
        engine = create_engine(f"sqlite:///{path}")
        event.listen(engine, "connect", sqlite_pragmas)
        with engine.connect() as conn:

            def run(work: Callable[..., Any], *more: Any) -> Any:
                with conn.begin():
                    return work(conn, *more)

            return measure(run, args)


async def server(args: argparse.Namespace) -> dict[str, Any]:
    url = await recreate_database(args.postgres_url, BENCH_DATABASE)
    try:
        await asyncio.to_thread(command.upgrade, alembic_config(url), "head")
        engine = create_async_engine(url)
        async with engine.connect() as conn:
            loop = asyncio.get_running_loop()

            async def transaction(work: Callable[[Connection], Any]) -> Any:
                async with conn.begin():
                    return await conn.run_sync(work)

            def run(work: Callable[..., Any], *more: Any) -> Any:
                # measure() is synchronous: each call runs on the loop from a worker thread.
                job = transaction(lambda c: work(c, *more))
                return asyncio.run_coroutine_threadsafe(job, loop).result()

            result = await asyncio.to_thread(measure, run, args)
        await engine.dispose()
        return result
    finally:
        await drop_database(args.postgres_url, BENCH_DATABASE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--hot-postings", type=int, default=1_000_000)
    parser.add_argument("--reads", type=int, default=200)
    parser.add_argument(
        "--database", nargs="+", choices=("sqlite", "postgresql"), default=["sqlite", "postgresql"]
    )
    parser.add_argument(
        "--postgres-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    )
    args = parser.parse_args()
    results: dict[str, Any] = {}
    if "sqlite" in args.database:
        results["sqlite"] = embedded(args)
    if "postgresql" in args.database:
        try:
            results["postgresql"] = asyncio.run(server(args))
        except OSError as exc:  # no server there: the embedded figures stand alone
            results["postgresql"] = f"not reachable at {args.postgres_url}: {exc}"
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
