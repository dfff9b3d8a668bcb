"""The order's contract: what a POST answers is the order, and both routes answer alike.

- The 201 of ``POST /api/v1/orders`` (built from the decision, without reading the order
  back) equals ``GET /api/v1/orders/{id}`` and the replay of the same request.
- The flash-order route in front of FastAPI (``orders/fastpath``) and FastAPI's own route
  answer the same request alike: the same status, body and headers, for an order, a replay
  and every refusal the fast path words itself. The fast path is driven alone here, with
  nothing behind it, so a request it passed on would fail the test.
"""

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from originlive.orders.fastpath import FlashOrderRoute
from tests.conftest import Actor
from tests.orders.conftest import ADDRESS, Market, new_key


async def test_the_answer_is_the_order_and_its_replay(
    market: Market, make_user, client: httpx.AsyncClient
) -> None:
    offer = await market.offer(quantity=10, per_buyer_limit=3)
    buyer = await make_user("buyer")
    lines = [{"offer_id": offer["id"], "quantity": 2}, {"sku_id": market.sku_id, "quantity": 1}]
    posted = await market.order(buyer, lines, key="press-1")
    assert posted.status_code == 201, posted.text
    got = await client.get(f"/api/v1/orders/{posted.json()['id']}", headers=buyer.headers)
    assert got.status_code == 200
    replayed = await market.order(buyer, lines, key="press-1")
    assert replayed.status_code == 201 and replayed.headers["idempotent-replayed"] == "true"
    assert posted.json() == got.json() == replayed.json()
    assert "idempotent-replayed" not in posted.headers


def _fast_only(app: Any) -> httpx.AsyncClient:
    async def nothing_behind(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError(f"the fast path passed {scope['path']} on")

    route = FlashOrderRoute(nothing_behind, state=app.state)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=route), base_url="http://t")


def _stack_only(app: Any) -> httpx.AsyncClient:
    async def stack(scope: Scope, receive: Receive, send: Send) -> None:
        await FastAPI.__call__(app, scope, receive, send)  # FastAPI's routing, no fast path

    return httpx.AsyncClient(transport=httpx.ASGITransport(app=stack), base_url="http://t")


def _comparable(response: httpx.Response) -> tuple[int, Any, dict[str, str]]:
    """Status, body and the headers a client reads, with what differs between two orders
    (their ids and moments) left out of a 201."""
    body = response.json()
    if response.status_code == 201:
        body = {k: v for k, v in body.items() if k not in ("id", "created_at", "expires_at")}
        body.pop("updated_at")
        body["items"] = [{k: v for k, v in i.items() if k != "id"} for i in body["items"]]
        body["events"] = [
            {k: v for k, v in e.items() if k not in ("id", "created_at")} for e in body["events"]
        ]
    headers = {
        k: v
        for k, v in response.headers.items()
        if k in ("content-type", "idempotent-replayed", "retry-after")
    }
    return response.status_code, body, headers


@pytest.mark.parametrize(
    "case",
    ["placed", "replayed", "sold-out", "over-limit", "ended", "no-offer", "region", "key-reused"],
)
async def test_the_fast_path_answers_as_the_route(
    app, market: Market, make_user, client: httpx.AsyncClient, case: str
) -> None:
    buyer: Actor = await make_user("buyer")
    offer = await market.offer(quantity=10, per_buyer_limit=4)
    line = {"offer_id": offer["id"], "quantity": 1}
    body: dict[str, Any] = {"items": [line], "address": ADDRESS}
    keys = [new_key(), new_key()]  # each route its own key, unless the case says otherwise
    if case == "replayed":
        first = await market.order(buyer, [line], key="same")
        assert first.status_code == 201
        keys = ["same", "same"]
    elif case == "key-reused":
        assert (await market.order(buyer, [line], key="same")).status_code == 201
        body["items"] = [line | {"quantity": 2}]
        keys = ["same", "same"]
    elif case == "sold-out":
        small = await market.offer(quantity=1, per_buyer_limit=1)
        other = await make_user("other")
        assert (await market.order(other, [{"offer_id": small["id"], "quantity": 1}])).is_success
        body["items"] = [{"offer_id": small["id"], "quantity": 1}]
    elif case == "over-limit":
        body["items"] = [line | {"quantity": 5}]
    elif case == "ended":
        ended = await client.post(
            f"/api/v1/offers/{offer['id']}/end", headers=market.merchant.headers
        )
        assert ended.status_code == 200
    elif case == "no-offer":
        body["items"] = [{"offer_id": 999_999, "quantity": 1}]
    elif case == "region":
        body["address"] = ADDRESS | {"region_code": "990000"}

    answers = []
    for route, key in zip((_fast_only(app), _stack_only(app)), keys, strict=True):
        async with route as c:
            headers = buyer.headers | {"Idempotency-Key": key}
            answers.append(await c.post("/api/v1/orders", json=body, headers=headers))
    fast, stack = (_comparable(a) for a in answers)
    assert fast == stack
    expected = {"placed": 201, "replayed": 201, "key-reused": 422, "no-offer": 422}
    assert fast[0] == expected.get(case, 422 if case == "region" else 409), answers[0].text


async def test_a_line_sold_in_a_session_carries_its_attribution(
    market: Market, make_user, client: httpx.AsyncClient
) -> None:
    merchant = market.merchant
    live = await client.post(
        "/api/v1/live-sessions",
        json={"shop_id": market.shop_id, "title": "猕猴桃直播"},
        headers=merchant.headers,
    )
    assert live.status_code == 201, live.text
    session_id = live.json()["id"]
    offer = await client.post(
        f"/api/v1/live-sessions/{session_id}/offers",
        json={"sku_id": market.sku_id, "price_cents": 990, "quantity": 5, "per_buyer_limit": 2},
        headers=merchant.headers,
    )
    assert offer.status_code == 201, offer.text
    assert offer.json()["anchor_id"] == merchant.id
    buyer = await make_user("buyer")
    lines = [{"offer_id": offer.json()["id"], "quantity": 1}, {"sku_id": market.sku_id}]
    posted = await market.order(buyer, lines)
    assert posted.status_code == 201, posted.text
    sold, plain = posted.json()["items"]
    assert sold["live_session_id"] == session_id and sold["anchor_id"] == merchant.id
    # The shop's own anchor earns no commission: no plan, no rate. A plain line: nobody.
    assert sold["plan_id"] is None and sold["commission_bp"] is None
    assert all(plain[k] is None for k in ("live_session_id", "anchor_id", "plan_id"))
    got = await client.get(f"/api/v1/orders/{posted.json()['id']}", headers=buyer.headers)
    assert got.json() == posted.json()
