"""Demo data that tells the story: four real places of origin, their shops and their goods.

Townships and villages are added the way an operator would (the shipped data stops at counties);
their codes are the National Bureau of Statistics' own. Every demo account has the password
``DEMO_PASSWORD``. Seeding is idempotent: a database that has the demo operator is left alone.
"""

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.accounts import service as accounts
from originlive.accounts.models import Role, User
from originlive.affiliates import lineup
from originlive.affiliates import schemas as affiliates_schemas
from originlive.affiliates import service as affiliates
from originlive.batching import OrderWriter, create_order_writer
from originlive.catalog import schemas
from originlive.catalog import service as catalog
from originlive.db import create_engine, create_sessionmaker, utcnow
from originlive.ledger import service as ledger
from originlive.ledger.accounts import Holder, account
from originlive.ledger.payouts import sandbox as payout_bank
from originlive.ledger.payouts import service as payouts
from originlive.ledger.settlement import service as settlement
from originlive.live import service as live
from originlive.live.schemas import LiveSessionCreate
from originlive.logistics import schemas as delivery
from originlive.logistics import service as logistics
from originlive.logistics import tracking
from originlive.logistics.collection import schemas as collection_schemas
from originlive.logistics.collection import service as collection
from originlive.logistics.collection.models import CollectionGrower, Grade
from originlive.logistics.models import NodeKind, Parcel, ParcelStatus
from originlive.orders import bulk, placing, stock
from originlive.orders import service as orders
from originlive.payments import records as payments
from originlive.payments import sandbox
from originlive.regions import service as regions
from originlive.settings import Settings

DEMO_PASSWORD = "originlive-demo"
OPERATOR_EMAIL = "operator@example.com"
BUYER_EMAIL = "buyer@example.com"
ANCHOR_EMAIL = "anchor.xinnong@example.com"
T = TypeVar("T")

# (code, name, parent code): the township or village each demo shop sits in.
PLACES = [
    ("530114003", "斗南街道", "530114"),  # Dounan, Chenggong, Kunming: China's flower market
    ("610431102", "武功镇", "610431"),  # Wugong County, Shaanxi
    ("610431102202", "徐杨村", "610431102"),
    ("500240105", "黄水镇", "500240"),  # Shizhu, in the mountains of eastern Chongqing
    ("441900119", "长安镇", "441900"),  # Chang'an, Dongguan: moulds and hardware
]


@dataclass
class DemoShop:
    owner_email: str
    owner_name: str
    shop: dict[str, Any]
    products: list[dict[str, Any]] = field(default_factory=list)


def _day(month: int, day: int, year: int = 2026) -> str:
    return dt.date(year, month, day).isoformat()


