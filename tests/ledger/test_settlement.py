"""Settlement: an order's money from capture to release, through refunds, in the ledger.

A paid order of an offer an anchor sells at 10 % commission, delivered through the county's
network (hub, station, point), is split into pending accounts when settled, released once
the buyer has confirmed receipt and the after-sales window has closed (the three nodes paid
their fee out of the shop's part), and a refund takes money back in proportion, before or
after release. After every run the book verifies and money in equals money held plus money
paid out.
"""

import datetime as dt
import json
import re
import time
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.db import utcnow
from originlive.ledger import service as ledger
from originlive.ledger.models import JournalEntry
from originlive.ledger.settlement import service as settlement
from originlive.ledger.settlement import split
from originlive.orders.models import FlashOffer, OrderEvent
from originlive.payments import sandbox
from tests.accounts.test_pages import csrf_of, login
from tests.conftest import Actor
from tests.logistics.conftest import Network, scan_id
from tests.payments.test_api import WEBHOOK, checkout, choose, deliver

PRICE = 1990  # the market's offer price, in fen
POLICY = settlement.Policy(
    rule=split.SplitRule(platform_fee_bp=500, station_fee_fen=100),
    auto_confirm=dt.timedelta(days=7),
    after_sales=dt.timedelta(days=7),
)


async def settle(app: Any, *, days: float = 0) -> settlement.Settled:
    now = utcnow() + dt.timedelta(days=days)
    return await settlement.run(app.state.order_writer, policy=POLICY, now=now)


async def balances(app: Any) -> dict[str, int]:
    async with app.state.engine.connect() as conn:
        return await conn.run_sync(lambda c: ledger.balances(c, prefix=""))


async def verified(app: Any) -> ledger.Report:
    async with app.state.engine.connect() as conn:
        report = await conn.run_sync(ledger.verify)
    assert report.ok, report
    return report


async def sold_by_anchor(network: Network, db: AsyncSession, anchor: Actor) -> None:
    """The network's offer, sold by the anchor under a plan at 10 % (as a line-up does)."""
    network.offer = await network.market.offer(quantity=50, per_buyer_limit=10)
    await db.execute(
        update(FlashOffer)
        .where(FlashOffer.id == network.offer["id"])
        .values(anchor_id=anchor.id, plan_id=7, commission_bp=1000)
    )
    await db.commit()


async def delivered(network: Network, order: dict[str, Any], buyer: Actor) -> None:
    (parcel,) = await network.ship(order)
    code = parcel["code"]
    for who, status in (
        (network.hub_staff, "picked_up"),
        (network.hub_staff, "in_transit"),
        (network.station_staff, "at_node"),
        (network.station_staff, "in_transit"),
        (network.point_staff, "at_node"),
    ):
        assert (await network.scan(who, code, status)).status_code == 201
    shelved = await network.scan(network.point_staff, code, "ready_for_pickup", shelf=1, layer=1)
    assert shelved.status_code == 201
    client = network.market.client
    seen = (await client.get(f"/api/v1/parcels/{code}", headers=buyer.headers)).json()
    body = {"scan_id": scan_id(), "pickup_code": seen["pickup_code"], "collected_by": "王大满"}
    picked = await client.post(
        f"/api/v1/parcels/{code}/pickup", json=body, headers=network.point_staff.headers
    )
    assert picked.status_code == 200, picked.text


async def refund(network: Network, order: dict[str, Any], fen: int) -> None:
    made = await network.market.client.post(
        f"/api/v1/orders/{order['id']}/refunds",
        json={"amount_cents": fen, "reason": "坏了两个"},
        headers=network.market.merchant.headers,
    )
    assert made.status_code == 201, made.text


async def test_an_order_s_money_from_capture_to_release_and_a_refund_after(
    app, network: Network, make_user, db: AsyncSession
) -> None:
    anchor, buyer = await make_user("anchor"), await make_user("buyer")
    await sold_by_anchor(network, db, anchor)
    order = await network.paid_order(buyer)
    shop = network.market.shop_id

    assert (await settle(app)).captured == 1
    pending = {
        f"shop:{shop}:pending": PRICE - 99 - 199,
        "platform:pending": 99,  # 5 % of 19.90, rounded down
        f"anchor:{anchor.id}:pending": 199,  # 10 %
        "clearing:payments": -PRICE,
    }
    assert await balances(app) == pending
    assert not (await settle(app)).anything  # nothing is posted twice

    await delivered(network, order, buyer)
    assert not (await settle(app)).anything  # delivered, not confirmed: nothing payable
    client = network.market.client
    url = f"/api/v1/orders/{order['id']}/confirm-receipt"
    assert (await client.post(url, headers=network.market.merchant.headers)).status_code == 403
    confirmed = await client.post(url, headers=buyer.headers)
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "completed"
    assert not (await settle(app, days=6)).anything  # the after-sales window is still open
    assert (await settle(app, days=8)).released == 1

    nodes = (network.hub["id"], network.station["id"], network.point["id"])
    released = {
        f"shop:{shop}:available": PRICE - 99 - 199 - 100,
        "platform:available": 99,
        f"anchor:{anchor.id}:available": 199,
        f"station:{nodes[0]}:available": 33,
        f"station:{nodes[1]}:available": 33,
        f"station:{nodes[2]}:available": 34,  # nearest the buyer: what does not divide
        "clearing:payments": -PRICE,
    }
    assert {k: v for k, v in (await balances(app)).items() if v} == released

    # A refund after release comes out of the available accounts, commission included; the
    # stations keep their fees.
    await refund(network, order, 995)
    assert (await settle(app, days=8)).refunded == 1
    after = await balances(app)
    taken = {k: released[k] - after[k] for k in released if released[k] != after[k]}
    assert taken == {
        f"shop:{shop}:available": 838,
        "platform:available": 52,
        f"anchor:{anchor.id}:available": 105,
        "clearing:payments": -995,
    }
    report = await verified(app)
    assert report.money_in == {"CNY": PRICE - 995}
    assert report.held == {"CNY": PRICE - 995} and report.paid_out == {}


