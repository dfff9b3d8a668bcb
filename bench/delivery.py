"""Delivery: the route manifests of big live sessions, and stations' scans per second.

Sets up a fresh embedded deployment (a temporary ``ORIGINLIVE_DATA_DIR``, SQLite), written
straight into the migrated database in batches: the villages of five real counties (武功县,
兴平市, 五华区, 西山区, 安宁市) and a network over them (a hub a county, a station for each
of its first twelve townships, a point for each of a station's first four villages), a shop
in 武功县 with a product of three SKUs, and for each ``--orders`` size a live session whose
paid orders (one or two lines each) go to villages, townships and counties at random;
``--shipped`` of them are shipped as a parcel each, routed by ``service.choose_route``.

1. Manifests. For each session, in this process: the time to read and group its manifest
   (``manifests.read_session``, cold then warm) and to make each form of it (the page's
   HTML, the three CSV tables, the PDF on A4 and on 80-mm paper), with their sizes; then over
   HTTP from ``originlive serve``, the whole answer's time for the page, a CSV and the PDFs,
   and the busiest hub's manifest (every shipped parcel starts there) and a station's.
2. Scans. ``--stations`` station accounts (20) at as many stations, each with
   ``--parcels-per-station`` parcels routed through it; one client per station (a keep-alive
   connection, a raw HTTP/1.1 client on uvloop) sends ``POST /api/v1/scans`` one after
   another for ``--scan-seconds``, each with a new ``scan_id``: every parcel ``at_node``, then
   every parcel ``in_transit``. Scans/s, p50/p99/max latency, answers by status, the server's
   CPU; beside it, the bare ASGI app of ``bench/bare.py`` under the same uvicorn: wrk's rate
   on it (``-t2`` and as many connections as stations, as bench/surge.py measures it) and the
   same clients' rate posting to it (the load generator's own ceiling), and the ratio.

``--profile`` runs py-spy (``pip install py-spy``) on the server during the scans and writes
its flame graph (SVG) and the top functions to the folder it names.

    python bench/delivery.py [--orders 5000 50000] [--shipped 0.5] [--stations 20]
                             [--parcels-per-station 1000] [--scan-seconds 10]

Prints one JSON object.
"""

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import bare as bare_app  # noqa: E402
from bench.fanout import _cpu_s, _status_mb  # noqa: E402
from bench.wrkrun import require_wrk, wrk  # noqa: E402
from bench.wsclient import install_uvloop, raise_nofile_limit  # noqa: E402
from sqlalchemy import insert, select  # noqa: E402

from originlive.accounts import security  # noqa: E402
from originlive.accounts.models import AccessToken, Role, TokenKind, User, UserRole  # noqa: E402
from originlive.batching import create_order_writer  # noqa: E402
from originlive.bootstrap import migrate  # noqa: E402
from originlive.catalog.models import Product, ProductStatus, Shop, ShopStatus, Sku  # noqa: E402
from originlive.db import create_engine, create_sessionmaker, utcnow  # noqa: E402
from originlive.live.models import LiveSession, SessionStatus  # noqa: E402
from originlive.logistics import manifests, pdf, printing, service, tracking  # noqa: E402
from originlive.logistics.models import (  # noqa: E402
    DeliveryNode,
    NodeKind,
    NodeLink,
    NodeStaff,
    Parcel,
    ParcelItem,
    ParcelStatus,
    ParcelStop,
    TrackingEvent,
)
from originlive.orders.models import FlashOffer, Order, OrderItem, OrderStatus  # noqa: E402
from originlive.regions import service as regions  # noqa: E402
from originlive.regions.models import Region, RegionLevel  # noqa: E402
from originlive.settings import Settings  # noqa: E402
from originlive.text import shop_name_key  # noqa: E402
from originlive.web.templating import templates  # noqa: E402
from tests.servers import free_port, serve, stop, wait_until_up  # noqa: E402

COUNTIES = ["610431", "610481", "530102", "530112", "530181"]
SHOP_REGION = "610431"
SHOP = "武功徐杨猕猴桃合作社"
TOWNSHIPS_WITH_STATIONS = 12
POINTS_PER_STATION = 4
BATCH = 1000
SKUS = [("5斤 中果", 3990), ("10斤 大果", 6990), ("20斤 礼盒", 12900)]
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
GIVEN = "小大明红华建国丽芳军伟强磊洋勇艳杰娟涛超秀英霞平刚桂兰"


# The deployment


def _name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))


