"""The parcels' page of an order, in-process: its buyer sees each parcel's way and timeline
and the pick-up code, with the point to collect it at; the shop and operators see the same
without the code; anyone else is told there is no such page; Chinese and English."""

from collections.abc import Awaitable, Callable
from typing import Any

from tests.accounts.test_pages import HTML
from tests.conftest import Actor
from tests.logistics.conftest import Network

MakeActor = Callable[..., Awaitable[Actor]]


async def _shelved(network: Network, buyer: Actor) -> tuple[dict[str, Any], str, str]:
    """A paid order shipped, carried to the buyer's point and shelved: the order, the parcel's
    label and its pick-up code."""
    client = network.market.client
    where = {"address": "武塔村 村委会一楼", "opening_hours": "每天 8:00-20:00"}
    await client.patch(
        f"/api/v1/delivery-nodes/{network.point['id']}",
        json=where | {"phone": "029-1234 5678"},
        headers=network.operator.headers,
    )
    order = await network.paid_order(buyer)
    (parcel,) = await network.ship(order)
    code = parcel["code"]
    for who, status in (
        (network.hub_staff, "picked_up"),
        (network.station_staff, "at_node"),
        (network.point_staff, "at_node"),
        (network.point_staff, "ready_for_pickup"),
    ):
        assert (await network.scan(who, code, status)).status_code == 201
    seen = await client.get(f"/api/v1/parcels/{code}", headers=buyer.headers)
    return order, code, seen.json()["pickup_code"]


async def test_the_buyer_sees_the_way_and_the_code_and_the_shop_sees_no_code(
    network: Network, make_user: MakeActor
) -> None:
    client = network.market.client
    buyer = await make_user("buyer")
    order, code, pickup_code = await _shelved(network, buyer)
    url = f"/orders/{order['id']}/parcels"

    mine = await client.get(url, headers=buyer.headers)
    assert mine.status_code == 200, mine.text
    text = mine.text
    assert f"Parcel {code}" in text and f'id="status-{code}">Ready for pick-up<' in text
    assert "武功县物流中心 → 武功镇服务站 → <strong>武塔村服务点</strong>" in text
    assert f'<strong class="pickup-code">{pickup_code}</strong>' in text
    assert "Show it at 武塔村服务点 to collect the parcel." in text
    assert "武塔村 村委会一楼" in text and "每天 8:00-20:00" in text and "029-1234 5678" in text
    # The timeline, newest first, with the nodes' names and the statuses in words.
    timeline = text[text.index(f'id="timeline-{code}"') :]
    steps = ["Ready for pick-up", "Arrived", "Arrived", "Picked up", "Packed, waiting for"]
    assert [timeline.index(f"<strong>{s}") for s in steps] == sorted(
        timeline.index(f"<strong>{s}") for s in steps
    )
    assert "· 武功镇服务站" in timeline and "· 武功县物流中心" in timeline
    assert "Scanned off its route" not in timeline

    for other in (network.market.merchant, network.operator):
        theirs = await client.get(url, headers=other.headers)
        assert theirs.status_code == 200 and f"Parcel {code}" in theirs.text
        assert "武塔村服务点" in theirs.text and "Ready for pick-up" in theirs.text
        assert pickup_code not in theirs.text and "pickup-code" not in theirs.text

    stranger = await make_user("stranger")
    for nobody in (stranger, network.point_staff):
        refused = await client.get(url, headers=nobody.headers | HTML)
        assert refused.status_code == 404 and pickup_code not in refused.text
    anonymous = await client.get(url, headers=HTML)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")

    # The buyer's order page links here once the order has shipped, and not before.
    page = await client.get(f"/orders/{order['id']}", headers=buyer.headers)
    assert f'href="{url}"' in page.text and "Track parcels" in page.text
    unshipped = await network.paid_order(buyer)
    waiting = await client.get(f"/orders/{unshipped['id']}", headers=buyer.headers)
    assert "/parcels" not in waiting.text
    nothing = await client.get(f"/orders/{unshipped['id']}/parcels", headers=buyer.headers)
    assert nothing.status_code == 200 and "Nothing has been shipped yet." in nothing.text


async def test_the_page_speaks_chinese_and_switches_to_english(
    network: Network, make_user: MakeActor
) -> None:
    client = network.market.client
    buyer = await make_user("buyer")
    order, code, pickup_code = await _shelved(network, buyer)
    url = f"/orders/{order['id']}/parcels"

    client.cookies.set("lang", "zh_CN")
    chinese = await client.get(url, headers=buyer.headers)
    assert '<html lang="zh-CN">' in chinese.text
    assert f"包裹 {code}" in chinese.text and "待取件" in chinese.text
    assert "取件码" in chinese.text and pickup_code in chinese.text

    switched = await client.get("/lang/en", params={"next": url})
    assert switched.status_code == 303 and switched.headers["location"] == url
    english = await client.get(url, headers=buyer.headers)
    assert '<html lang="en">' in english.text and "Your pick-up code" in english.text
    assert f"Parcels of order {order['id']}" in english.text and "待取件" not in english.text


async def test_the_buyers_order_page_shows_the_code_while_the_parcel_waits(
    network: Network, make_user: MakeActor
) -> None:
    client = network.market.client
    buyer = await make_user("buyer")
    order, code, pickup_code = await _shelved(network, buyer)
    page = await client.get(f"/orders/{order['id']}", headers=buyer.headers)
    assert page.status_code == 200, page.text
    assert f'<strong class="pickup-code">{pickup_code}</strong>' in page.text
    assert "Show it at 武塔村服务点 to collect the parcel." in page.text
    # The parcel's way and its timeline, on the order page itself.
    assert "武功县物流中心 → 武功镇服务站 → <strong>武塔村服务点</strong>" in page.text
    assert f'id="timeline-{code}"' in page.text and "<strong>Ready for pick-up" in page.text
    collected = await client.post(
        f"/api/v1/parcels/{code}/pickup",
        json={"scan_id": "pickup-order-page", "pickup_code": pickup_code},
        headers=network.point_staff.headers,
    )
    assert collected.status_code == 200
    after = await client.get(f"/orders/{order['id']}", headers=buyer.headers)
    assert pickup_code not in after.text  # collected: no longer waiting