async def test_a_refund_before_release_voids_pending_legs_and_the_rest_is_released(
    app, network: Network, make_user, db: AsyncSession
) -> None:
    anchor, buyer = await make_user("anchor"), await make_user("buyer")
    await sold_by_anchor(network, db, anchor)
    order = await network.paid_order(buyer, quantity=2)
    shop = network.market.shop_id
    await refund(network, order, PRICE)  # one of the two, before anything is settled
    done = await settle(app)
    assert (done.captured, done.refunded) == (1, 1)  # the capture first, then its refund
    held = {k: v for k, v in (await balances(app)).items() if v}
    # Half of every part went back, commission with it; the odd fen by the largest remainder
    # (a tie, by name: the platform's).
    assert held == {
        f"shop:{shop}:pending": 3383 - 1691,
        "platform:pending": 199 - 100,
        f"anchor:{anchor.id}:pending": 398 - 199,
        "clearing:payments": -PRICE,
    }

    await delivered(network, order, buyer)
    confirmed = await network.market.client.post(
        f"/api/v1/orders/{order['id']}/confirm-receipt", headers=buyer.headers
    )
    assert confirmed.status_code == 200
    assert (await settle(app, days=8)).released == 1
    after = {k: v for k, v in (await balances(app)).items() if v}
    assert not any(k.endswith(":pending") for k in after)
    assert after[f"anchor:{anchor.id}:available"] == 199
    await verified(app)


async def test_a_whole_refund_before_release_leaves_nothing_to_release(
    app, network: Network, make_user
) -> None:
    buyer = await make_user("buyer")
    order = await network.paid_order(buyer)
    await settle(app)
    await refund(network, order, PRICE)
    assert (await settle(app, days=30)).refunded == 1
    assert not any((await balances(app)).values())
    async with app.state.engine.connect() as conn:
        entries = (await conn.execute(select(func.count()).select_from(JournalEntry))).scalar()
    assert entries == 2  # the capture and the refund: never released
    await verified(app)


async def test_receipt_is_confirmed_for_the_buyer_after_the_delay(
    app, network: Network, make_user
) -> None:
    buyer = await make_user("buyer")
    order = await network.paid_order(buyer)
    await delivered(network, order, buyer)
    assert (await settle(app, days=6)).confirmed == 0
    done = await settle(app, days=7.01)
    assert (done.confirmed, done.released) == (1, 0)  # the after-sales window starts now
    seen = await network.market.client.get(f"/api/v1/orders/{order['id']}", headers=buyer.headers)
    assert seen.json()["status"] == "completed"
    assert seen.json()["events"][-1]["note"] == settlement.AUTO_CONFIRMED


@pytest.mark.parametrize("days", [1, 8])
async def test_a_refund_may_be_asked_for_until_the_after_sales_window_closes(
    network: Network, make_user, db: AsyncSession, days: int
) -> None:
    buyer = await make_user("buyer")
    order = await network.paid_order(buyer)
    await delivered(network, order, buyer)
    client = network.market.client
    url = f"/api/v1/orders/{order['id']}"
    assert (await client.post(f"{url}/confirm-receipt", headers=buyer.headers)).is_success
    await db.execute(  # the receipt, ``days`` ago
        update(OrderEvent)
        .where(OrderEvent.order_id == order["id"], OrderEvent.to_status == "completed")
        .values(created_at=utcnow() - dt.timedelta(days=days))
    )
    await db.commit()
    asked = await client.post(
        f"{url}/refund-request", json={"reason": "坏果"}, headers=buyer.headers
    )
    assert asked.status_code == (200 if days < 7 else 409), asked.text


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
async def test_the_buyer_s_order_page_shows_where_the_money_goes(
    app, network: Network, make_user, db: AsyncSession, lang: str
) -> None:
    anchor, buyer = await make_user("anchor"), await make_user("buyer")
    await sold_by_anchor(network, db, anchor)
    order = await network.paid_order(buyer)
    client = network.market.client
    assert (await login(client, buyer.email)).status_code == 303
    headers = {"Accept-Language": lang}
    estimated = await client.get(f"/orders/{order['id']}", headers=headers)
    assert estimated.status_code == 200
    await settle(app)
    page = await client.get(f"/orders/{order['id']}", headers=headers)
    shown = _money_lines(page.text)
    # Of ¥19.90: the anchor's 10 %, one parcel's fee to the stations, the platform's 5 %.
    assert "¥15.92" in shown["shop"] and "¥1.99" in shown["anchor"], shown
    assert "¥1.00" in shown["stations"] and "¥0.99" in shown["platform"], shown
    word = {"en": "Where your money goes", "zh-CN": "您的钱去了哪里"}[lang]
    assert word in page.text
    assert _money_lines(estimated.text) == shown  # the estimate before settlement said the same