async def _users(session: Any, prefix: str, count: int, roles: list[Role]) -> list[int]:
    password_hash = await security.hash_password("bench-password")
    rows = [
        {
            "email": f"{prefix}{i}@example.com",
            "password_hash": password_hash,
            "display_name": f"{prefix}{i}",
        }
        for i in range(count)
    ]
    made = insert(User).returning(User.id, sort_by_parameter_order=True)
    ids = list((await session.scalars(made, rows)).all())
    await session.execute(
        insert(UserRole), [{"user_id": i, "role": r} for i in ids for r in [Role.BUYER, *roles]]
    )
    return ids


async def _tokens(session: Any, user_ids: list[int]) -> list[str]:
    """A bearer token for each user."""
    secrets = [security.new_token() for _ in user_ids]
    expires = utcnow() + dt.timedelta(days=1)
    await session.execute(
        insert(AccessToken),
        [
            {
                "token_hash": security.token_digest(s),
                "user_id": u,
                "kind": TokenKind.API,
                "expires_at": expires,
            }
            for s, u in zip(secrets, user_ids, strict=True)
        ],
    )
    return secrets


class Network:
    """The nodes written, as the route chooser reads them, and the regions they serve."""

    def __init__(self) -> None:
        self.nodes: list[service.Node] = []
        self.hubs: dict[str, int] = {}
        self.stations: dict[str, int] = {}  # township code -> station id
        self.points: dict[str, int] = {}  # village code -> point id
        self.paths: dict[str, list[str]] = {}
        self._routes: dict[str, list[int]] = {}

    def route(self, region_code: str) -> list[int]:
        if region_code not in self._routes:
            self._routes[region_code] = service.choose_route(
                self.nodes, shop_path=self.paths[SHOP_REGION], buyer_path=self.paths[region_code]
            )
        return self._routes[region_code]


async def _node(
    session: Any, net: Network, kind: NodeKind, region: str, name: str, up: int | None
) -> int:
    node_id = (
        await session.execute(
            insert(DeliveryNode)
            .values(kind=kind, region_code=region, name=name, home_delivery=False, active=True)
            .returning(DeliveryNode.id)
        )
    ).scalar_one()
    if up is not None:
        await session.execute(
            insert(NodeLink).values(downstream_id=node_id, upstream_id=up, transit_minutes=120)
        )
    net.nodes.append(service.Node(node_id, kind, region, up))
    return int(node_id)


async def _network(session: Any) -> tuple[Network, list[str]]:
    """The five counties' villages and a network over them; the destinations orders go to
    (nine in ten a village, the rest a township or the county itself)."""
    net = Network()
    destinations: list[str] = []
    for county in COUNTIES:
        await regions.load_villages(session, county_code=county)
        rows = await session.execute(
            select(Region.code, Region.name, Region.level, Region.path)
            .where(Region.code.startswith(county))
            .order_by(Region.code)
        )
        below: dict[str, list[tuple[str, str]]] = {}
        names = {}
        for code, name, level, path in rows:
            net.paths[code] = [c for c in path.split("/") if c]
            names[code] = name
            if level is not RegionLevel.COUNTY:
                below.setdefault(code[: len(code) - 3] if len(code) == 12 else county, []).append(
                    (code, name)
                )
        hub = await _node(
            session, net, NodeKind.COUNTY_HUB, county, f"{names[county]}物流中心", None
        )
        net.hubs[county] = hub
        townships = below.get(county, [])
        for t_code, t_name in townships[:TOWNSHIPS_WITH_STATIONS]:
            station = await _node(
                session, net, NodeKind.TOWNSHIP_STATION, t_code, f"{t_name}服务站", hub
            )
            net.stations[t_code] = station
            for v_code, v_name in below.get(t_code, [])[:POINTS_PER_STATION]:
                short = v_name.removesuffix("委员会").removesuffix("村民").removesuffix("居民")
                net.points[v_code] = await _node(
                    session, net, NodeKind.VILLAGE_POINT, v_code, f"{short}服务点", station
                )
        villages = [v for t, _ in townships for v, _ in below.get(t, [])]
        destinations += villages * 9 + [t for t, _ in townships] * 2 + [county] * 3
    # The shop's own county's path, for the routes
    shop = await session.scalar(select(Region.path).where(Region.code == SHOP_REGION))
    net.paths[SHOP_REGION] = [c for c in shop.split("/") if c]
    return net, destinations


