"""Line-ups on both databases: an anchor's own session carrying two shops' goods, each order
line attributed to the session, the anchor, the plan and its rate; and every bad input a 4xx
that writes nothing."""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from originlive.affiliates.models import LineupItem
from originlive.orders.models import FlashOffer, OrderItem
from tests.accounts.test_pages import HTML
from tests.affiliates.conftest import Library, MakeActor
from tests.catalog.conftest import Catalog
from tests.conftest import Actor
from tests.orders.conftest import units

CHINESE = HTML | {"Accept-Language": "zh-CN,zh;q=0.9"}


@dataclass
class Stage:
    """An anchor's own session; the market's shop with an auto-approving plan, and a second
    shop whose plan waits for its merchant; the anchor joined both."""

    library: Library
    anchor: Actor
    session_id: int
    second: Actor  # the second shop's merchant
    second_shop_id: int
    second_sku_id: int
    auto_plan: dict[str, Any]
    asked_plan: dict[str, Any]

    @property
    def client(self) -> httpx.AsyncClient:
        return self.library.client

    async def propose(
        self, sku_id: int, *, by: Actor | None = None, session_id: int | None = None, **fields: Any
    ) -> httpx.Response:
        body = {"sku_id": sku_id, "price_cents": 2590, "quantity": 5, "per_buyer_limit": 2}
        return await self.client.post(
            f"/api/v1/affiliates/sessions/{session_id or self.session_id}/lineup",
            json=body | fields,
            headers=(by or self.anchor).headers,
        )

    async def decide(self, item_id: int, verb: str, by: Actor) -> httpx.Response:
        return await self.client.post(
            f"/api/v1/affiliates/lineup/{item_id}/{verb}", headers=by.headers
        )


async def _own_session(client: httpx.AsyncClient, anchor: Actor, **fields: Any) -> dict[str, Any]:
    made = await client.post(
        "/api/v1/live-sessions", json={"title": "好物连连看"} | fields, headers=anchor.headers
    )
    assert made.status_code == 201, made.text
    return dict(made.json())


@pytest.fixture
async def stage(
    library: Library, make_user: MakeActor, make_operator: Callable[[], Awaitable[Actor]]
) -> Stage:
    anchor = await library.anchor("主播小满")
    live = await _own_session(library.client, anchor)
    catalog = Catalog(library.client, make_operator)
    second = await make_user("merchant-2")
    shop = await catalog.shop(second)
    product = await catalog.product(second, shop["id"], title="富平柿饼 2斤装")
    auto_plan = await library.plan(name="自动上架", rate_bp=1200, auto_approve=True)
    asked = await library.client.post(
        f"/api/v1/affiliates/shops/{shop['id']}/plans",
        json={"name": "柿饼推广", "rate_bp": 800},
        headers=second.headers,
    )
    assert asked.status_code == 201, asked.text
    for plan_id in (auto_plan["id"], asked.json()["id"]):
        assert (await library.join(anchor, plan_id)).status_code == 201
    return Stage(
        library, anchor, live["id"], second, shop["id"], product["skus"][0]["id"],
        auto_plan, asked.json(),
    )  # fmt: skip


async def _counts(stage: Stage) -> tuple[int, int]:
    db = stage.library.db
    db.expire_all()
    items = await db.scalar(select(func.count()).select_from(LineupItem))
    offers = await db.scalar(select(func.count()).select_from(FlashOffer))
    return int(items or 0), int(offers or 0)