SHOPS = [
    DemoShop(
        "dounan@example.com",
        "李春花",
        {
            "name": "斗南春花多肉园",
            "region_code": "530114003",
            "description": (
                "滇池边的多肉大棚，三十亩，四百多个品种。昆明四季如春，多肉颜色正、根系壮。\n"
                "Succulent greenhouses by Dianchi Lake, Kunming: 400 varieties, grown in the open "
                "light of the Yunnan plateau."
            ),
            "contact_name": "李春花",
            "contact_phone": "13888000001",
        },
        [
            {
                "title": "多肉组合盆栽 六株拼盆",
                "category": "花卉绿植",
                "origin_region_code": "530114003",
                "description": "六个品种随机搭配，带土球发货，附养护卡。Six succulents, "
                "shipped with their root balls and a care card.",
                "skus": [
                    {"name": "六株 不带盆", "price_cents": 2990, "stock": 1200},
                    {"name": "六株 带陶盆", "price_cents": 4990, "stock": 400},
                ],
                "provenance": [
                    {
                        "batch": "DN-2611-A",
                        "kind": "production",
                        "date": _day(5, 20),
                        "place": "斗南 3号大棚 扦插育苗",
                        "place_region_code": "530114003",
                        "note": "叶插繁殖，露天炼苗六个月。",
                    },
                    {
                        "batch": "DN-2611-A",
                        "kind": "inspection",
                        "date": _day(11, 10),
                        "place": "昆明市植物检疫站",
                        "note": "植物检疫证书 No. 5301-2611-0087",
                    },
                ],
            },
            {
                "title": "玉露 冰灯 单头",
                "category": "花卉绿植",
                "origin_region_code": "530114003",
                "description": "通透的窗面，四厘米单头。Haworthia cooperi, 4 cm heads.",
                "skus": [{"name": "单头 4cm", "price_cents": 1590, "stock": 800}],
                "provenance": [
                    {
                        "batch": "DN-2610-Y",
                        "kind": "production",
                        "date": _day(3, 2),
                        "place": "斗南 7号遮阳棚",
                        "place_region_code": "530114003",
                    }
                ],
            },
        ],
    ),
    DemoShop(
        "wugong@example.com",
        "徐建国",
        {
            "name": "武功徐杨猕猴桃合作社",
            "region_code": "610431102202",
            "description": (
                "徐杨村四十二户果农的合作社，关中平原，渭河北岸。树上自然熟才摘。\n"
                "A co-operative of 42 orchard families on the Guanzhong plain, north of the Wei."
            ),
            "contact_name": "徐建国",
            "contact_phone": "13991000002",
        },
        [
            {
                "title": "徐香猕猴桃 5斤装",
                "category": "水果",
                "origin_region_code": "610431102202",
                "description": "徐香品种，单果90-120克，干物质≥16%。Xuxiang kiwifruit, "
                "picked ripe, 90-120 g each.",
                "skus": [
                    {"name": "5斤 中果", "price_cents": 3990, "stock": 3000},
                    {"name": "10斤 大果", "price_cents": 6990, "stock": 1500},
                ],
                "provenance": [
                    {
                        "batch": "XY-2026-10",
                        "kind": "harvest",
                        "date": _day(10, 8),
                        "place": "徐杨村 东坡果园",
                        "place_region_code": "610431102202",
                        "note": "人工采摘，当天入冷库。",
                    },
                    {
                        "batch": "XY-2026-10",
                        "kind": "inspection",
                        "date": _day(10, 12),
                        "place": "武功县农产品质量检测站",
                        "place_region_code": "610431",
                        "note": "干物质 16.8%，农残未检出。",
                    },
                    {
                        "batch": "XY-2026-10",
                        "kind": "processing",
                        "date": _day(10, 9),
                        "place": "武功镇 合作社冷库",
                        "place_region_code": "610431102",
                        "note": "0 ℃ 气调贮藏。",
                    },
                ],
            }
        ],
    ),
    DemoShop(
        "huangshui@example.com",
        "谭大山",
        {
            "name": "黄水山里火锅底料坊",
            "region_code": "500240105",
            "description": (
                "石柱黄水镇海拔一千五百米，本地牛油、石柱红辣椒，柴火慢炒八小时。\n"
                "Hot-pot base from the Shizhu mountains: local beef tallow and Shizhu red chillies."
            ),
            "contact_name": "谭大山",
            "contact_phone": "13709000003",
        },
        [
            {
                "title": "手工牛油火锅底料 500克",
                "category": "调味品",
                "origin_region_code": "500240105",
                "description": "重庆老火锅味，中辣。Beef-tallow hot-pot base, medium hot.",
                "skus": [
                    {"name": "中辣 500克", "price_cents": 2990, "stock": 2000},
                    {"name": "特辣 500克", "price_cents": 2990, "stock": 1000},
                    {"name": "中辣 500克×4", "price_cents": 9990, "stock": 500},
                ],
                "provenance": [
                    {
                        "batch": "HS-261102",
                        "kind": "production",
                        "date": _day(11, 2),
                        "place": "黄水镇 底料坊 2号锅",
                        "place_region_code": "500240105",
                        "note": "食品生产许可证 SC10350024000123",
                    }
                ],
            },
            {
                "title": "石柱红 干辣椒 1斤",
                "category": "农副产品",
                "origin_region_code": "500240",
                "description": "石柱红辣椒，晒干不熏。Sun-dried Shizhu red chillies.",
                "skus": [{"name": "1斤", "price_cents": 2590, "stock": 600}],
                "provenance": [
                    {
                        "batch": "SZH-2026-08",
                        "kind": "harvest",
                        "date": _day(8, 25),
                        "place": "石柱县 临溪镇 辣椒基地",
                        "place_region_code": "500240",
                    }
                ],
            },
        ],
    ),
    DemoShop(
        "changan@example.com",
        "陈志强",
        {
            "name": "长安精工模具厂",
            "region_code": "441900119",
            "description": (
                "东莞长安镇的注塑模具厂，二十台CNC、五台慢走丝，接小批量定制。\n"
                "An injection-mould shop in Chang'an, Dongguan: 20 CNC machines, "
                "small runs welcome."
            ),
            "contact_name": "陈志强",
            "contact_phone": "13602000004",
        },
        [
            {
                "title": "单穴注塑模具 P20钢 定制",
                "category": "工业品",
                "origin_region_code": "441900119",
                "description": "按图纸定制，交期25天，寿命30万模次。Single-cavity P20 injection "
                "mould made to drawing, 25-day lead time.",
                "skus": [
                    {"name": "小型 ≤200mm", "price_cents": 1280000, "stock": 6},
                    {"name": "中型 ≤400mm", "price_cents": 2650000, "stock": 3},
                ],
                "provenance": [
                    {
                        "batch": "CA-M-2611",
                        "kind": "production",
                        "date": _day(11, 15),
                        "place": "长安镇 厂区 CNC 车间",
                        "place_region_code": "441900119",
                        "note": "模具钢材质证明随货。",
                    }
                ],
            }
        ],
    ),
]