async def _shop(session: Any, owner: int) -> tuple[int, list[int]]:
    shop_id = (
        await session.execute(
            insert(Shop)
            .values(
                owner_id=owner,
                name=SHOP,
                name_key=shop_name_key(SHOP),
                region_code=SHOP_REGION,
                status=ShopStatus.APPROVED,
            )
            .returning(Shop.id)
        )
    ).scalar_one()
    product_id = (
        await session.execute(
            insert(Product)
            .values(
                shop_id=shop_id,
                title="徐香猕猴桃",
                description="",
                category="水果",
                origin_region_code=SHOP_REGION,
                status=ProductStatus.ACTIVE,
                search_text="徐香猕猴桃",
            )
            .returning(Product.id)
        )
    ).scalar_one()
    made = insert(Sku).returning(Sku.id, sort_by_parameter_order=True)
    rows = [
        {"product_id": product_id, "name": n, "price_cents": p, "stock": 10**6} for n, p in SKUS
    ]
    return int(shop_id), list((await session.scalars(made, rows)).all())


def _order_row(
    rng: random.Random,
    n: int,
    buyer: int,
    shop_id: int,
    region: str,
    status: OrderStatus,
    cents: int,
    now: dt.datetime,
) -> dict[str, Any]:
    return {
        "buyer_id": buyer,
        "shop_id": shop_id,
        "status": status,
        "currency": "CNY",
        "items_cents": cents,
        "shipping_cents": 0,
        "total_cents": cents,
        "refunded_cents": 0,
        "ship_name": _name(rng),
        "ship_phone": f"13{rng.randrange(10**9):09d}",
        "ship_region_code": region,
        "ship_detail": f"{rng.randint(1, 12)}组 {rng.randint(1, 80)}号",
        "idempotency_key": f"bench-{n}",
        "request_hash": "0" * 64,
        "created_at": now,
        "expires_at": now,
        "updated_at": now,
    }


async def _write_orders(
    session: Any,
    rng: random.Random,
    net: Network,
    *,
    orders: list[dict[str, Any]],
    lines: list[list[dict[str, Any]]],
    shipped: list[bool],
    start_code: int,
    actor: int,
    now: dt.datetime,
) -> None:
    """Orders with their lines, and a parcel (routed, with its first event) for each shipped
    one, in statements of ``BATCH`` rows."""
    code = start_code
    for begin in range(0, len(orders), BATCH):
        chunk = orders[begin : begin + BATCH]
        made = insert(Order).returning(Order.id, sort_by_parameter_order=True)
        ids = list((await session.scalars(made, chunk)).all())
        item_rows = [
            line | {"order_id": i}
            for i, ls in zip(ids, lines[begin : begin + BATCH], strict=True)
            for line in ls
        ]
        made_items = insert(OrderItem).returning(
            OrderItem.id, OrderItem.order_id, OrderItem.quantity, sort_by_parameter_order=True
        )
        items = (await session.execute(made_items, item_rows)).all()
        by_order: dict[int, list[tuple[int, int]]] = {}
        for item_id, order_id, quantity in items:
            by_order.setdefault(order_id, []).append((item_id, quantity))
        parcels, routes = [], []
        for i, order, ship in zip(ids, chunk, shipped[begin : begin + BATCH], strict=True):
            if not ship:
                continue
            route = net.route(order["ship_region_code"])
            parcels.append(
                {
                    "code": f"OL{code:010d}",
                    "order_id": i,
                    "shop_id": order["shop_id"],
                    "region_code": order["ship_region_code"],
                    "destination_id": route[-1],
                    "weight_grams": rng.choice((None, rng.randint(500, 12000))),
                    "status": ParcelStatus.PENDING,
                    "status_at": now,
                    "node_id": route[0],
                    "pickup_failures": 0,
                    "created_at": now,
                }
            )
            routes.append((i, route))
            code += 1
        if not parcels:
            continue
        made_parcels = insert(Parcel).returning(Parcel.id, sort_by_parameter_order=True)
        parcel_ids = list((await session.scalars(made_parcels, parcels)).all())
        await session.execute(
            insert(ParcelStop),
            [
                {"parcel_id": p, "seq": s, "node_id": node}
                for p, (_o, route) in zip(parcel_ids, routes, strict=True)
                for s, node in enumerate(route)
            ],
        )
        await session.execute(
            insert(ParcelItem),
            [
                {"parcel_id": p, "order_item_id": item, "quantity": q}
                for p, (o, _r) in zip(parcel_ids, routes, strict=True)
                for item, q in by_order[o]
            ],
        )
        await session.execute(
            insert(TrackingEvent),
            [
                {
                    "parcel_id": p,
                    "scan_id": "shipped",
                    "status": ParcelStatus.PENDING,
                    "node_id": route[0],
                    "happened_at": now,
                    "recorded_at": now,
                    "source": "system",
                    "actor_id": actor,
                    "off_route": False,
                }
                for p, (_o, route) in zip(parcel_ids, routes, strict=True)
            ],
        )