async def test_an_anchor_session_sells_two_shops_goods_each_line_attributed(
    stage: Stage, make_user: MakeActor
) -> None:
    library, market = stage.library, stage.library.market
    shown = await stage.client.get(f"/api/v1/live-sessions/{stage.session_id}")
    assert shown.status_code == 200, shown.text
    assert shown.json()["shop_id"] is None and shown.json()["anchor_name"] == "主播小满"

    # The auto-approving plan's product is in the session at once, its units on offer.
    auto = await stage.propose(market.sku_id)
    assert auto.status_code == 201, auto.text
    assert auto.json()["status"] == "approved" and auto.json()["rate_bp"] == 1200
    assert auto.json()["plan_id"] == stage.auto_plan["id"] and auto.json()["decided_by"] is None
    assert (await units(library.db, market.sku_id))["offered"] == 5

    # The other waits for its shop, which sees it among its waiting items and approves it.
    asked = await stage.propose(stage.second_sku_id, price_cents=1500)
    assert asked.status_code == 201, asked.text
    assert asked.json()["status"] == "proposed" and asked.json()["offer_id"] is None
    waiting = await stage.client.get(
        f"/api/v1/affiliates/shops/{stage.second_shop_id}/lineup", headers=stage.second.headers
    )
    assert [i["id"] for i in waiting.json()] == [asked.json()["id"]]
    approved = await stage.decide(asked.json()["id"], "approve", stage.second)
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved" and approved.json()["rate_bp"] == 800
    assert approved.json()["decided_by"] == stage.second.id

    lineup = await stage.client.get(
        f"/api/v1/affiliates/sessions/{stage.session_id}/lineup", headers=stage.anchor.headers
    )
    assert {i["status"] for i in lineup.json()} == {"approved"} and len(lineup.json()) == 2
    offers = [auto.json()["offer_id"], approved.json()["offer_id"]]

    # The anchor pins each with the session's own route; a buyer orders both.
    for offer_id in offers:
        pinned = await stage.client.post(
            f"/api/v1/live-sessions/{stage.session_id}/offers/{offer_id}/pin",
            headers=stage.anchor.headers,
        )
        assert pinned.status_code == 200, pinned.text
    buyer = await make_user("buyer")
    for offer_id in offers:
        placed = await market.order(buyer, [{"offer_id": offer_id, "quantity": 2}])
        assert placed.status_code == 201, placed.text

    library.db.expire_all()
    lines = (
        await library.db.execute(
            select(
                OrderItem.offer_id, OrderItem.live_session_id, OrderItem.anchor_id,
                OrderItem.plan_id, OrderItem.commission_bp,
            ).where(OrderItem.offer_id.in_(offers))
        )
    ).all()  # fmt: skip
    assert sorted(tuple(line) for line in lines) == sorted(
        [
            (offers[0], stage.session_id, stage.anchor.id, stage.auto_plan["id"], 1200),
            (offers[1], stage.session_id, stage.anchor.id, stage.asked_plan["id"], 800),
        ]
    )


