"""Route manifests and pick lists: a live session's paid orders in three counties, grouped by
county, township and village; the pick list's counts; each hub's and station's parcels by
the node they go to next; the CSV and PDF read back; and who may see them."""

import csv
import io
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pypdf
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.logistics.manifests import (
    LineRow,
    OrderRow,
    ParcelRow,
    Place,
    by_destination,
    mask_name,
    mask_phone,
    still_to_pass,
)
from originlive.logistics.models import ParcelStatus
from originlive.orders.models import OrderStatus
from originlive.regions.models import RegionLevel
from tests.accounts.test_pages import HTML
from tests.catalog.conftest import Catalog
from tests.conftest import Actor
from tests.logistics.conftest import (
    OTHER_VILLAGE,
    VILLAGE,
    Network,
    _node,
    ensure_region,
)
from tests.orders.conftest import ADDRESS
from tests.payments.test_api import choose, deliver

WUHUA, XISHAN = "530102", "530112"  # 昆明市 五华区, 西山区
HUASHAN = "530102001"  # 华山街道
CUIHU = "530102001001"  # 翠湖西路社区居民委员会
MAJIE = "530112002"  # 马街街道: a station, no point below it


def test_masks() -> None:
    assert mask_phone("13800001234") == "138****1234"
    assert mask_phone("0291234") == "*****34"
    assert [mask_name(n) for n in ("王小满", "王满", "王", "欧阳小满")] == [
        "王*满",
        "王*",
        "*",
        "欧**满",
    ]


def test_a_parcel_is_on_a_nodes_manifest_until_it_leaves_it() -> None:
    def parcel(status: ParcelStatus, seen: int | None) -> ParcelRow:
        return ParcelRow(1, "OL0000000001", 1, VILLAGE, 3, None, status, seen, None, (1, 2, 3))

    assert still_to_pass(parcel(ParcelStatus.PENDING, 1), 2)  # still to come
    assert still_to_pass(parcel(ParcelStatus.AT_NODE, 2), 2)  # here
    assert not still_to_pass(parcel(ParcelStatus.IN_TRANSIT, 2), 2)  # sent on
    assert not still_to_pass(parcel(ParcelStatus.AT_NODE, 3), 2)  # past it
    assert still_to_pass(parcel(ParcelStatus.READY_FOR_PICKUP, 3), 3)  # on its shelf
    assert not still_to_pass(parcel(ParcelStatus.DELIVERED, 3), 3)
    assert not still_to_pass(parcel(ParcelStatus.PENDING, 1), 4)  # not on its route


def test_orders_are_grouped_by_county_township_and_village() -> None:
    def place(name: str, level: RegionLevel, *path: str) -> Place:
        return Place(path[-1], name, level, path)

    wugong = ("610000", "610400", "610431")
    dongguan = ("440000", "441900")
    places = {
        p.code: p
        for p in (
            place("陕西省", RegionLevel.PROVINCE, *wugong[:1]),
            place("咸阳市", RegionLevel.PREFECTURE, *wugong[:2]),
            place("武功县", RegionLevel.COUNTY, *wugong),
            place("武功镇", RegionLevel.TOWNSHIP, *wugong, "610431102"),
            place("武塔村委会", RegionLevel.VILLAGE, *wugong, "610431102", VILLAGE),
            place("东莞市", RegionLevel.PREFECTURE, *dongguan),
            place("长安镇", RegionLevel.TOWNSHIP, *dongguan, "441900003"),
        )
    }

    def order(i: int, region: str) -> OrderRow:
        return OrderRow(i, 1, OrderStatus.PAID, "王*满", "138****0000", region, "3组")

    orders = [order(3, VILLAGE), order(1, "610431"), order(2, VILLAGE), order(4, "441900003")]
    lines = [LineRow(i, 7, "猕猴桃", "5斤", 2) for i in (1, 2, 3, 4)]
    counties = by_destination(orders, lines, places)
    assert [(c.code, c.name, c.orders, c.units) for c in counties] == [
        ("441900", "东莞市", 1, 2),  # a city without counties holds its towns itself
        ("610431", "陕西省 咸阳市 武功县", 3, 6),
    ]
    wugong = counties[1]
    assert [(t.code, t.orders) for t in wugong.townships] == [(None, 1), ("610431102", 2)]
    (village,) = wugong.townships[1].villages
    assert (village.name, [o.id for o in village.orders]) == ("武塔村委会", [2, 3])
    assert village.orders[0].items == (("猕猴桃", "5斤", 2),)


# Over the API