async def _session_with_orders(
    session: Any,
    rng: random.Random,
    net: Network,
    destinations: list[str],
    *,
    size: int,
    shipped_share: float,
    shop_id: int,
    skus: list[int],
    buyers: list[int],
    merchant: int,
    first_order: int,
    first_code: int,
) -> int:
    """A live session (ended) with three offers and ``size`` paid orders of them."""
    live_id = (
        await session.execute(
            insert(LiveSession)
            .values(
                shop_id=shop_id,
                anchor_id=merchant,
                title=f"猕猴桃采摘直播 {size} 单",
                stream_key=f"bench-key-{size}",
                status=SessionStatus.ENDED,
            )
            .returning(LiveSession.id)
        )
    ).scalar_one()
    now = utcnow()
    offers = []
    for sku_id, (name, price) in zip(skus, SKUS, strict=True):
        offers.append(
            (
                await session.execute(
                    insert(FlashOffer)
                    .values(
                        shop_id=shop_id,
                        sku_id=sku_id,
                        live_session_id=live_id,
                        title=f"徐香猕猴桃 {name}",
                        price_cents=price,
                        currency="CNY",
                        quantity=10**6,
                        remaining=10**6 - size * 2,
                        per_buyer_limit=999,
                        created_at=now,
                    )
                    .returning(FlashOffer.id)
                )
            ).scalar_one()
        )
    orders, lines, shipped = [], [], []
    for n in range(size):
        picked = rng.sample(range(len(SKUS)), rng.choice((1, 1, 2)))
        ls = [
            {
                "sku_id": skus[k],
                "offer_id": offers[k],
                "title": f"徐香猕猴桃 {SKUS[k][0]}",
                "unit_price_cents": SKUS[k][1],
                "quantity": rng.choice((1, 1, 2, 3)),
            }
            for k in picked
        ]
        cents = sum(line["unit_price_cents"] * line["quantity"] for line in ls)
        ship = rng.random() < shipped_share
        status = OrderStatus.SHIPPED if ship else OrderStatus.PAID
        if not ship and rng.random() < 0.01:
            status = OrderStatus.REFUND_REQUESTED
        region = rng.choice(destinations)
        buyer = buyers[n % len(buyers)]
        orders.append(_order_row(rng, first_order + n, buyer, shop_id, region, status, cents, now))
        lines.append(ls)
        shipped.append(ship)
    await _write_orders(
        session,
        rng,
        net,
        orders=orders,
        lines=lines,
        shipped=shipped,
        start_code=first_code,
        actor=merchant,
        now=now,
    )
    return int(live_id)


async def _scan_network(
    session: Any,
    rng: random.Random,
    net: Network,
    *,
    stations: int,
    per_station: int,
    shop_id: int,
    sku: int,
    buyers: list[int],
    merchant: int,
    first_order: int,
    first_code: int,
) -> tuple[list[tuple[str, list[str]]], list[int]]:
    """``stations`` station accounts at as many stations (a token each) and, for each,
    ``per_station`` shipped parcels to a point below it. Returns (token, labels) a station,
    and the stations' ids."""
    chosen = [t for t in net.stations if any(v[:9] == t for v in net.points)][:stations]
    if len(chosen) < stations:
        raise SystemExit(f"only {len(chosen)} stations with points; ask for fewer --stations")
    staff = await _users(session, "station", stations, [Role.STATION])
    await session.execute(
        insert(NodeStaff),
        [{"user_id": u, "node_id": net.stations[t]} for u, t in zip(staff, chosen, strict=True)],
    )
    tokens = await _tokens(session, staff)
    now = utcnow()
    orders, lines, shipped, labels = [], [], [], []
    code = first_code
    for t in chosen:
        villages = [v for v in net.points if v[:9] == t]
        codes = []
        for _ in range(per_station):
            n = first_order + len(orders)
            region = rng.choice(villages)
            orders.append(
                _order_row(
                    rng, n, buyers[n % len(buyers)], shop_id, region, OrderStatus.SHIPPED, 3990, now
                )
            )
            lines.append(
                [
                    {
                        "sku_id": sku,
                        "offer_id": None,
                        "title": "徐香猕猴桃 5斤 中果",
                        "unit_price_cents": 3990,
                        "quantity": 1,
                    }
                ]
            )
            shipped.append(True)
            codes.append(f"OL{code:010d}")
            code += 1
        labels.append(codes)
    await _write_orders(
        session,
        rng,
        net,
        orders=orders,
        lines=lines,
        shipped=shipped,
        start_code=first_code,
        actor=merchant,
        now=now,
    )
    return list(zip(tokens, labels, strict=True)), [net.stations[t] for t in chosen]