async def test_bad_line_up_inputs_are_refused_and_write_nothing(
    stage: Stage, make_user: MakeActor
) -> None:
    library = stage.library
    stranger = await library.anchor("别的主播")
    their_session = await _own_session(library.client, stranger)
    before = await _counts(stage)

    refused = [
        # Their own session, but a shop whose plans they never joined.
        (
            await stage.propose(stage.second_sku_id, by=stranger, session_id=their_session["id"]),
            403,
        ),
        # A session not theirs: the stranger's, and (for the stranger) the anchor's.
        (await stage.propose(library.market.sku_id, session_id=their_session["id"]), 403),
        (await stage.propose(stage.second_sku_id, by=stranger), 403),
        (await stage.propose(stage.second_sku_id, price_cents=0), 422),
        (await stage.propose(stage.second_sku_id, price_cents=-100), 422),
        (await stage.propose(stage.second_sku_id, quantity=0), 422),
        (await stage.propose(stage.second_sku_id, price_cents="12"), 422),
        (await stage.propose(2_000_000_000), 422),  # no such SKU
        (await stage.propose(stage.second_sku_id, by=await make_user("buyer")), 403),
    ]
    for response, code in refused:
        assert response.status_code == code, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
    assert await _counts(stage) == before

    # Approving twice, or by another shop's merchant, or rejecting once decided.
    asked = await stage.propose(stage.second_sku_id)
    assert asked.status_code == 201, asked.text
    item_id = asked.json()["id"]
    assert (await stage.decide(item_id, "approve", library.merchant)).status_code == 404
    assert (await stage.decide(item_id, "reject", library.merchant)).status_code == 404
    assert (await stage.decide(item_id, "approve", stage.anchor)).status_code == 404
    assert (await stage.decide(item_id, "approve", stage.second)).status_code == 200
    before = await _counts(stage)
    assert (await stage.decide(item_id, "approve", stage.second)).status_code == 409
    assert (await stage.decide(item_id, "reject", stage.second)).status_code == 409
    assert await _counts(stage) == before

    # A rejected item opens nothing, and stays rejected.
    turned = await stage.propose(stage.second_sku_id)
    rejected = await stage.decide(turned.json()["id"], "reject", stage.second)
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    assert (await stage.decide(turned.json()["id"], "approve", stage.second)).status_code == 409

    # Once the session has ended, nothing more goes in, nor is approved.
    waiting = await stage.propose(stage.second_sku_id)
    ended = await library.client.post(
        f"/api/v1/live-sessions/{stage.session_id}/end", headers=stage.anchor.headers
    )
    assert ended.status_code == 200, ended.text
    before = await _counts(stage)
    assert (await stage.propose(stage.second_sku_id)).status_code == 409
    assert (await stage.decide(waiting.json()["id"], "approve", stage.second)).status_code == 409
    assert await _counts(stage) == before


async def test_an_anchor_runs_their_own_session_and_only_anchors_have_one(
    stage: Stage, make_user: MakeActor
) -> None:
    client = stage.client
    buyer = await make_user("buyer")
    refused = await client.post(
        "/api/v1/live-sessions", json={"title": "我的直播"}, headers=buyer.headers
    )
    assert refused.status_code == 403, refused.text
    # Offers of an anchor's own session come through its line-up only.
    by_hand = await client.post(
        f"/api/v1/live-sessions/{stage.session_id}/offers",
        json={"sku_id": stage.library.market.sku_id, "price_cents": 100, "quantity": 1},
        headers=stage.anchor.headers,
    )
    assert by_hand.status_code == 422, by_hand.text
    # The shop's merchant does not run it; its anchor does, and it is listed for everyone.
    base = f"/api/v1/live-sessions/{stage.session_id}"
    key = await client.post(f"{base}/stream-key", headers=stage.second.headers)
    assert key.status_code == 403
    started = await client.post(f"{base}/start", headers=stage.anchor.headers)
    assert started.status_code == 200 and started.json()["status"] == "live"
    assert "stream_key" in started.json()
    listed = await client.get("/api/v1/live-sessions")
    mine = [s for s in listed.json()["items"] if s["id"] == stage.session_id]
    assert mine and mine[0]["shop_name"] is None and mine[0]["anchor_name"] == "主播小满"
    page = await client.get(f"/live/{stage.session_id}")
    assert page.status_code == 200 and "主播小满" in page.text
    home = await client.get("/")
    assert home.status_code == 200 and "好物连连看" in home.text


