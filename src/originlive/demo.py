"""Demo data that tells the story: four real places of origin, their shops and their goods.

Townships and villages are added the way an operator would (the shipped data stops at counties);
their codes are the National Bureau of Statistics' own. Every demo account has the password
``DEMO_PASSWORD``. Seeding is idempotent: a database that has the demo operator is left alone.
"""

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from originlive.accounts import service as accounts
from originlive.accounts.models import Role, User
from originlive.catalog import schemas
from originlive.catalog import service as catalog
from originlive.db import create_engine, create_sessionmaker, utcnow
from originlive.live import service as live
from originlive.live.schemas import LiveSessionCreate
from originlive.orders import service as orders
from originlive.orders import stock
from originlive.regions import service as regions
from originlive.settings import Settings

DEMO_PASSWORD = "originlive-demo"
OPERATOR_EMAIL = "operator@example.com"
BUYER_EMAIL = "buyer@example.com"

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


async def seed_session(session: AsyncSession) -> list[str]:
    """Add the demo accounts, places, shops and products; returns what was made, line by line."""
    if await accounts.get_by_email(session, email=OPERATOR_EMAIL) is not None:
        return ["demo data is already loaded"]
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
            live_session_id=room.id,
            now=utcnow(),
        )
    )
    offer = await orders.get_offer(session, offer_id=offer_id)
    assert offer is not None
    await live.pin(session, live=room, offer=offer)
    made.append(f"flash offer {offer_id}: 500 x {kiwi.name} kiwis at ¥29.90, 2 per buyer")
    return made


async def seed(settings: Settings) -> str:
    """Load the demo data into the configured database; returns a summary to print."""
    engine = create_engine(settings.resolved_database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            made = await seed_session(session)
            await session.commit()
    finally:
        await engine.dispose()
    accounts_line = (
        f"demo accounts (password {DEMO_PASSWORD}): operator {OPERATOR_EMAIL}, "
        f"buyer {BUYER_EMAIL}, merchants " + ", ".join(s.owner_email for s in SHOPS)
    )
    return "\n".join([*made, accounts_line])