async def deploy(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Everything the runs need, written in one transaction; what they need to know of it."""
    rng = random.Random(17)
    engine = create_engine(url)
    started = time.perf_counter()
    try:
        async with create_sessionmaker(engine)() as session:
            net, destinations = await _network(session)
            (merchant,) = await _users(session, "merchant", 1, [Role.MERCHANT])
            (operator,) = await _users(session, "operator", 1, [Role.OPERATOR])
            buyers = await _users(session, "buyer", 2000, [])
            shop_id, skus = await _shop(session, merchant)
            sessions = {}
            first_order, first_code = 0, 1
            for size in args.orders:
                sessions[size] = await _session_with_orders(
                    session,
                    rng,
                    net,
                    destinations,
                    size=size,
                    shipped_share=args.shipped,
                    shop_id=shop_id,
                    skus=skus,
                    buyers=buyers,
                    merchant=merchant,
                    first_order=first_order,
                    first_code=first_code,
                )
                first_order += size
                first_code += size
            scanners, scan_nodes = await _scan_network(
                session,
                rng,
                net,
                stations=args.stations,
                per_station=args.parcels_per_station,
                shop_id=shop_id,
                sku=skus[0],
                buyers=buyers,
                merchant=merchant,
                first_order=first_order,
                first_code=first_code,
            )
            merchant_token, operator_token = await _tokens(session, [merchant, operator])
            await session.commit()
    finally:
        await engine.dispose()
    busiest = net.hubs[SHOP_REGION]
    a_station = next(iter(net.stations.values()))
    return {
        "sessions": sessions,
        "shop_id": shop_id,
        "scanners": scanners,
        "scan_nodes": scan_nodes,
        "merchant_token": merchant_token,
        "operator_token": operator_token,
        "hub": busiest,
        "station": a_station,
        "nodes": len(net.nodes),
        "seconds": round(time.perf_counter() - started, 1),
    }


# 1. Manifests


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return round(time.perf_counter() - start, 3), result


async def manifests_in_process(url: str, sessions: dict[int, int]) -> dict[str, Any]:
    """For each session: reading and grouping its manifest, cold then twice warm; then each
    form it is made into, with its size."""
    engine = create_engine(url)
    template = templates.env.get_template("logistics/manifest/session.html")
    font_s, font = _timed(lambda: pdf.font_name(None))
    results: dict[str, Any] = {"font_registration_s": font_s}
    try:
        for size, live_id in sessions.items():
            reads = []
            manifest = None
            for _ in range(3):
                async with create_sessionmaker(engine)() as session:
                    start = time.perf_counter()
                    manifest = await manifests.read_session(
                        session, session_id=live_id, title=f"{size}", shop_name="bench"
                    )
                    reads.append(round(time.perf_counter() - start, 3))
            assert manifest is not None
            context = {
                "manifest": manifest,
                "live": {"id": live_id, "title": str(size)},
                "shop": None,
                "paper": "a4",
                "narrow": False,
                "params": {"paper": "a4"},
                "lang": "zh-CN",
                "language": "zh_CN",
                "user": None,
                "statuses": {s: s.value for s in ParcelStatus},
                "kinds": {k: k.value for k in NodeKind},
                "kg": printing.kilograms,
                "items_text": printing.items_text,
            }
            forms: dict[str, Any] = {}
            html_s, html = _timed(lambda c=context: template.render(c))
            forms["html_a4"] = {"s": html_s, "kb": len(html.encode()) // 1024}
            for part in ("picks", "orders", "parcels"):
                s, body = _timed(lambda p=part, m=manifest: printing.session_csv(m, p))
                forms[f"csv_{part}"] = {"s": s, "kb": len(body) // 1024}
            for paper in ("a4", "80mm"):
                s, body = _timed(
                    lambda p=paper, m=manifest: printing.session_pdf(m, paper=p, font=font)
                )
                forms[f"pdf_{paper}"] = {"s": s, "kb": len(body) // 1024}
            results[f"{size}_orders"] = {
                "read_and_group_s": reads,
                "to_pack": manifest.counts.to_pack,
                "parcels": manifest.counts.parcels,
                "node_manifests": len(manifest.manifests),
                "forms": forms,
            }
    finally:
        await engine.dispose()
    return results


def manifests_over_http(base: str, dep: dict[str, Any]) -> dict[str, Any]:
    """Whole answers from the server: the page, CSV and PDFs of each session, and the
    busiest hub's and a station's manifest."""
    merchant = {"Authorization": f"Bearer {dep['merchant_token']}", "Accept-Language": "zh-CN"}
    operator = {"Authorization": f"Bearer {dep['operator_token']}", "Accept-Language": "zh-CN"}
    results: dict[str, Any] = {}
    with httpx.Client(base_url=base, timeout=300) as client:

        def get(path: str, headers: dict[str, str], **params: str) -> dict[str, Any]:
            start = time.perf_counter()
            answer = client.get(path, params=params, headers=headers)
            seconds = round(time.perf_counter() - start, 3)
            assert answer.status_code == 200, (path, params, answer.status_code, answer.text[:300])
            return {"s": seconds, "kb": len(answer.content) // 1024}

        for size, live_id in dep["sessions"].items():
            url = f"/console/live/{live_id}/manifest"
            results[f"session_{size}_orders"] = {
                "page_a4": get(url, merchant),
                "page_80mm": get(url, merchant, paper="80mm"),
                "csv_orders": get(url, merchant, format="csv", part="orders"),
                "csv_parcels": get(url, merchant, format="csv", part="parcels"),
                "pdf_a4": get(url, merchant, format="pdf"),
                "pdf_80mm": get(url, merchant, format="pdf", paper="80mm"),
            }
        for name in ("hub", "station"):
            url = f"/delivery/nodes/{dep[name]}/manifest"
            results[f"{name}_manifest"] = {
                "page": get(url, operator),
                "csv": get(url, operator, format="csv"),
                "pdf_a4": get(url, operator, format="pdf"),
            }
    return results


# 2. Scans


class Poster:
    """One keep-alive HTTP/1.1 connection that posts JSON and reads the answer."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port = host, port
        self.head = (
            f"Host: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\n"
        )
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(
            f"POST {path} HTTP/1.1\r\n{self.head}Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
        status = int(head.split(" ", 2)[1])
        fields = dict(line.split(":", 1) for line in head.split("\r\n")[1:] if ":" in line)
        length = int(fields["content-length"])
        answer = await self.reader.readexactly(length)
        if "connection: close" in head:
            self.close()
        return status, answer

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _clients(
    port: int, scanners: list[tuple[str, list[str]]], seconds: float, path: str
) -> dict[str, Any]:
    """One client a station, each posting scans one after another until the time is up."""
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    errors: Counter[str] = Counter()

    async def station(n: int, token: str, labels: list[str], deadline: float) -> None:
        poster = Poster("127.0.0.1", port, token)
        sent = 0
        try:
            for status in ("at_node", "in_transit"):
                for label in labels:
                    if time.monotonic() >= deadline:
                        return
                    sent += 1
                    body = json.dumps(
                        {
                            "scan_id": f"bench-{n}-{sent}",
                            "parcel_code": label,
                            "status": status,
                            "happened_at": dt.datetime.now(dt.UTC).isoformat(),
                        }
                    ).encode()
                    start = time.perf_counter()
                    try:
                        code, _answer = await poster.post(path, body)
                    except (OSError, asyncio.IncompleteReadError) as exc:
                        errors[type(exc).__name__] += 1
                        poster.close()
                        continue
                    latencies.append(time.perf_counter() - start)
                    statuses[str(code)] += 1
        finally:
            poster.close()

    start = time.monotonic()
    deadline = start + seconds
    await asyncio.gather(*(station(n, t, ls, deadline) for n, (t, ls) in enumerate(scanners)))
    window = time.monotonic() - start
    ordered = sorted(latencies)

    def ms(q: float) -> float | None:
        return (
            round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)
            if ordered
            else None
        )

    return {
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / window, 1),
        "p50_ms": ms(0.5),
        "p99_ms": ms(0.99),
        "max_ms": ms(1.0),
        "mean_ms": round(1000 * statistics.fmean(ordered), 1) if ordered else None,
        "statuses": dict(statuses),
        "connection_errors": dict(errors),
        "window_s": round(window, 1),
    }


