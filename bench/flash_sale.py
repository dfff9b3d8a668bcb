"""Flash-sale throughput: many buyers press "buy" on one offer at the same time.

Starts ``originlive serve`` itself on a fresh embedded deployment (SQLite), or with
``--database postgresql`` on a new database of the PostgreSQL server at ``--postgres-url``
(dropped afterwards), and with ``--redis`` with a redis-server of its own (the Redis gate),
makes ``--buyers`` buyers with bearer tokens, and runs
wrk (Debian package ``wrk``, Lua script ``bench/flash_sale.lua``: a new buyer and a new
Idempotency-Key on every request) in two bursts at one offer:

- plentiful: the offer outlasts the burst, so every attempt should be an order;
- scarce: ``--scarce-units`` units against everything wrk can send in the time.

Before them, the same wrk on /healthz from the same server gives the trivial endpoint's rate.
After each burst the database is read: units sold, units oversold (must be 0), and whether
the offer's counter, the orders and the buyers' counters agree. Prints one JSON object.

    python bench/flash_sale.py [--buyers 2000] [--seconds 10] [--connections 64] [--workers 1]
                               [--database sqlite|postgresql] [--redis]

The issue's second target, Redis + PostgreSQL in two processes:

    python bench/flash_sale.py --database postgresql --redis --workers 2
"""

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.wrkrun import require_wrk, wrk  # noqa: E402

from originlive.bootstrap import migrate  # noqa: E402
from originlive.orders.models import HOLDING, FlashOffer, Order, OrderItem  # noqa: E402
from originlive.settings import Settings  # noqa: E402
from tests.crowd import make_buyers, merchant_with_sku  # noqa: E402
from tests.servers import (  # noqa: E402
    RedisServer,
    drop_database,
    free_port,
    recreate_database,
    serve,
    stop,
    wait_until_up,
)

PASSWORD = "bench-password"
ADDRESS = {"name": "王小满", "phone": "13800000000", "region_code": "610431", "detail": "徐杨村"}


BENCH_DATABASE = "originlive_bench"


async def _offer(
    api: httpx.AsyncClient, headers: dict[str, str], sku_id: int, quantity: int, limit: int
) -> int:
    offer = await api.post(
        "/api/v1/offers",
        json={"sku_id": sku_id, "price_cents": 990, "quantity": quantity, "per_buyer_limit": limit},
        headers=headers,
    )
    assert offer.status_code == 201, offer.text
    return int(offer.json()["id"])


async def books(database_url: str, offer_id: int) -> dict[str, Any]:
    """What the database says of the offer after the burst, read in one snapshot.

    wrk stops counting at its deadline while the server still answers what it had received:
    those orders count here (sold), not in wrk's figures.
    """
    held = (
        select(func.coalesce(func.sum(OrderItem.quantity), 0))
        .join(Order, Order.id == OrderItem.order_id)
        .where(OrderItem.offer_id == offer_id, Order.status.in_(HOLDING))
        .scalar_subquery()
    )
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            await asyncio.sleep(1)  # let the server finish the requests wrk left behind
            quantity, remaining, sold = (
                await conn.execute(
                    select(FlashOffer.quantity, FlashOffer.remaining, held).where(
                        FlashOffer.id == offer_id
                    )
                )
            ).one()
    finally:
        await engine.dispose()
    return {
        "units_on_sale": quantity,
        "units_sold": int(sold),
        "units_oversold": max(0, int(sold) - quantity),
        "books_agree": int(sold) + remaining == quantity,
    }


def _burst(
    base: str, args: argparse.Namespace, offer_id: int, tokens_file: Path, work: Path
) -> dict[str, Any]:
    body_file = work / f"body-{offer_id}.json"
    body = {"items": [{"offer_id": offer_id, "quantity": 1}], "address": ADDRESS}
    body_file.write_text(json.dumps(body, ensure_ascii=False))
    os.environ["TOKENS_FILE"], os.environ["BODY_FILE"] = str(tokens_file), str(body_file)
    os.environ["KEY_PREFIX"] = f"o{offer_id}w"  # keys are per buyer: new ones for each burst
    script = ROOT / "bench" / "flash_sale.lua"
    figures = wrk(f"{base}/api/v1/orders", args.seconds, args.connections, script)
    statuses = figures.pop("statuses") or {}
    orders = statuses.get("201", 0)
    return {
        "attempts": figures["requests"],
        "attempts_per_s": figures["requests_per_s"],
        "orders": orders,
        "orders_per_s": round(orders / args.seconds, 1),
        "sold_out_409": statuses.get("409", 0),
        "errors": figures["requests"] - orders - statuses.get("409", 0),
        "statuses": statuses,
        "p50_ms": figures["p50_ms"],
        "p99_ms": figures["p99_ms"],
        "socket_errors": figures["socket_errors"],
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--buyers", type=int, default=2000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--scarce-units", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=1, help="server processes (uvicorn)")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--postgres-url",
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/test",
        help="a database on the server, to create the bench's own database from",
    )
    parser.add_argument("--redis", action="store_true", help="the Redis gate, own redis-server")
    args = parser.parse_args()
    require_wrk()

    work = Path(tempfile.mkdtemp(prefix="originlive-flash-"))
    settings = Settings(data_dir=work / "data", database_url=None)
    url = settings.resolved_database_url
    if args.database == "postgresql":
        url = await recreate_database(args.postgres_url, BENCH_DATABASE)
    await asyncio.to_thread(migrate, url)
    redis = RedisServer() if args.redis else None
    if redis is not None:
        redis.start()
    port = free_port()
    log = (work / "server.log").open("wb")
    server = serve(
        port=port,
        data_dir=settings.data_dir,
        database_url=url,
        log=log,
        workers=args.workers,
        **({"REDIS_URL": redis.url} if redis is not None else {}),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        await asyncio.to_thread(wait_until_up, server, base)
        async with httpx.AsyncClient(base_url=base, timeout=30) as api:
            headers, sku_id = await merchant_with_sku(api, stock=10**8, password=PASSWORD)
            plentiful = await _offer(api, headers, sku_id, 10**7, 999)
            scarce = await _offer(api, headers, sku_id, args.scarce_units, 5)
        tokens_file = work / "tokens.txt"
        tokens = await make_buyers(url, args.buyers, password=PASSWORD)
        tokens_file.write_text("\n".join(tokens) + "\n")

        trivial = wrk(f"{base}/healthz", args.seconds, args.connections)
        results: dict[str, Any] = {}
        for name, offer_id in (("plentiful", plentiful), ("scarce", scarce)):
            figures = await asyncio.to_thread(_burst, base, args, offer_id, tokens_file, work)
            figures |= await books(url, offer_id)
            figures["orders_per_s_to_trivial"] = round(
                figures["orders_per_s"] / trivial["requests_per_s"], 3
            )
            results[name] = figures
    finally:
        stop(server)
        if redis is not None:
            redis.kill()
        if args.database == "postgresql":
            await drop_database(args.postgres_url, BENCH_DATABASE)
    print(
        json.dumps(
            {
                "benchmark": "flash_sale",
                "database": url.split(":", 1)[0],
                "redis_gate": args.redis,
                "processes": args.workers,
                "buyers": args.buyers,
                "connections": args.connections,
                "seconds": args.seconds,
                "trivial_healthz": {
                    k: trivial[k] for k in ("requests_per_s", "p50_ms", "p99_ms", "socket_errors")
                },
                **results,
            },
            indent=2,
        )
    )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
