"""A shop's anchors: who joined its plans and what they sold of its goods, by API and page."""

import httpx
import pytest
from sqlalchemy import update

from originlive.orders.models import FlashOffer
from tests.accounts.test_pages import login
from tests.affiliates.conftest import Library
from tests.payments.test_api import choose, deliver


async def test_a_shop_sees_its_anchors_and_their_sales(app, library: Library, make_user) -> None:
    market, client = library.market, library.client
    anchor, idle = await library.anchor("新农人小王"), await library.anchor("idle")
    plan = await library.plan(rate_bp=1200)
    for who in (anchor, idle):
        assert (await library.join(who, plan["id"])).status_code == 201
    # An offer sold by the anchor under the plan (as an approved line-up opens it).
    offer = await market.offer(quantity=10, per_buyer_limit=5)
    await library.db.execute(
        update(FlashOffer)
        .where(FlashOffer.id == offer["id"])
        .values(anchor_id=anchor.id, plan_id=plan["id"], commission_bp=1200)
    )
    await library.db.commit()
    buyer = await make_user("buyer")
    for quantity, pay in ((2, True), (1, False)):  # an unpaid order does not count
        order = await market.order(buyer, [{"offer_id": offer["id"], "quantity": quantity}])
        assert order.status_code == 201
        if pay:
            payment = await client.post(
                f"/api/v1/orders/{order.json()['id']}/payments",
                json={"provider": "sandbox"},
                headers=buyer.headers,
            )
            await choose(client, payment.json(), "succeed")
            assert await deliver(app) == 1

    url = f"/api/v1/affiliates/shops/{market.shop_id}/anchors"
    seen = await client.get(url, headers=market.merchant.headers)
    assert seen.status_code == 200, seen.text
    rows = {a["anchor_id"]: a for a in seen.json()}
    assert rows[anchor.id] | {"joined_at": None} == {
        "anchor_id": anchor.id,
        "name": "新农人小王",
        "plans": 1,
        "joined_at": None,
        "orders": 1,
        "units": 2,
        "sales_fen": 2 * 1990,
        "commission_fen": 477,  # 12 % of 39.80, rounded down
    }
    assert rows[idle.id]["orders"] == 0
    assert [a["anchor_id"] for a in seen.json()] == [anchor.id, idle.id]  # best seller first
    other = await make_user("other-merchant")
    assert (await client.get(url, headers=other.headers)).status_code in (403, 404)
    assert (await client.get(url, headers=anchor.headers)).status_code in (403, 404)


@pytest.mark.parametrize(("lang", "heading"), [("en", "Plans joined"), ("zh-CN", "加入的方案")])
async def test_the_anchors_page(library: Library, lang: str, heading: str) -> None:
    anchor = await library.anchor("新农人小王")
    plan = await library.plan()
    assert (await library.join(anchor, plan["id"])).status_code == 201
    client: httpx.AsyncClient = library.client
    assert (await login(client, library.merchant.email)).status_code == 303
    page = await client.get(
        f"/console/shops/{library.market.shop_id}/anchors", headers={"Accept-Language": lang}
    )
    assert page.status_code == 200
    assert heading in page.text and "新农人小王" in page.text
    assert f'id="anchor-{anchor.id}"' in page.text