def _py_spy(pid: int, seconds: float, folder: Path) -> subprocess.Popen[bytes] | None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        print("py-spy is not installed: pip install py-spy", file=sys.stderr)
        return None
    folder.mkdir(parents=True, exist_ok=True)
    command = [spy, "record", "-p", str(pid), "-d", str(int(seconds)), "-r", str(PROFILE_RATE)]
    command += ["--threads", "--nonblocking", "-f", "raw", "-o", str(folder / "scans.txt")]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


PROFILE_RATE = 250  # samples a second
# Where the event loop's time goes in a scan, by a frame on the stack (py-spy's names). The
# ORM's queries run in greenlets, whose stacks py-spy shows apart from the request's.
BUCKETS = {
    "the writer's rounds (BatchWriter._round)": "BatchWriter._round (",
    "  of which tracking.scan_parcel": "scan_parcel (",
    "auth as coroutines: token, user, roles, node (logistics.deps.get_staff)": "get_staff (",
    "FastAPI: body read and validated": "request_body_to_args (",
    "FastAPI: response serialised": "serialize_response (",
    "uvicorn's HTTP protocol": "HttpToolsProtocol.",
}
GREENLETS = "the request session's ORM work in greenlets (lookups, commit, close)"


def _top(raw: Path, seconds: float, limit: int = 12) -> dict[str, Any]:
    """From py-spy's raw stacks (``--threads``): how busy each thread was, and what the event
    loop (the main thread) spent its busy time on: by part of a scan's way, and by the
    package whose code it was running."""
    threads: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    buckets: Counter[str] = Counter()
    main_total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        head, _, rest = stack.partition(";")
        name = head.partition(": ")[2] or "unnamed"
        aiosqlite = "_connection_worker_thread" in name
        threads["aiosqlite's connections" if aiosqlite else name.rstrip("0123456789-_")] += n
        if name != "MainThread":
            continue
        main_total += n
        frames = rest.split(";")
        leaf = frames[-1]
        packages[leaf.partition("(")[2].split("/")[0].split(".py")[0] or "(native)"] += n
        if not any("(originlive/cli.py" in f for f in frames):
            buckets[GREENLETS] += n
        for bucket, part in BUCKETS.items():
            if any(part in f for f in frames):
                buckets[bucket] += n
    possible = PROFILE_RATE * seconds
    share = max(1, main_total)
    return {
        "thread_busy_share": {k: round(v / possible, 2) for k, v in threads.most_common(6)},
        "event_loop_busy_share": round(main_total / possible, 2),
        "event_loop_time_by_part": {k: round(buckets[k] / share, 3) for k in [GREENLETS, *BUCKETS]},
        "event_loop_time_by_package": {
            k: round(v / share, 3) for k, v in packages.most_common(limit)
        },
    }


