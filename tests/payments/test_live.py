"""The whole payment round trip over real HTTP: the gateway calls the running server back."""

import asyncio

import httpx

from tests.conftest import PASSWORD
from tests.crowd import make_buyers
from tests.orders.conftest import ADDRESS
from tests.orders.test_concurrency import open_offer


async def test_checkout_then_signed_webhook(start_server, database_url: str) -> None:
    url = await start_server(ORIGINLIVE_SWEEP_INTERVAL_SECONDS="0.5")
    async with httpx.AsyncClient(base_url=url, timeout=30) as api:
        offer = await open_offer(api)
        (token,) = await make_buyers(database_url, 1, password=PASSWORD)
        buyer = {"Authorization": f"Bearer {token}"}
        order = await api.post(
            "/api/v1/orders",
            json={"items": [{"offer_id": offer["id"], "quantity": 1}], "address": ADDRESS},
            headers=buyer | {"Idempotency-Key": "live-1"},
        )
        assert order.status_code == 201, order.text
        order_id = order.json()["id"]
        payment = await api.post(f"/api/v1/orders/{order_id}/payments", json={}, headers=buyer)
        checkout = payment.json()["checkout_url"]
        assert checkout.startswith(url + "/sandbox/checkout/")
        assert (await api.post(checkout, data={"outcome": "succeed"})).status_code == 200
        for _ in range(100):  # the gateway's courier posts the signed event to the server
            status = (await api.get(f"/api/v1/orders/{order_id}", headers=buyer)).json()["status"]
            if status == "paid":
                break
            await asyncio.sleep(0.1)
        assert status == "paid"