async def _user(session: AsyncSession, email: str, name: str, *roles: Role) -> User:
    return await accounts.create(
        session, email=email, password=DEMO_PASSWORD, display_name=name, roles=roles
    )


async def seed_session(
    session: AsyncSession, *, policy: settlement.Policy | None = None
) -> list[str]:
    """Add the demo accounts, places, shops and products; returns what was made, line by line.
    ``policy`` is the deployment's settlement policy (the default settings' if None). The
    session commits as the demo goes (the order writer's work needs it to), so it must keep
    loaded objects usable after a commit, as ``db.create_sessionmaker``'s do."""
    if await accounts.get_by_email(session, email=OPERATOR_EMAIL) is not None:
        return ["demo data is already loaded"]
    url = (await session.connection()).engine.url.render_as_string(hide_password=False)
    writer = create_order_writer(url)
    try:
        return await _seed(session, _Writer(session, writer), policy=policy)
    finally:
        await writer.close()


async def _seed(
    session: AsyncSession, writer: "_Writer", *, policy: settlement.Policy | None
) -> list[str]:
    operator = await _user(session, OPERATOR_EMAIL, "县电商中心 运营", Role.OPERATOR)
    await _user(session, BUYER_EMAIL, "王小满")
    for code, name, parent in PLACES:
        if await regions.get(session, code=code) is None:
            await regions.create(session, code=code, name=name, parent_code=parent)
    made = []
    listed = []
    for demo in SHOPS:
        owner = await _user(session, demo.owner_email, demo.owner_name)
        shop = await catalog.open_shop(
            session, owner=owner, data=schemas.ShopCreate(**demo.shop), approve=False
        )
        await catalog.approve_shop(session, shop=shop, operator=operator)
        for product in demo.products:
            data = schemas.ProductCreate.model_validate(product)
            made_product = await catalog.create_product(session, shop=shop, actor=owner, data=data)
            listed.append((made_product, shop, owner))
        made.append(f"{shop.name} ({demo.owner_email}): {len(demo.products)} products")
    # The kiwi co-operative is live, with a flash offer on its kiwis pinned in the room, and
    # has its next session scheduled.
    kiwi_product, grove, grower = next(x for x in listed if x[0].title.startswith("徐香猕猴桃"))
    kiwi = kiwi_product.skus[0]
    room = await live.create_session(
        session,
        shop=grove,
        anchor=grower,
        data=LiveSessionCreate(
            shop_id=grove.id, title="徐香猕猴桃开园 现摘现发", description="果园里直播采摘"
        ),
    )
    await live.start(session, live=room)
    upcoming = await live.create_session(
        session,
        shop=grove,
        anchor=grower,
        data=LiveSessionCreate(
            shop_id=grove.id,
            title="猕猴桃冷库参观",
            scheduled_at=utcnow().replace(microsecond=0) + dt.timedelta(days=1),
        ),
    )
    made.append(f"live session {room.id} is live; session {upcoming.id} is tomorrow")
    conn = await session.connection()
    offer_id = await conn.run_sync(
        lambda sync: stock.open_offer(
            sync,
            sku_id=kiwi.id,
            price_cents=2990,
            quantity=500,
            per_buyer_limit=2,
            ends_at=None,
            sold_by=placing.Attribution(room.id, room.anchor_id),
            now=utcnow(),
        )
    )
    offer = await orders.get_offer(session, offer_id=offer_id)
    assert offer is not None
    await live.pin(session, live=room, offer=offer)
    made.append(f"flash offer {offer_id}: 500 x {kiwi.name} kiwis at ¥29.90, 2 per buyer")
    made += await _seed_delivery(session, writer, grove=grove, grower=grower, sku_id=kiwi.id)
    hotpot = next(x for x in listed if x[0].title.startswith("手工牛油火锅底料"))
    big_kiwi = (kiwi_product.skus[1], grove, grower)
    made += await _seed_anchor(
        session,
        writer,
        goods=[big_kiwi, (hotpot[0].skus[2], hotpot[1], hotpot[2])],
        policy=policy or settlement.policy_of(Settings()),
    )
    return made