async def test_the_line_up_pages_in_english_and_chinese(
    stage: Stage, make_operator: Callable[[], Awaitable[Actor]]
) -> None:
    client, anchor, second = stage.client, stage.anchor, stage.second
    mine = await client.get("/anchor/live", headers=anchor.headers | HTML)
    assert mine.status_code == 200 and "好物连连看" in mine.text and "My sessions" in mine.text
    made = await client.post(
        "/anchor/live", data={"title": "第二场"}, headers=anchor.headers | HTML
    )
    assert made.status_code == 303, made.text

    url = f"/anchor/live/{stage.session_id}/lineup"
    page = await client.get(url, headers=anchor.headers | HTML)
    assert page.status_code == 200, page.text
    assert "富平柿饼 2斤装" in page.text and 'id="lineup-form"' in page.text
    chinese = await client.get(url, headers=anchor.headers | CHINESE)
    assert "选品清单" in chinese.text and "提交商品" in chinese.text

    form = {"sku_id": str(stage.second_sku_id), "price": "15", "quantity": "3",
            "per_buyer_limit": "1"}  # fmt: skip
    bad = await client.post(url, data=form | {"price": "0"}, headers=anchor.headers | HTML)
    assert bad.status_code == 422 and "above 0" in bad.text
    proposed = await client.post(url, data=form, headers=anchor.headers | HTML)
    assert proposed.status_code == 303 and proposed.headers["location"].endswith("=proposed")
    page = await client.get(url, headers=anchor.headers | CHINESE)
    assert "等待店铺确认" in page.text and "¥15.00" in page.text

    plans = f"/console/shops/{stage.second_shop_id}/plans"
    waiting = await client.get(plans, headers=second.headers | HTML)
    assert "Products anchors proposed for their sessions" in waiting.text
    (item_id,) = [i["id"] for i in (await stage.client.get(
        f"/api/v1/affiliates/shops/{stage.second_shop_id}/lineup", headers=second.headers
    )).json()]  # fmt: skip
    assert f'id="lineup-{item_id}"' in waiting.text
    approved = await client.post(f"/console/lineup/{item_id}/approve", headers=second.headers)
    assert approved.status_code == 303 and approved.headers["location"].endswith(
        "?done=lineup_approved"
    )
    page = await client.get(url, headers=anchor.headers | HTML)
    assert "In the session" in page.text and "8%" in page.text
    control = await client.get(f"/console/live/{stage.session_id}", headers=anchor.headers | HTML)
    assert control.status_code == 200 and 'id="lineup-link"' in control.text
    assert 'id="offer-form"' not in control.text
    moderation = await client.get(f"/operator/live/{stage.session_id}", headers=anchor.headers)
    assert moderation.status_code == 200 and "主播小满" in moderation.text
    started = await client.post(
        f"/api/v1/live-sessions/{stage.session_id}/start", headers=anchor.headers
    )
    assert started.status_code == 200, started.text
    operator = await make_operator()  # the operators' list shows live and ended rooms
    rooms = await client.get("/operator/live", headers=operator.headers | HTML)
    assert rooms.status_code == 200 and f'id="session-{stage.session_id}"' in rooms.text


async def test_two_approvals_at_once_open_one_offer(stage: Stage) -> None:
    asked = await stage.propose(stage.second_sku_id)
    assert asked.status_code == 201, asked.text
    before = await _counts(stage)
    answers = await asyncio.gather(
        *(stage.decide(asked.json()["id"], "approve", stage.second) for _ in range(3))
    )
    assert sorted(a.status_code for a in answers) == [200, 409, 409]
    assert await _counts(stage) == (before[0], before[1] + 1)
    assert (await units(stage.library.db, stage.second_sku_id))["offered"] == 5


async def test_a_stopped_shop_leaves_the_anchor_session_running_without_its_pin(
    stage: Stage, make_operator: Callable[[], Awaitable[Actor]]
) -> None:
    asked = await stage.propose(stage.second_sku_id)
    offer_id = (await stage.decide(asked.json()["id"], "approve", stage.second)).json()["offer_id"]
    base = f"/api/v1/live-sessions/{stage.session_id}"
    pinned = await stage.client.post(f"{base}/offers/{offer_id}/pin", headers=stage.anchor.headers)
    assert pinned.status_code == 200, pinned.text
    operator = await make_operator()
    stopped = await stage.client.post(
        f"/api/v1/shops/{stage.second_shop_id}/reject",
        json={"reason": "冒用产地"},
        headers=operator.headers,
    )
    assert stopped.status_code == 200, stopped.text
    shown = (await stage.client.get(base)).json()
    assert shown["status"] == "scheduled" and shown["pinned_offer"] is None
