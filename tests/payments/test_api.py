"""Payments through the sandbox gateway: checkout, signed webhooks, late payments, refunds."""

import json
import time
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select, update

from originlive.db import utcnow
from originlive.orders import stock
from originlive.payments import sandbox
from originlive.payments.models import PaymentEvent, Refund, SandboxWebhook, WebhookReceipt
from tests.orders.conftest import Market, units

WEBHOOK = "/api/v1/payments/sandbox/webhook"


@pytest.fixture
def secret(app) -> bytes:
    return sandbox.webhook_secret(app.state.settings.resolved_secret_key)


async def deliver(app, *, url: str = WEBHOOK) -> int:
    """Run the sandbox's courier once, posting to the app in-process."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await sandbox.deliver_due(
            app.state.engine,
            client,
            url=url,
            secret=sandbox.webhook_secret(app.state.settings.resolved_secret_key),
        )


async def checkout(market: Market, buyer, *, quantity: int = 1, offer=None) -> tuple[dict, dict]:
    """An order of the offer and a pending sandbox payment for it."""
    offer = offer or await market.offer(quantity=10, per_buyer_limit=5)
    order = (await market.order(buyer, [{"offer_id": offer["id"], "quantity": quantity}])).json()
    payment = await market.client.post(
        f"/api/v1/orders/{order['id']}/payments",
        json={"provider": "sandbox"},
        headers=buyer.headers,
    )
    assert payment.status_code == 201, payment.text
    return order, payment.json()


async def choose(client: httpx.AsyncClient, payment: dict, outcome: str) -> httpx.Response:
    path = httpx.URL(payment["checkout_url"]).path
    return await client.post(path, data={"outcome": outcome})


async def order_of(market: Market, buyer, order_id: int) -> dict:
    return (await market.client.get(f"/api/v1/orders/{order_id}", headers=buyer.headers)).json()


async def test_pay_in_the_sandbox(app, market: Market, make_user, db) -> None:
    buyer = await make_user("buyer")
    order, payment = await checkout(market, buyer, quantity=2)
    assert payment["status"] == "pending" and payment["amount_cents"] == order["total_cents"]
    page = await market.client.get(httpx.URL(payment["checkout_url"]).path)
    assert page.status_code == 200 and "¥39.80" in page.text
    # Asking again returns the same open payment.
    again = await market.client.post(
        f"/api/v1/orders/{order['id']}/payments", json={}, headers=buyer.headers
    )
    assert again.json()["id"] == payment["id"]

    chosen = await choose(market.client, payment, "succeed")
    assert chosen.status_code == 200 and "recorded" in chosen.text
    assert await deliver(app) == 1
    paid = await order_of(market, buyer, order["id"])
    assert paid["status"] == "paid"
    assert [e["to_status"] for e in paid["events"]] == ["pending_payment", "paid"]
    shown = await market.client.get(f"/api/v1/payments/{payment['id']}", headers=buyer.headers)
    assert shown.json()["status"] == "succeeded" and shown.json()["checkout_url"] is None
    statuses = (await db.scalars(select(PaymentEvent.to_status).order_by(PaymentEvent.id))).all()
    assert [s.value for s in statuses] == ["pending", "succeeded"]
    # A second choice changes nothing.
    await choose(market.client, payment, "fail")
    assert await deliver(app) == 0
    assert (await order_of(market, buyer, order["id"]))["status"] == "paid"


async def test_webhooks_are_idempotent_and_signed(
    app, market: Market, make_user, db, secret: bytes
) -> None:
    buyer = await make_user("buyer")
    order, payment = await checkout(market, buyer)
    body = json.dumps(
        {
            "id": "evt_once",
            "type": "payment.succeeded",
            "payment_id": payment["id"],
            "amount_cents": payment["amount_cents"],
            "currency": "CNY",
        }
    ).encode()

    async def post(data: bytes, signature: str) -> httpx.Response:
        headers = {"Sandbox-Signature": signature, "Content-Type": "application/json"}
        return await market.client.post(WEBHOOK, content=data, headers=headers)

    now = int(time.time())
    assert (await post(body, sandbox.sign(b"not our secret", body, now))).status_code == 400
    assert (await post(body, sandbox.sign(secret, body, now - 3600))).status_code == 400
    assert (
        await post(body.replace(b"succeeded", b"failed"), sandbox.sign(secret, body, now))
    ).status_code == 400
    assert (await post(body, "")).status_code == 400
    assert await db.scalar(select(func.count()).select_from(WebhookReceipt)) == 0

    first = await post(body, sandbox.sign(secret, body, now))
    assert first.status_code == 200 and first.json() == {"result": "applied"}
    second = await post(body, sandbox.sign(secret, body, now))
    assert second.json() == {"result": "duplicate"}
    paid = await order_of(market, buyer, order["id"])
    assert [e["to_status"] for e in paid["events"]] == ["pending_payment", "paid"]
    assert await db.scalar(select(func.count()).select_from(PaymentEvent)) == 2


async def test_a_signed_event_no_payment_can_match_is_a_4xx(
    app, market: Market, make_user, db, secret: bytes
) -> None:
    buyer = await make_user("buyer")
    _order, payment = await checkout(market, buyer)
    event = {"id": "evt_edge", "type": "payment.succeeded", "payment_id": payment["id"],
             "amount_cents": payment["amount_cents"], "currency": "CNY"}  # fmt: skip
    refused = [
        json.dumps(event | {"payment_id": 2**70}),
        json.dumps(event | {"payment_id": 2**31}),
        json.dumps(event | {"payment_id": -1}),
        json.dumps(event | {"payment_id": str(payment["id"])}),
        json.dumps(event | {"amount_cents": 2**70 + 0.5}),
        json.dumps(event | {"amount_cents": "１９９０"}),
        json.dumps(event | {"id": "e" * 65}),  # longer than a receipt's key
        json.dumps(event | {"note": json.loads("[" * 33 + "]" * 33)}),  # past the depth limit
        "[" * 5000 + "]" * 5000,  # json.loads: RecursionError
        json.dumps(event | {"id": "evt_\ud800"}),  # a lone surrogate, which no column stores
        json.dumps([event]),
    ]
    now = int(time.time())
    for text in refused:
        body = text.encode()
        headers = {"Sandbox-Signature": sandbox.sign(secret, body, now)}
        response = await market.client.post(WEBHOOK, content=body, headers=headers)
        assert 400 <= response.status_code < 500, (text[:80], response.text)
    for t in ("²", "١٧٠٠٠٠٠٠٠٠", ""):  # the signature's time: ASCII digits only
        body = json.dumps(event).encode()
        signature = sandbox.sign(secret, body, now).replace(f"t={now}", f"t={t}")
        response = await market.client.post(
            WEBHOOK, content=body, headers={"Sandbox-Signature": signature.encode()}
        )
        assert response.status_code == 400, (t, response.text)
    assert await db.scalar(select(func.count()).select_from(WebhookReceipt)) == 0
    shown = await market.client.get(f"/api/v1/payments/{payment['id']}", headers=buyer.headers)
    assert shown.json()["status"] == "pending"


async def test_failed_payment_leaves_the_order_open(app, market: Market, make_user) -> None:
    buyer = await make_user("buyer")
    order, payment = await checkout(market, buyer)
    await choose(market.client, payment, "fail")
    assert await deliver(app) == 1
    assert (await order_of(market, buyer, order["id"]))["status"] == "pending_payment"
    retry = await market.client.post(
        f"/api/v1/orders/{order['id']}/payments", json={}, headers=buyer.headers
    )
    assert retry.status_code == 201 and retry.json()["id"] != payment["id"]


async def test_payment_after_expiry_is_refunded(app, market: Market, make_user, db) -> None:
    buyer = await make_user("buyer")
    offer = await market.offer(quantity=3, per_buyer_limit=3)
    order, payment = await checkout(market, buyer, offer=offer)
    later = utcnow() + timedelta(hours=1)
    assert await app.state.order_writer.run(stock.expire_due, now=later) == [order["id"]]
    before = await units(db, market.sku_id)
    await choose(market.client, payment, "succeed")
    assert await deliver(app) == 1
    assert (await order_of(market, buyer, order["id"]))["status"] == "expired"
    shown = await market.client.get(f"/api/v1/payments/{payment['id']}", headers=buyer.headers)
    assert shown.json()["status"] == "refunded"
    assert shown.json()["refunded_cents"] == payment["amount_cents"]
    refund = (await db.scalars(select(Refund))).one()
    assert refund.amount_cents == payment["amount_cents"] and refund.actor_id is None
    assert await units(db, market.sku_id) == before  # the units stay on sale: never sold twice


async def test_refunds(app, market: Market, make_user, make_operator) -> None:
    buyer, stranger = await make_user("buyer"), await make_user("stranger")
    order, payment = await checkout(market, buyer, quantity=2)
    url = f"/api/v1/orders/{order['id']}/refunds"
    early = await market.client.post(
        url, json={"amount_cents": 100, "reason": "x"}, headers=market.merchant.headers
    )
    assert early.status_code == 409  # not paid yet
    await choose(market.client, payment, "succeed")
    await deliver(app)

    asked = await market.client.post(
        f"/api/v1/orders/{order['id']}/refund-request",
        json={"reason": "少了一个"},
        headers=buyer.headers,
    )
    assert asked.status_code == 200 and asked.json()["status"] == "refund_requested"
    total = order["total_cents"]
    cases = [
        ({"amount_cents": 1000, "reason": "x"}, stranger.headers, 404),
        ({"amount_cents": 1000, "reason": "x"}, buyer.headers, 404),
        ({"amount_cents": total + 1, "reason": "x"}, market.merchant.headers, 422),
        ({"amount_cents": 0, "reason": "x"}, market.merchant.headers, 422),
        ({"amount_cents": 1.5, "reason": "x"}, market.merchant.headers, 422),
    ]
    for body, headers, status in cases:
        assert (await market.client.post(url, json=body, headers=headers)).status_code == status
    part = await market.client.post(
        url, json={"amount_cents": 990, "reason": "少了一个"}, headers=market.merchant.headers
    )
    assert part.status_code == 201, part.text
    assert (await order_of(market, buyer, order["id"]))["status"] == "refund_requested"
    operator = await make_operator()
    rest = await market.client.post(
        url, json={"amount_cents": total - 990, "reason": "整单退"}, headers=operator.headers
    )
    assert rest.status_code == 201
    done = await order_of(market, buyer, order["id"])
    assert done["status"] == "refunded" and done["refunded_cents"] == total
    shown = await market.client.get(f"/api/v1/payments/{payment['id']}", headers=buyer.headers)
    assert shown.json()["status"] == "refunded"
    more = await market.client.post(
        url, json={"amount_cents": 1, "reason": "x"}, headers=market.merchant.headers
    )
    assert more.status_code == 409


async def test_gateway_retries_until_acknowledged(app, market: Market, make_user, db) -> None:
    buyer = await make_user("buyer")
    order, payment = await checkout(market, buyer)
    await choose(market.client, payment, "succeed")
    assert await deliver(app, url="/api/v1/payments/nowhere/webhook") == 0
    row = (await db.scalars(select(SandboxWebhook))).one()
    assert row.attempts == 1 and row.delivered_at is None and row.last_error.startswith("HTTP 404")
    assert row.next_at > utcnow()
    assert await deliver(app) == 0  # not due yet
    await db.execute(update(SandboxWebhook).values(next_at=utcnow()))
    await db.commit()
    assert await deliver(app) == 1
    assert (await order_of(market, buyer, order["id"]))["status"] == "paid"


async def test_only_the_buyer_pays(market: Market, make_user) -> None:
    buyer, stranger = await make_user("buyer"), await make_user("stranger")
    offer = await market.offer()
    order = (await market.order(buyer, [{"offer_id": offer["id"]}])).json()
    url = f"/api/v1/orders/{order['id']}/payments"
    assert (await market.client.post(url, json={}, headers=stranger.headers)).status_code == 404
    assert (await market.client.post(url, json={})).status_code == 401
    bad = await market.client.post(url, json={"provider": "cash"}, headers=buyer.headers)
    assert bad.status_code == 422
    assert (await market.client.get("/sandbox/checkout/" + "x" * 32)).status_code == 404


async def test_only_the_buyer_is_given_the_checkout_url(
    market: Market, make_user, make_operator
) -> None:
    """The checkout URL pays the order for whoever holds it: the shop and operators see the
    payment, never the URL."""
    buyer = await make_user("buyer")
    _order, payment = await checkout(market, buyer)
    assert payment["checkout_url"]
    url = f"/api/v1/payments/{payment['id']}"
    operator = await make_operator()
    for reader in (market.merchant, operator):
        seen = await market.client.get(url, headers=reader.headers)
        assert seen.status_code == 200, seen.text
        assert seen.json()["status"] == "pending" and seen.json()["checkout_url"] is None
    mine = await market.client.get(url, headers=buyer.headers)
    assert mine.json()["checkout_url"] == payment["checkout_url"]