# The delivery network of the demo shops' counties: (kind, region code, name, staff e-mail).
NETWORK = [
    ("county_hub", "610431", "武功县电商物流中心", "hub.wugong@example.com"),
    ("township_station", "610431102", "武功镇快递服务站", "station.wugong@example.com"),
    ("village_point", "610431102202", "徐杨村村邮站", "point.xuyang@example.com"),
    ("county_hub", "530114", "呈贡区物流中心", None),
    ("township_station", "530114003", "斗南街道服务站", None),
    ("village_point", "530114003", "斗南花市服务点", None),
    ("county_hub", "500240", "石柱县物流中心", None),
    ("township_station", "500240105", "黄水镇服务站", None),
    ("village_point", "500240105", "黄水镇菜鸟驿站", None),
    ("county_hub", "441900", "东莞市物流中心", None),
    ("township_station", "441900119", "长安镇服务站", None),
    ("village_point", "441900119", "长安镇驿站", None),
]
# Buyers of last night's kiwi session: (e-mail, name, village or township code).
SESSION_BUYERS = [
    (BUYER_EMAIL, "王小满", "610431102202"),
    ("buyer2@example.com", "李春花", "610431102202"),
    ("buyer3@example.com", "张立", "530114003"),
    ("buyer4@example.com", "谭秀英", "500240105"),
    ("buyer5@example.com", "陈建国", "441900119"),
]


