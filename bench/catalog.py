"""Catalog read throughput: search, region filter, product page, region children.

Starts ``originlive serve`` (one process, embedded SQLite unless ORIGINLIVE_DATABASE_URL is
set) on a fresh data directory with the demo data and ``--products`` more products spread over
Yunnan's counties, then loads each endpoint with wrk (Debian package ``wrk``) from a separate
process, beside a trivial endpoint (/healthz) measured the same way, so the ratio is known.
Prints one JSON object.

    python bench/catalog.py [--products 2000] [--seconds 8] [--connections 32]
"""

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.wrkrun import require_wrk, wrk  # noqa: E402
from sqlalchemy import select  # noqa: E402

from originlive.accounts import service as accounts  # noqa: E402
from originlive.bootstrap import migrate  # noqa: E402
from originlive.catalog import schemas  # noqa: E402
from originlive.catalog import service as catalog  # noqa: E402
from originlive.db import create_engine, create_sessionmaker  # noqa: E402
from originlive.demo import seed_session  # noqa: E402
from originlive.regions.models import Region, RegionLevel  # noqa: E402
from originlive.settings import Settings  # noqa: E402
from tests.servers import free_port, stop, wait_until_up  # noqa: E402

FRUITS = ["猕猴桃", "苹果", "核桃", "普洱茶", "鲜花饼", "野生菌", "咖啡豆", "多肉", "石榴", "芒果"]


async def _fill(url: str, products: int) -> int:
    """Demo data plus ``products`` products in shops across Yunnan; returns a product id."""
    engine = create_engine(url)
    async with create_sessionmaker(engine)() as session:
        await seed_session(session)
        counties = list(
            await session.scalars(
                select(Region.code).where(
                    Region.level == RegionLevel.COUNTY, Region.code.startswith("53")
                )
            )
        )
        owner = await accounts.create(
            session, email="bench@example.com", password="bench-password", display_name="bench"
        )
        shops = []
        for i, code in enumerate(counties[:20]):
            data = schemas.ShopCreate(name=f"云南特产店 {i}", region_code=code)
            shops.append(await catalog.open_shop(session, owner=owner, data=data, approve=True))
        last = 0
        for i in range(products):
            shop = shops[i % len(shops)]
            data = schemas.ProductCreate(
                title=f"{FRUITS[i % len(FRUITS)]} 礼盒 {i}",
                description="产地直发，现摘现发。" * 5,
                category="农产品",
                origin_region_code=counties[i % len(counties)],
                skus=[schemas.SkuCreate(name="标准装", price_cents=1990 + i, stock=100)],
            )
            last = (await catalog.create_product(session, shop=shop, actor=owner, data=data)).id
        await session.commit()
    await engine.dispose()
    return last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--products", type=int, default=2000)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    require_wrk()

    data_dir = Path(tempfile.mkdtemp(prefix="originlive-bench-"))
    settings = Settings(data_dir=data_dir)
    url = settings.resolved_database_url
    migrate(url)
    product_id = asyncio.run(_fill(url, args.products))

    port = free_port()
    env = os.environ | {"ORIGINLIVE_DATA_DIR": str(data_dir), "ORIGINLIVE_LOG_LEVEL": "warning"}
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("originlive")), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    endpoints = {
        "trivial (/healthz)": "/healthz",
        "search q=猕猴桃": "/api/v1/products?q=%E7%8C%95%E7%8C%B4%E6%A1%83",
        "search region=云南 (subtree)": "/api/v1/products?region=530000",
        "product by id": f"/api/v1/products/{product_id}",
        "region children": "/api/v1/regions?parent=530100",
    }
    try:
        wait_until_up(server, base)
        results = {
            name: wrk(base + path, args.seconds, args.connections)
            for name, path in endpoints.items()
        }
    finally:
        stop(server)
        shutil.rmtree(data_dir, ignore_errors=True)
    trivial = results["trivial (/healthz)"]["requests_per_s"]
    for figures in results.values():
        figures["ratio_to_trivial"] = round(figures["requests_per_s"] / trivial, 3)
    print(
        json.dumps(
            {
                "benchmark": "catalog",
                "database": url.split(":", 1)[0],
                "products": args.products + 6,
                "connections": args.connections,
                "seconds": args.seconds,
                "results": results,
            },
            ensure_ascii=False,
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