async def _paid(network: Network, buyer: Actor, items: list[dict[str, Any]], region: str) -> int:
    """A paid order of the items to the region; its id."""
    client = network.market.client
    placed = await network.market.order(buyer, items, address=ADDRESS | {"region_code": region})
    assert placed.status_code == 201, placed.text
    payment = await client.post(
        f"/api/v1/orders/{placed.json()['id']}/payments",
        json={"provider": "sandbox"},
        headers=buyer.headers,
    )
    assert payment.status_code == 201, payment.text
    await choose(client, payment.json(), "succeed")
    assert await deliver(network.app) == 1
    return int(placed.json()["id"])


async def _kunming(network: Network, db: AsyncSession) -> dict[str, dict[str, Any]]:
    """Hubs in 五华区 and 西山区, a station and a point in 五华区, a station in 西山区."""
    await ensure_region(db, CUIHU, "翠湖西路社区居民委员会", HUASHAN)
    client, operator = network.market.client, network.operator
    wuhua = await _node(
        client, operator, kind="county_hub", region_code=WUHUA, name="五华区分拨中心"
    )
    xishan = await _node(
        client, operator, kind="county_hub", region_code=XISHAN, name="西山区分拨中心"
    )
    huashan = await _node(
        client,
        operator,
        kind="township_station",
        region_code=HUASHAN,
        name="华山街道服务站",
        upstream_id=wuhua["id"],
    )
    cuihu = await _node(
        client,
        operator,
        kind="village_point",
        region_code=CUIHU,
        name="翠湖西路服务点",
        upstream_id=huashan["id"],
    )
    majie = await _node(
        client,
        operator,
        kind="township_station",
        region_code=MAJIE,
        name="马街街道服务站",
        upstream_id=xishan["id"],
    )
    return {"wuhua": wuhua, "xishan": xishan, "huashan": huashan, "cuihu": cuihu, "majie": majie}


async def _session(network: Network) -> tuple[int, int, int]:
    """A live session of the market's shop with two offers: the 5-jin SKU and a 10-jin one."""
    market = network.market
    client, headers = market.client, market.merchant.headers
    sku = await client.post(
        f"/api/v1/products/{market.product_id}/skus",
        json={"name": "10斤 大果", "price_cents": 6990, "stock": 100},
        headers=headers,
    )
    assert sku.status_code == 201, sku.text
    live = await client.post(
        "/api/v1/live-sessions",
        json={"shop_id": market.shop_id, "title": "猕猴桃采摘直播"},
        headers=headers,
    )
    assert live.status_code == 201, live.text
    session_id = int(live.json()["id"])
    offers = []
    for sku_id in (market.sku_id, sku.json()["id"]):
        offer = await client.post(
            f"/api/v1/live-sessions/{session_id}/offers",
            json={"sku_id": sku_id, "price_cents": 2990, "quantity": 50, "per_buyer_limit": 20},
            headers=headers,
        )
        assert offer.status_code == 201, offer.text
        offers.append(int(offer.json()["id"]))
    return session_id, offers[0], offers[1]


def _table(response: Any) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.content.startswith(b"\xef\xbb\xbf")  # for Excel and WPS
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))


def _pdf_text(response: Any) -> tuple[str, pypdf.PdfReader]:
    assert response.status_code == 200, response.text[:200]
    assert response.headers["content-type"] == "application/pdf"
    reader = pypdf.PdfReader(io.BytesIO(response.content))
    return "\n".join(page.extract_text() for page in reader.pages), reader