async def _seed_delivery(
    session: AsyncSession, writer: "_Writer", *, grove: Any, grower: User, sku_id: int
) -> list[str]:
    """The network, and last night's ended kiwi session: its paid orders shipped as parcels,
    one waiting for pick-up at 徐杨村 (its code on the demo buyer's order page), one in a
    bag, others on their way."""
    nodes: dict[str, int] = {}
    upstream: dict[str, int] = {}
    for kind, code, name, staff in NETWORK:
        node = await logistics.create_node(
            session,
            data=delivery.NodeCreate(
                kind=NodeKind(kind),
                region_code=code,
                name=name,
                opening_hours="每天 8:00-20:00",
                home_delivery=kind == "village_point",
                upstream_id=upstream.get(kind),
            ),
        )
        nodes[name] = node.id
        # The next kind's upstream is this one: hub, then its station, then its point.
        if kind == "county_hub":
            upstream = {"township_station": node.id}
        elif kind == "township_station":
            upstream["village_point"] = node.id
        if staff:
            await _user(session, staff, f"{name} 工作人员")
            await logistics.add_staff(session, node=node, email=staff)
    ended = await live.create_session(
        session,
        shop=grove,
        anchor=grower,
        data=LiveSessionCreate(shop_id=grove.id, title="昨晚的猕猴桃专场"),
    )
    await live.start(session, live=ended)
    now = utcnow()
    conn = await session.connection()
    offer_id = await conn.run_sync(
        lambda sync: stock.open_offer(
            sync,
            sku_id=sku_id,
            price_cents=2590,
            quantity=100,
            per_buyer_limit=3,
            ends_at=None,
            sold_by=placing.Attribution(ended.id, ended.anchor_id),
            now=now,
        )
    )
    parcels = []
    for n, (email, name, village) in enumerate(SESSION_BUYERS):
        buyer = await accounts.get_by_email(session, email=email)
        if buyer is None:
            buyer = await _user(session, email, name)
        order = await writer.run(
            _paid_order,
            buyer_id=buyer.id,
            name=name,
            region_code=village,
            offer_id=offer_id,
            quantity=1 + n % 2,
            now=now,
        )
        parcels.append(
            await _ship(session, order_id=order, shop=grove, actor=grower, village=village, now=now)
        )
    conn = await session.connection()
    await conn.run_sync(lambda sync: _move_parcels(sync, parcels, now=now))
    await live.end(session, live=ended)
    run = await _collection_run(session, grove=grove, grower=grower, sku_id=sku_id, nodes=nodes)
    return [
        f"collection run {run}: three growers bring kiwis to {NETWORK[2][2]} for the hub; two"
        " weighed, one of them short",
        f"delivery network: {len(NETWORK)} hubs, stations and points in the four shops' counties;"
        f" staff point.xuyang@example.com at {NETWORK[2][2]}",
        f"live session {ended.id} has ended: {len(parcels)} paid orders shipped as parcels, one"
        f" waiting for pick-up at {NETWORK[2][2]} (the demo buyer's), one in a bag, the rest on"
        " their way",
    ]


async def _ship(
    session: AsyncSession, *, order_id: int, shop: Any, actor: User, village: str, now: dt.datetime
) -> tuple[int, list[int]]:
    """The shop packs the paid order as one parcel, routed through the network; returns the
    parcel's id and its route."""
    shipped = await orders.get_order(session, order_id=order_id)
    assert shipped is not None
    route = await logistics.route_for(session, shop_region=shop.region_code, buyer_region=village)
    plan = tracking.NewParcel(
        items=[(i.id, i.quantity) for i in shipped.items], route=route, weight_grams=2600
    )
    ship = partial(
        tracking.ship,
        order_id=shipped.id,
        shop_id=shop.id,
        region_code=village,
        parcels=[plan],
        actor_id=actor.id,
        now=now,
        note="1 parcel(s)",
    )
    conn = await session.connection()
    (parcel_id,) = await conn.run_sync(ship)
    return parcel_id, route


async def _collection_run(
    session: AsyncSession, *, grove: Any, grower: User, sku_id: int, nodes: dict[str, int]
) -> int:
    """Tomorrow's harvest: the co-operative's growers bring kiwis to the village point for the
    county hub; the point has weighed two of them, one short of what was booked."""
    point, hub = nodes[NETWORK[2][2]], nodes[NETWORK[0][2]]
    growers = [("徐建军", 300_000), ("杨秀兰", 200_000), ("徐小龙", 150_000)]
    run = await collection.book(
        session,
        shop=grove,
        actor=grower,
        data=collection_schemas.RunCreate(
            shop_id=grove.id,
            sku_id=sku_id,
            hub_id=hub,
            note="开园第一批",
            collect_on=(utcnow() + dt.timedelta(days=1)).date(),
            growers=[
                collection_schemas.GrowerBooking(
                    name=name, phone=f"1380000{n:04d}", point_id=point, expected_grams=grams
                )
                for n, (name, grams) in enumerate(growers)
            ],
        ),
    )
    staff = await accounts.get_by_email(session, email=NETWORK[2][3] or "")
    assert staff is not None
    booked = await session.scalars(
        select(CollectionGrower.id)
        .where(CollectionGrower.run_id == run.id)
        .order_by(CollectionGrower.id)
    )
    for grower_id, grams in zip(list(booked)[:2], (301_500, 171_000), strict=True):
        await collection.weigh(
            session,
            run_id=run.id,
            node_id=point,
            actor_id=staff.id,
            now=utcnow(),
            data=collection_schemas.WeighingCreate(
                grower_id=grower_id, weight_grams=grams, grade=Grade.A
            ),
        )
    return run.id