async def writer_only(url: str, dep: dict[str, Any], seconds: float) -> dict[str, Any]:
    """The scans' own work, without HTTP: one caller a station in this process, each sending
    ``tracking.scan_parcel`` to the order writer one after another (``at_node``, new scan
    ids), as the API's route does after authenticating. The ceiling of today's scan rule."""
    writer = create_order_writer(url)
    latencies: list[float] = []

    async def station(n: int, labels: list[str], node_id: int, deadline: float) -> None:
        for i, label in enumerate(labels):
            if time.monotonic() >= deadline:
                return
            now = utcnow()
            scan = tracking.Scan(
                scan_id=f"writer-{n}-{i}", status=ParcelStatus.AT_NODE, happened_at=now
            )
            start = time.perf_counter()
            await writer.run(
                tracking.scan_parcel,
                code=label,
                scan=scan,
                node_id=node_id,
                actor_id=None,
                now=now,
            )
            latencies.append(time.perf_counter() - start)

    start = time.monotonic()
    try:
        await asyncio.gather(
            *(
                station(n, labels, node, start + seconds)
                for n, ((_token, labels), node) in enumerate(
                    zip(dep["scanners"], dep["scan_nodes"], strict=True)
                )
            )
        )
    finally:
        await writer.close()
    window = time.monotonic() - start
    ordered = sorted(latencies)
    return {
        "scans_per_s": round(len(ordered) / window, 1),
        "p50_ms": round(1000 * ordered[len(ordered) // 2], 1),
        "p99_ms": round(1000 * ordered[int(0.99 * len(ordered))], 1),
    }


def scans(
    args: argparse.Namespace, port: int, bare_port: int, dep: dict[str, Any], pid: int
) -> dict[str, Any]:
    """The scans' figures beside the bare app's."""
    path = "/api/v1/scans"
    connections = len(dep["scanners"])
    bare = wrk(f"http://127.0.0.1:{bare_port}/", args.wrk_seconds, connections)
    fake = [(t, ls[: args.parcels_per_station]) for t, ls in dep["scanners"]]
    ceiling = asyncio.run(_clients(bare_port, fake, 3, path))
    spy = _py_spy(pid, args.scan_seconds, args.profile) if args.profile else None
    cpu0 = _cpu_s(pid)
    figures = asyncio.run(_clients(port, dep["scanners"], args.scan_seconds, path))
    figures["server_cpu_per_s"] = round((_cpu_s(pid) - cpu0) / figures["window_s"], 2)
    if spy is not None:
        spy.wait()
        raw = args.profile / "scans.txt"
        if raw.exists():
            figures["profile"] = _top(raw, args.scan_seconds)
    return {
        "stations": connections,
        "scans": figures,
        "bare_asgi_wrk": {
            k: bare[k] for k in ("requests_per_s", "p50_ms", "p99_ms", "socket_errors")
        }
        | {"wrk": f"-t2 -c{connections} -d{args.wrk_seconds}s"},
        "generator_ceiling_posting_to_bare": {
            k: ceiling[k] for k in ("requests_per_s", "p50_ms", "p99_ms")
        },
        "scans_to_bare_ratio": round(figures["requests_per_s"] / bare["requests_per_s"], 3),
    }


# Main


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, nargs="+", default=[5000, 50000])
    parser.add_argument("--shipped", type=float, default=0.5, help="share shipped as parcels")
    parser.add_argument("--stations", type=int, default=20)
    parser.add_argument("--parcels-per-station", type=int, default=1000)
    parser.add_argument("--scan-seconds", type=float, default=10.0)
    parser.add_argument("--wrk-seconds", type=int, default=10)
    parser.add_argument("--writer-seconds", type=float, default=3.0, help="writer alone")
    parser.add_argument("--profile", type=Path, help="py-spy the server's scans into here")
    parser.add_argument("--skip-manifests", action="store_true")
    parser.add_argument("--skip-scans", action="store_true")
    return parser


def main() -> None:
    args = _parser().parse_args()
    require_wrk()
    raise_nofile_limit()
    install_uvloop()
    data_dir = Path(tempfile.mkdtemp(prefix="originlive-delivery-"))
    url = Settings(data_dir=data_dir).resolved_database_url
    migrate(url)
    dep = asyncio.run(deploy(url, args))
    result: dict[str, Any] = {
        "benchmark": "delivery",
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "database": "sqlite (embedded)",
        "orders": args.orders,
        "shipped_share": args.shipped,
        "nodes": dep["nodes"],
        "setup_s": dep["seconds"],
    }
    if not args.skip_manifests:
        result["manifests_in_process"] = asyncio.run(manifests_in_process(url, dep["sessions"]))
    if not args.skip_scans:
        result["scans_writer_only"] = asyncio.run(writer_only(url, dep, args.writer_seconds))
    port, bare_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = data_dir / "server.log"
    with log_path.open("wb") as log:
        server = serve(
            port=port, data_dir=data_dir, database_url=url, log=log, RTMP_PORT=str(free_port())
        )
        bare = bare_app.start(bare_port, log)
    try:
        wait_until_up(server, base)
        wait_until_up(bare, f"http://127.0.0.1:{bare_port}")
        if not args.skip_manifests:
            result["manifests_over_http"] = manifests_over_http(base, dep)
        if not args.skip_scans:
            result |= scans(args, port, bare_port, dep, server.pid)
        result["server_peak_rss_mb"] = _status_mb(server.pid, "VmHWM")
        result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        errors = [
            line[:200]
            for line in log_path.read_text(errors="replace").splitlines()
            if line.startswith(("ERROR", "CRITICAL"))
        ]
        result["server_log_errors"] = dict(Counter(errors).most_common(5))
    finally:
        stop(server)
        stop(bare)
        shutil.rmtree(data_dir, ignore_errors=True)
    print(json.dumps(result, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