async def test_a_sessions_manifest_groups_its_paid_orders_by_route(
    network: Network, db: AsyncSession, make_user: Callable[..., Awaitable[Actor]]
) -> None:
    nodes = await _kunming(network, db)
    session_id, small, large = await _session(network)
    client, merchant = network.market.client, network.market.merchant
    buyer = await make_user("buyer")
    ids = {
        "wuta": await _paid(
            network,
            buyer,
            [{"offer_id": small, "quantity": 2}, {"offer_id": large, "quantity": 1}],
            VILLAGE,
        ),
        "jishan": await _paid(network, buyer, [{"offer_id": small, "quantity": 1}], OTHER_VILLAGE),
        "county": await _paid(network, buyer, [{"offer_id": large, "quantity": 3}], "610431"),
        "cuihu": await _paid(network, buyer, [{"offer_id": small, "quantity": 1}], CUIHU),
        "majie": await _paid(network, buyer, [{"offer_id": small, "quantity": 2}], MAJIE),
        "wuta_shipped": await _paid(network, buyer, [{"offer_id": large, "quantity": 1}], VILLAGE),
    }
    # Not the session's: an offer on its own; and an order of the session's not paid.
    alone = await network.market.offer(quantity=5)
    await _paid(network, buyer, [{"offer_id": alone["id"], "quantity": 1}], VILLAGE)
    unpaid = await network.market.order(buyer, [{"offer_id": small, "quantity": 1}])
    assert unpaid.status_code == 201
    (to_cuihu,) = await network.ship({"id": ids["cuihu"]})
    (to_wuta,) = await network.ship({"id": ids["wuta_shipped"]})
    line = _line(await _order(network, ids["majie"]))
    plan = {"items": [{"order_item_id": line, "quantity": 2}], "weight_grams": 2500}
    (to_majie,) = await network.ship({"id": ids["majie"]}, parcels=[plan])

    url = f"/console/live/{session_id}/manifest"
    page = await client.get(url, headers=merchant.headers | HTML)
    assert page.status_code == 200, page.text
    assert page.headers["cache-control"] == "no-store"
    text = page.text
    assert "6 paid orders: 3 to pack, 3 shipped" in text and "3 parcels in the network" in text
    # Counties by code: 五华区 (shipped: nothing to pack there), 西山区, then 武功县.
    counties = re.findall(r'<h3 class="county" id="county-(\d+)">([^<]*)<', text)
    assert [c for c, _name in counties] == ["610431"]  # every Kunming order has shipped
    assert "陕西省 咸阳市 武功县: 3 orders, 7 units" in counties[0][1]
    assert "138****0000" in text and "13800000000" not in text and "王*满" in text

    orders = _table(
        await client.get(url, params={"format": "csv", "part": "orders"}, headers=merchant.headers)
    )
    placed = {
        int(r["Order"]): (r["County"], r["Township"], r["Village"], r["Units"]) for r in orders
    }
    assert placed == {
        ids["wuta"]: ("陕西省 咸阳市 武功县", "武功镇", "武塔村委会", "3"),
        ids["jishan"]: ("陕西省 咸阳市 武功县", "武功镇", "积山村委会", "1"),
        ids["county"]: ("陕西省 咸阳市 武功县", "", "", "3"),
    }
    assert {r["Phone"] for r in orders} == {"138****0000"}

    picks = _table(
        await client.get(url, params={"format": "csv", "part": "picks"}, headers=merchant.headers)
    )
    assert [(r["Variant"], r["Units"], r["Orders"]) for r in picks] == [
        ("10斤 大果", "4", "2"),
        ("5斤 中果", "3", "2"),
    ]
    assert {r["Product"] for r in picks} == {"徐香猕猴桃 5斤装"}

    parcels = _table(
        await client.get(url, params={"format": "csv", "part": "parcels"}, headers=merchant.headers)
    )
    routed = {
        (r["Node"], r["Parcel"]): (r["Next node"], r["Collect at"], r["Weight (g)"])
        for r in parcels
    }
    assert routed == {
        ("武功县物流中心", to_wuta["code"]): ("武功镇服务站", "武塔村服务点", ""),
        ("武功县物流中心", to_cuihu["code"]): ("五华区分拨中心", "翠湖西路服务点", ""),
        ("武功县物流中心", to_majie["code"]): ("西山区分拨中心", "马街街道服务站", "2500"),
        ("武功镇服务站", to_wuta["code"]): ("武塔村服务点", "武塔村服务点", ""),
        ("五华区分拨中心", to_cuihu["code"]): ("华山街道服务站", "翠湖西路服务点", ""),
        ("华山街道服务站", to_cuihu["code"]): ("翠湖西路服务点", "翠湖西路服务点", ""),
        ("西山区分拨中心", to_majie["code"]): ("马街街道服务站", "马街街道服务站", "2500"),
        ("马街街道服务站", to_majie["code"]): ("(here)", "马街街道服务站", "2500"),
    }
    assert nodes["majie"]["name"] in text and 'id="node-' in text

    shown, reader = _pdf_text(
        await client.get(url, params={"format": "pdf"}, headers=merchant.headers)
    )
    for words in (
        "猕猴桃采摘直播",
        "陕西省 咸阳市 武功县: 3 orders, 7 units",
        "积山村委会 (1)",
        "10斤 大果",
        "武功县物流中心",
        "马街街道服务站",
        to_majie["code"],
        "3 parcels, 2.50 kg",
        "138****0000",
    ):
        assert words in shown, (words, shown)
    assert "13800000000" not in shown
    assert round(float(reader.pages[0].mediabox.width)) == 595  # A4
    receipt, reader = _pdf_text(
        await client.get(url, params={"format": "pdf", "paper": "80mm"}, headers=merchant.headers)
    )
    assert round(float(reader.pages[0].mediabox.width)) == 227  # 80 mm
    assert "武塔村委会 (1)" in receipt and to_cuihu["code"] in receipt
    narrow = await client.get(url, params={"paper": "80mm"}, headers=merchant.headers | HTML)
    assert "size: 80mm 297mm" in narrow.text and 'class="slip"' in narrow.text

    # In Chinese, the same.
    zh = await client.get(
        url, params={"format": "pdf"}, headers=merchant.headers | {"Accept-Language": "zh-CN"}
    )
    assert "拣货单" in _pdf_text(zh)[0]