def _paid_order(
    conn: Any,
    *,
    buyer_id: int,
    name: str,
    region_code: str,
    offer_id: int,
    quantity: int,
    now: dt.datetime,
) -> int:
    """An order of the offer, paid through the sandbox gateway's records as a webhook would."""
    placed = bulk.place_one(
        conn,
        placing.PlaceOrder(
            buyer_id=buyer_id,
            idempotency_key=f"demo-{buyer_id}-{offer_id}",
            lines=(placing.Line(offer_id, None, quantity),),
            address=placing.Address(name, "13800000000", region_code, "村口第三户"),
            now=now,
            ttl=dt.timedelta(minutes=30),
        ),
    )
    order_id = int(placed.order["id"])
    payment_id = payments.open_payment(
        conn,
        order_id=order_id,
        provider="sandbox",
        checkout_token=sandbox.new_checkout_token(),
        now=now,
    )
    total = placed.order["total_cents"]
    payments.settle(
        conn,
        provider="sandbox",
        event_id=f"demo-{payment_id}",
        payment_id=payment_id,
        succeeded=True,
        amount_cents=total,
        currency=placed.order["currency"],
        refund_ref=sandbox.refund_ref(),
        now=now,
    )
    return order_id


def _move_parcels(conn: Any, parcels: list[tuple[int, list[int]]], *, now: dt.datetime) -> None:
    """The first parcel reaches its village point and is shelved; the second travels in a
    bag to its station; the rest leave their hubs."""

    def code(parcel_id: int) -> str:
        return str(conn.execute(select(Parcel.code).where(Parcel.id == parcel_id)).scalar_one())

    def scan(parcel_id: int, node: int, status: ParcelStatus, minutes: int) -> None:
        at = now + dt.timedelta(minutes=minutes)
        tracking.scan_parcel(
            conn,
            code=code(parcel_id),
            scan=tracking.Scan(f"demo-{parcel_id}-{minutes}", status, at),
            node_id=node,
            actor_id=None,
            now=at,
        )

    (first, route), (second, route2), *rest = parcels
    hub, station, point = route
    for node, status, minutes in (
        (hub, ParcelStatus.PICKED_UP, 1),
        (hub, ParcelStatus.IN_TRANSIT, 2),
        (station, ParcelStatus.AT_NODE, 3),
        (station, ParcelStatus.IN_TRANSIT, 4),
        (point, ParcelStatus.AT_NODE, 5),
        (point, ParcelStatus.READY_FOR_PICKUP, 6),
    ):
        scan(first, node, status, minutes)
    scan(second, route2[0], ParcelStatus.PICKED_UP, 1)
    tracking.make_bag(
        conn,
        seal="DEMO-BAG-0001",
        origin_id=route2[0],
        destination_id=route2[1],
        codes=[code(second)],
        now=now,
    )
    tracking.scan_bag(
        conn,
        seal="DEMO-BAG-0001",
        scan=tracking.Scan("demo-bag-1", ParcelStatus.IN_TRANSIT, now + dt.timedelta(minutes=2)),
        node_id=route2[0],
        actor_id=None,
        now=now + dt.timedelta(minutes=2),
    )
    for parcel_id, hops in rest:
        scan(parcel_id, hops[0], ParcelStatus.PICKED_UP, 1)
        scan(parcel_id, hops[0], ParcelStatus.IN_TRANSIT, 2)