def _money_lines(page: str) -> dict[str, str]:
    return dict(re.findall(r'<li id="money-(\w+)">([^<]*)</li>', page))


async def test_a_payment_webhook_delivered_twice_posts_once(
    app, network: Network, make_user
) -> None:
    buyer = await make_user("buyer")
    order, payment = await checkout(network.market, buyer)
    await choose(network.market.client, payment, "succeed")
    body = json.dumps(
        {
            "id": "evt-twice",
            "type": "payment.succeeded",
            "payment_id": payment["id"],
            "amount_cents": payment["amount_cents"],
            "currency": "CNY",
        }
    ).encode()
    secret = sandbox.webhook_secret(app.state.settings.resolved_secret_key)
    for _ in range(2):
        signed = {"Sandbox-Signature": sandbox.sign(secret, body, int(time.time()))}
        answer = await network.market.client.post(
            WEBHOOK, content=body, headers=signed | {"Content-Type": "application/json"}
        )
        assert answer.status_code == 200
    assert await deliver(app) == 1  # the courier's own delivery of it: a third time
    await settle(app)
    await settle(app)
    async with app.state.engine.connect() as conn:
        kinds = (await conn.execute(select(JournalEntry.kind))).scalars().all()
    assert kinds == ["capture"]
    assert (await balances(app))["clearing:payments"] == -order["total_cents"]


async def test_operators_give_a_shop_a_split_of_its_own(
    app, network: Network, make_user, make_operator, client
) -> None:
    market, buyer = network.market, await make_user("buyer")
    operator = await make_operator()
    url = f"/api/v1/shops/{market.shop_id}/split-rule"
    seen = await client.get(url, headers=market.merchant.headers)
    assert seen.json() == {
        "shop_id": market.shop_id,
        "platform_fee_bp": 500,
        "station_fee_fen": 100,
        "coop_share_bp": 0,
        "coop_shop_id": None,
        "own": False,
    }
    rule = {"platform_fee_bp": 300, "coop_share_bp": 1000, "coop_shop_id": market.shop_id}
    for body, status in (
        (rule, 403),  # the merchant may not set their own fee
        ({"coop_share_bp": 100}, 422),  # a share needs its co-operative
        ({"coop_share_bp": 9600, "coop_shop_id": market.shop_id}, 422),  # 96 % + 5 %
        ({"coop_share_bp": 100, "coop_shop_id": 999_999}, 422),
        ({"platform_fee_bp": 10_001}, 422),
        ({"platform_fee_bp": "300"}, 422),
    ):
        headers = market.merchant.headers if status == 403 else operator.headers
        answer = await client.put(url, json=body, headers=headers)
        assert answer.status_code == status, (body, answer.text)
    assert (await client.get(url, headers=market.merchant.headers)).json()["own"] is False
    other = await make_user("other-merchant")
    assert (await client.get(url, headers=other.headers)).status_code in (403, 404)

    made = await client.put(url, json=rule, headers=operator.headers)
    assert made.status_code == 200, made.text
    assert made.json()["own"] is True and made.json()["station_fee_fen"] == 100
    await network.paid_order(buyer)
    await settle(app)
    held = await balances(app)
    assert held["platform:pending"] == 59  # 3 % of 19.90
    assert held[f"coop:{market.shop_id}:pending"] == 199  # 10 %


async def test_the_buyer_confirms_receipt_on_the_order_page(
    app, network: Network, make_user
) -> None:
    buyer = await make_user("buyer")
    order = await network.paid_order(buyer)
    client = network.market.client
    assert (await login(client, buyer.email)).status_code == 303
    url = f"/orders/{order['id']}"
    assert 'id="confirm-receipt"' not in (await client.get(url)).text  # paid, not yet sent
    await delivered(network, order, buyer)
    page = await client.get(url)
    assert 'id="confirm-receipt"' in page.text
    confirmed = await client.post(f"{url}/confirm-receipt", data={"csrf_token": csrf_of(page)})
    assert confirmed.status_code == 303 and confirmed.headers["location"] == url
    after = await client.get(url)
    assert 'id="confirm-receipt"' not in after.text
    seen = await client.get(f"/api/v1/orders/{order['id']}", headers=buyer.headers)
    assert seen.json()["status"] == "completed"
    again = await client.post(f"{url}/confirm-receipt", data={"csrf_token": csrf_of(page)})
    assert again.status_code == 409  # completed already: nothing changes