async def _order(network: Network, order_id: int) -> dict[str, Any]:
    got = await network.market.client.get(
        f"/api/v1/orders/{order_id}", headers=network.market.merchant.headers
    )
    return dict(got.json())


def _line(order: dict[str, Any]) -> int:
    (item,) = order["items"]
    return int(item["id"])


async def test_only_the_shops_managers_see_a_sessions_manifest(
    network: Network, make_user: Callable[..., Awaitable[Actor]], make_operator: Any
) -> None:
    session_id, _small, _large = await _session(network)
    client = network.market.client
    url = f"/console/live/{session_id}/manifest"
    other = await make_user("other-merchant")
    catalog = Catalog(client, make_operator)
    await catalog.shop(other, name="斗南春花多肉园", region_code="530112")
    buyer = await make_user("buyer")
    for who in (other, buyer, network.hub_staff):
        for fmt in ("html", "csv", "pdf"):
            seen = await client.get(url, params={"format": fmt}, headers=who.headers | HTML)
            assert seen.status_code == 403, (who, fmt, seen.status_code)
    anonymous = await client.get(url, headers=HTML)
    assert anonymous.status_code in (302, 303) and "/login" in anonymous.headers["location"]
    for who in (network.market.merchant, network.operator):
        assert (await client.get(url, headers=who.headers | HTML)).status_code == 200
    room = await client.get(f"/console/live/{session_id}", headers=network.market.merchant.headers)
    assert f'href="{url}"' in room.text


async def test_a_nodes_manifest_is_its_staffs_and_shows_what_is_still_to_pass(
    network: Network, make_user: Callable[..., Awaitable[Actor]]
) -> None:
    client = network.market.client
    point_url = f"/delivery/nodes/{network.point['id']}/manifest"
    empty = await client.get(point_url, headers=network.point_staff.headers | HTML)
    assert empty.status_code == 200 and "No parcel is on its way here." in empty.text
    shown, _reader = _pdf_text(
        await client.get(
            point_url,
            params={"format": "pdf", "paper": "80mm"},
            headers=network.point_staff.headers,
        )
    )
    assert "武塔村服务点" in shown

    buyer = await make_user("buyer")
    (first,) = await network.ship(await network.paid_order(buyer))
    (second,) = await network.ship(await network.paid_order(buyer, region_code=OTHER_VILLAGE))
    station_url = f"/delivery/nodes/{network.station['id']}/manifest"
    hub_url = f"/delivery/nodes/{network.hub['id']}/manifest"

    seen = await client.get(
        station_url, params={"format": "csv"}, headers=network.station_staff.headers
    )
    rows = {r["Parcel"]: r["Next node"] for r in _table(seen)}
    assert rows == {first["code"]: "武塔村服务点", second["code"]: "(here)"}

    # Sent on from the hub: off the hub's manifest, still on the station's.
    for status in ("picked_up", "in_transit"):
        sent = await network.scan(network.hub_staff, first["code"], status)
        assert sent.status_code == 201, sent.text
    hub = _table(
        await client.get(hub_url, params={"format": "csv"}, headers=network.hub_staff.headers)
    )
    assert [r["Parcel"] for r in hub] == [second["code"]]
    page = await client.get(station_url, headers=network.station_staff.headers | HTML)
    assert page.status_code == 200 and first["code"] in page.text and second["code"] in page.text
    assert "王*满" in page.text and "13800000000" not in page.text
    shown, _reader = _pdf_text(
        await client.get(
            station_url,
            params={"format": "pdf", "paper": "80mm"},
            headers=network.station_staff.headers,
        )
    )
    assert "武功镇服务站" in shown and first["code"] in shown and "积山村委会" in shown

    for who in (network.hub_staff, network.point_staff, buyer, network.market.merchant):
        refused = await client.get(station_url, headers=who.headers | HTML)
        assert refused.status_code == 403, who
    assert (
        await client.get(station_url, headers=network.operator.headers | HTML)
    ).status_code == 200
    missing = await client.get("/delivery/nodes/999999/manifest", headers=network.operator.headers)
    assert missing.status_code == 404