@dataclass
class _Writer:
    """The order writer, as the server runs its rules (on SQLite a connection of its own, which
    ``orders.bulk`` needs); the demo's session commits first, so that the writer finds what it
    made and SQLite's write lock free."""

    session: AsyncSession
    writer: OrderWriter

    async def run(self, fn: Callable[..., T], /, **kwargs: Any) -> T:
        await self.session.commit()
        return await self.writer.run(fn, **kwargs)

    async def close(self) -> None:
        """The writer is the demo's: it closes when the demo is loaded."""


# The "new farmer" anchor's session: (buyer's e-mail, which of the goods, delivered). Those
# delivered are confirmed by their buyers and released; the rest are on their way, pending.
ANCHOR_ORDERS = [
    ("buyer2@example.com", 0, True),
    ("buyer3@example.com", 1, True),
    ("buyer4@example.com", 0, True),
    ("buyer5@example.com", 1, False),
    ("buyer2@example.com", 1, False),
]
# The shops' open plans the anchor joined, by the goods' order: (name, rate in basis points).
ANCHOR_PLANS = [("徐杨猕猴桃 新农人带货", 1000), ("黄水火锅底料 主播分佣", 1500)]
LATE_REFUND_FEN = 1000  # given back by the kiwi co-operative after release: two bruised kiwis


async def _seed_anchor(
    session: AsyncSession,
    writer: _Writer,
    *,
    goods: list[tuple[Any, Any, User]],
    policy: settlement.Policy,
) -> list[str]:
    """A "new farmer" anchor joins the kiwi co-operative's and the hot-pot maker's open plans
    and sells a SKU of each in a session of their own; buyers order and pay. Some parcels are
    delivered and confirmed, some on their way. The settlement runs as it would once the
    after-sales window has closed (``policy.after_sales`` ahead): the confirmed orders are
    released, the rest stay pending; the co-operative then refunds part of a released order,
    and the anchor is paid out part of what is available through the sandbox bank."""
    anchor = await _user(session, ANCHOR_EMAIL, "新农人 小周", Role.ANCHOR)
    room = await live.create_session(
        session,
        shop=None,
        anchor=anchor,
        data=LiveSessionCreate(title="新农人小周 陕西猕猴桃配重庆火锅", description="两地好物"),
    )
    await live.start(session, live=room)
    offers = []
    for (sku, shop, owner), (name, rate_bp) in zip(goods, ANCHOR_PLANS, strict=True):
        plan = await affiliates.create_plan(
            session,
            shop=shop,
            actor=owner,
            data=affiliates_schemas.PlanCreate(name=name, rate_bp=rate_bp, auto_approve=True),
        )
        await affiliates.join_plan(session, plan=plan, anchor=anchor)
        item = await lineup.propose(
            session,
            writer,
            live=room,
            anchor=anchor,
            data=affiliates_schemas.LineupItemCreate(
                sku_id=sku.id, price_cents=sku.price_cents - 1000, quantity=100, per_buyer_limit=2
            ),
        )
        assert item.offer_id is not None  # the plan approves by itself
        offers.append(item.offer_id)
    released = []
    for email, which, delivered in ANCHOR_ORDERS:
        buyer = await accounts.get_by_email(session, email=email)
        assert buyer is not None  # a buyer of last night's session
        village = next(v for e, _name, v in SESSION_BUYERS if e == email)
        _sku, shop, owner = goods[which]
        order_id = await writer.run(
            _paid_order, buyer_id=buyer.id, name=buyer.display_name, region_code=village,
            offer_id=offers[which], quantity=1, now=utcnow(),
        )  # fmt: skip
        conn = await session.connection()
        parcel_id, route = await _ship(
            session, order_id=order_id, shop=shop, actor=owner, village=village, now=utcnow()
        )
        await conn.run_sync(partial(_carry, parcel_id=parcel_id, route=route, delivered=delivered))
        if delivered:
            order = await orders.get_order(session, order_id=order_id)
            assert order is not None
            await orders.confirm_receipt(writer, order=order, actor=buyer)
            released.append((order_id, owner))
    await live.end(session, live=room)
    # A week on, as the settlement runs then: the after-sales windows have closed.
    later = utcnow() + policy.after_sales + dt.timedelta(hours=1)
    done = await settlement.run(writer, policy=policy, now=later)
    late_order, kiwi_owner = released[0]
    await writer.run(
        payments.refund, order_id=late_order, amount_cents=LATE_REFUND_FEN,
        reason="两个猕猴桃磕伤了", actor_id=kiwi_owner.id, provider_ref=sandbox.refund_ref(),
        now=later + dt.timedelta(hours=1),
    )  # fmt: skip
    await settlement.run(writer, policy=policy, now=later + dt.timedelta(hours=1))
    paid = await _pay_out(writer, anchor, now=later + dt.timedelta(hours=2))
    return [
        f"anchor {ANCHOR_EMAIL} joined the kiwi co-operative's and the hot-pot maker's open plans"
        f" and sold both in their own session {room.id} (ended): {len(ANCHOR_ORDERS)} orders,"
        f" {len(released)} delivered, confirmed and released, the rest pending on their way",
        f"settled as a week on: {done.released} orders released; the kiwi co-operative refunded"
        f" ¥{LATE_REFUND_FEN / 100:.2f} of order {late_order} after release; the anchor was paid"
        f" out ¥{paid / 100:.2f} through the sandbox bank",
    ]


def _carry(conn: Any, parcel_id: int, route: list[int], *, delivered: bool) -> None:
    """The parcel leaves its first hub; if ``delivered``, it travels its route and its last
    node delivers it to the door."""
    code = str(conn.execute(select(Parcel.code).where(Parcel.id == parcel_id)).scalar_one())
    steps = [(route[0], ParcelStatus.PICKED_UP), (route[0], ParcelStatus.IN_TRANSIT)]
    if delivered:
        for node in route[1:-1]:
            steps += [(node, ParcelStatus.AT_NODE), (node, ParcelStatus.IN_TRANSIT)]
        steps += [
            (route[-1], ParcelStatus.AT_NODE),
            (route[-1], ParcelStatus.OUT_FOR_DELIVERY),
            (route[-1], ParcelStatus.DELIVERED),
        ]
    for n, (node, status) in enumerate(steps):
        at = utcnow()
        scan = tracking.Scan(f"demo-{parcel_id}-{n}", status, at)
        tracking.scan_parcel(conn, code=code, scan=scan, node_id=node, actor_id=None, now=at)


async def _pay_out(writer: _Writer, anchor: User, *, now: dt.datetime) -> int:
    """Half the anchor's available money, in whole yuan, paid out through the sandbox bank and
    answered as its webhook would; returns the fen paid."""
    available = account(Holder.ANCHOR, "available", anchor.id)
    held = await writer.run(ledger.balance, account=available)
    made = await writer.run(
        payouts.request, account=available, amount_fen=held // 200 * 100,
        provider=payout_bank.NAME, key=f"demo-payout-{anchor.id}", now=now, actor_id=anchor.id,
    )  # fmt: skip
    await payouts.send(writer, payout_bank.SandboxProvider(), payout_id=made.payout_id)
    answer = payout_bank.outcome(await writer.run(payouts.transfer_of, payout_id=made.payout_id))
    await writer.run(
        payouts.apply, provider=payout_bank.NAME, event_id=answer.id, payout_id=answer.payout_id,
        paid=answer.type == payout_bank.PAID, amount_fen=answer.amount_fen,
        currency=answer.currency, now=now, note=answer.reason,
    )  # fmt: skip
    return answer.amount_fen


async def seed(settings: Settings) -> str:
    """Load the demo data into the configured database; returns a summary to print."""
    engine = create_engine(settings.resolved_database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            made = await seed_session(session, policy=settlement.policy_of(settings))
            await session.commit()
    finally:
        await engine.dispose()
    accounts_line = (
        f"demo accounts (password {DEMO_PASSWORD}): operator {OPERATOR_EMAIL}, "
        f"buyer {BUYER_EMAIL}, anchor {ANCHOR_EMAIL}, merchants "
        + ", ".join(s.owner_email for s in SHOPS)
    )
    return "\n".join([*made, accounts_line])
