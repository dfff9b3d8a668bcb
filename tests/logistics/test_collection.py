"""Collection runs over the API: a co-operative books its growers, the points weigh and grade
what each brings, the hub receives each point's produce; the differences flagged; bad input
and the wrong people refused with nothing written."""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.logistics.collection.differences import (
    Flag,
    Grower,
    beyond,
    differences,
)
from originlive.logistics.collection.models import (
    CollectionGrower,
    CollectionReceipt,
    CollectionRun,
    Grade,
    RunStatus,
)
from tests.conftest import Actor
from tests.logistics.conftest import OTHER_VILLAGE, Network, _node

OTHER_COUNTY = "610423"  # 泾阳县: a hub of its own


@dataclass
class Collection:
    """The network's hub and point, a second point (at the village without one) and a hub in
    another county, each with its staff."""

    network: Network
    point2: dict[str, Any]
    point2_staff: Actor
    other_hub: dict[str, Any]
    other_hub_staff: Actor

    @property
    def client(self) -> httpx.AsyncClient:
        return self.network.market.client

    @property
    def merchant(self) -> Actor:
        return self.network.market.merchant

    def booking(self, **fields: Any) -> dict[str, Any]:
        """Four growers at the first point, two at the second (grams)."""
        point1, point2 = self.network.point["id"], self.point2["id"]
        growers = [
            {
                "name": "李大山",
                "phone": "13900000001",
                "point_id": point1,
                "expected_grams": 100_000,
            },
            {
                "name": "王秀英",
                "phone": "13900000002",
                "point_id": point1,
                "expected_grams": 50_000,
            },
            {
                "name": "张建国",
                "phone": "13900000003",
                "point_id": point2,
                "expected_grams": 30_000,
            },
            {
                "name": "赵红梅",
                "phone": "13900000004",
                "point_id": point2,
                "expected_grams": 20_000,
            },
            {"name": "刘福", "phone": "13900000005", "point_id": point1, "expected_grams": 10_000},
        ]
        body = {
            "shop_id": self.network.market.shop_id,
            "sku_id": self.network.market.sku_id,
            "hub_id": self.network.hub["id"],
            "collect_on": "2026-09-20",
            "growers": growers,
        }
        return body | fields

    async def book(self, **fields: Any) -> dict[str, Any]:
        made = await self.client.post(
            "/api/v1/collection-runs", json=self.booking(**fields), headers=self.merchant.headers
        )
        assert made.status_code == 201, made.text
        return dict(made.json())

    async def weigh(
        self, who: Actor, run: dict[str, Any], grower: int, grams: Any, grade: str
    ) -> httpx.Response:
        body = {"grower_id": run["growers"][grower]["id"], "weight_grams": grams, "grade": grade}
        return await self.client.post(
            f"/api/v1/collection-runs/{run['id']}/weighings", json=body, headers=who.headers
        )

    async def receive(
        self, who: Actor, run: dict[str, Any], point_id: int, grams: Any
    ) -> httpx.Response:
        return await self.client.post(
            f"/api/v1/collection-runs/{run['id']}/receipts",
            json={"point_id": point_id, "weight_grams": grams},
            headers=who.headers,
        )

    async def act(self, who: Actor, run: dict[str, Any], action: str) -> httpx.Response:
        return await self.client.post(
            f"/api/v1/collection-runs/{run['id']}/{action}", headers=who.headers
        )


@pytest.fixture
async def collection(network: Network, make_user: Callable[..., Awaitable[Actor]]) -> Collection:
    client, operator = network.market.client, network.operator
    point2 = await _node(
        client, operator, kind="village_point", region_code=OTHER_VILLAGE, name="积山村服务点",
        upstream_id=network.station["id"],
    )  # fmt: skip
    other_hub = await _node(
        client, operator, kind="county_hub", region_code=OTHER_COUNTY, name="泾阳县物流中心"
    )
    staff = []
    for node in (point2, other_hub):
        actor = await make_user("staff")
        added = await client.post(
            f"/api/v1/delivery-nodes/{node['id']}/staff",
            json={"email": actor.email},
            headers=operator.headers,
        )
        assert added.status_code == 204, added.text
        staff.append(actor)
    return Collection(network, point2, staff[0], other_hub, staff[1])


async def _rows(db: AsyncSession) -> tuple[int, int, int, int]:
    """Runs, growers, growers weighed, receipts: what a refused request must not change."""
    db.expire_all()
    counted = [
        await db.scalar(select(func.count()).select_from(CollectionRun)),
        await db.scalar(select(func.count()).select_from(CollectionGrower)),
        await db.scalar(
            select(func.count())
            .select_from(CollectionGrower)
            .where(CollectionGrower.weighed_at.is_not(None))
        ),
        await db.scalar(select(func.count()).select_from(CollectionReceipt)),
    ]
    return tuple(int(n or 0) for n in counted)  # type: ignore[return-value]


# The rule of differences, alone


def test_a_difference_is_flagged_past_the_tolerance_and_not_at_it() -> None:
    assert beyond(95_000, 100_000, 5) is None  # exactly 5 %: within
    assert beyond(94_999, 100_000, 5) is Flag.SHORT
    assert beyond(105_001, 100_000, 5) is Flag.OVER
    assert beyond(100_000, 100_000, 0) is None
    assert beyond(1, 100_000, 0) is Flag.SHORT
    assert beyond(1, 0, 50) is Flag.OVER  # anything where nothing was expected
    assert beyond(0, 0, 5) is None


def test_the_run_s_differences_by_grower_and_by_point() -> None:
    growers = [
        Grower(1, 10, 100_000, 98_000, Grade.A),
        Grower(2, 10, 50_000, 40_000, Grade.B),
        Grower(3, 20, 30_000, 30_000, Grade.REJECTED),
        Grower(4, 20, 20_000, None, None),
    ]
    during = differences(growers, {}, status=RunStatus.COLLECTING, tolerance_percent=5)
    assert [during.growers[i].flag for i in (1, 2, 3, 4)] == [
        None,
        Flag.SHORT,
        Flag.REJECTED,
        None,  # not weighed yet: not a difference while the points still weigh
    ]
    assert during.growers[3].accepted_grams == 0 and during.growers[2].difference_grams == -10_000
    after = differences(growers, {10: 0}, status=RunStatus.RECEIVED, tolerance_percent=5)
    assert after.growers[4].flag is Flag.NOT_WEIGHED
    point10, point20 = after.points
    assert (point10.sent_grams, point10.received_grams, point10.flag) == (138_000, 0, Flag.SHORT)
    # Point 20 sent nothing on (all rejected): no receipt is owed, nothing is flagged there.
    assert (point20.sent_grams, point20.rejected_grams, point20.flag) == (0, 30_000, None)
    assert after.flagged == 4


# The whole run over the API


async def test_a_run_is_booked_weighed_dispatched_received_and_closed(
    collection: Collection,
) -> None:
    c, net = collection, collection.network
    run = await c.book()
    assert run["status"] == "booked" and run["hub_name"] == "武功县物流中心"
    assert run["totals"]["expected_grams"] == 210_000 and run["flagged"] == 0
    assert [p["id"] for p in run["points"]] == [net.point["id"], c.point2["id"]]
    assert [p["expected_grams"] for p in run["points"]] == [160_000, 50_000]

    for who, grower, grams, grade in (
        (net.point_staff, 0, 98_000, "A"),  # 2 % short: within the run's 5 %
        (net.point_staff, 1, 40_000, "B"),  # 20 % short
        (c.point2_staff, 2, 30_000, "rejected"),
        (c.point2_staff, 3, 25_000, "C"),  # 25 % over
    ):
        weighed = await c.weigh(who, run, grower, grams, grade)
        assert weighed.status_code == 201, weighed.text
    shown = weighed.json()
    assert shown["status"] == "collecting"
    # A point's staff see their own point and its growers only, phones included.
    assert [g["name"] for g in shown["growers"]] == ["张建国", "赵红梅"]
    assert shown["growers"][0]["phone"] == "13900000003"
    assert [p["id"] for p in shown["points"]] == [c.point2["id"]]

    dispatched = await c.act(c.merchant, run, "dispatch")
    assert dispatched.status_code == 200, dispatched.text
    assert dispatched.json()["status"] == "in_transit"
    late = await c.weigh(net.point_staff, run, 4, 10_000, "A")
    assert late.status_code == 409, late.text

    first = await c.receive(net.hub_staff, run, net.point["id"], 137_000)  # sent 138,000
    assert first.status_code == 201, first.text
    assert first.json()["status"] == "in_transit"  # the second point is still on its way
    twice = await c.receive(net.hub_staff, run, net.point["id"], 137_000)
    assert twice.status_code == 409, twice.text
    last = await c.receive(net.hub_staff, run, c.point2["id"], 20_000)  # sent 25,000
    assert last.status_code == 201, last.text
    received = last.json()
    assert received["status"] == "received" and received["received_at"] is not None

    seen = (
        await c.client.get(f"/api/v1/collection-runs/{run['id']}", headers=c.merchant.headers)
    ).json()
    assert [(g["weighed_grams"], g["difference_grams"], g["flag"]) for g in seen["growers"]] == [
        (98_000, -2_000, None),
        (40_000, -10_000, "short"),
        (30_000, 0, "rejected"),
        (25_000, 5_000, "over"),
        (None, None, "not_weighed"),
    ]
    assert [
        (
            p["sent_grams"],
            p["rejected_grams"],
            p["received_grams"],
            p["difference_grams"],
            p["flag"],
        )
        for p in seen["points"]
    ] == [(138_000, 0, 137_000, -1_000, None), (25_000, 30_000, 20_000, -5_000, "short")]
    assert seen["totals"] == {
        "expected_grams": 210_000,
        "weighed_grams": 193_000,
        "sent_grams": 163_000,
        "rejected_grams": 30_000,
        "received_grams": 157_000,
        "by_grade": {"A": 98_000, "B": 40_000, "C": 25_000, "rejected": 30_000},
    }
    assert seen["flagged"] == 5

    closed = await c.act(c.merchant, run, "close")
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    again = await c.act(c.merchant, run, "close")
    assert again.status_code == 409


# Bad input: refused, nothing written


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"expected_grams": -1}, "growers.0.expected_grams"),
        ({"expected_grams": 0}, "growers.0.expected_grams"),
        ({"expected_grams": 50_000_001}, "growers.0.expected_grams"),  # over 50 t
        ({"expected_grams": 12.5}, "growers.0.expected_grams"),
        ({"expected_grams": "1000"}, "growers.0.expected_grams"),
        ({"point_id": 999_999}, "growers.0.point_id"),
        ({"phone": "call me"}, "growers.0.phone"),
        ({"name": "李\u200b大山"}, "growers.0.name"),
    ],
)
async def test_a_bad_grower_is_refused_and_nothing_booked(
    collection: Collection, db: AsyncSession, change: dict[str, Any], field: str
) -> None:
    body = collection.booking()
    body["growers"][0] |= change
    refused = await collection.client.post(
        "/api/v1/collection-runs", json=body, headers=collection.merchant.headers
    )
    assert refused.status_code == 422, refused.text
    assert field in [e["field"] for e in refused.json()["errors"]]
    assert await _rows(db) == (0, 0, 0, 0)


async def test_a_bad_booking_is_refused_and_nothing_booked(
    collection: Collection, db: AsyncSession, make_user: Callable[..., Awaitable[Actor]]
) -> None:
    c, net = collection, collection.network
    other = await make_user("merchant")
    theirs = await c.client.post(
        "/api/v1/shops",
        json={"name": "别人的合作社", "region_code": "610431"},
        headers=other.headers,
    )
    assert theirs.status_code == 201, theirs.text
    station_growers = c.booking()["growers"]
    station_growers[1]["point_id"] = net.station["id"]  # a station is not a village point
    twice = c.booking()["growers"]
    twice.append(dict(twice[0]))
    for fields, field in (
        ({"hub_id": net.point["id"]}, "hub_id"),  # a point is not a hub
        ({"hub_id": 999_999}, "hub_id"),
        ({"sku_id": 999_999}, "sku_id"),
        ({"shop_id": theirs.json()["id"]}, "shop_id"),  # not the caller's shop
        ({"growers": station_growers}, "growers.1.point_id"),
        ({"growers": twice}, "growers.5.name"),
        ({"growers": []}, "growers"),
        ({"collect_on": "1999-12-31"}, "collect_on"),
        ({"tolerance_percent": 51}, "tolerance_percent"),
        ({"surprise": 1}, "surprise"),
    ):
        refused = await c.client.post(
            "/api/v1/collection-runs", json=c.booking(**fields), headers=c.merchant.headers
        )
        assert refused.status_code == 422, (fields, refused.text)
        assert field in [e["field"] for e in refused.json()["errors"]], refused.text
    assert await _rows(db) == (0, 0, 0, 0)


async def test_bad_weighings_and_receipts_are_refused_and_nothing_written(
    collection: Collection, db: AsyncSession
) -> None:
    c, net = collection, collection.network
    run = await c.book()
    before = await _rows(db)
    for grams in (-1, 0, 50_000_001, 12.5, "12", None):
        refused = await c.weigh(net.point_staff, run, 0, grams, "A")
        assert refused.status_code == 422, (grams, refused.text)
    assert (await c.weigh(net.point_staff, run, 0, 1_000, "D")).status_code == 422
    unknown = await c.client.post(
        f"/api/v1/collection-runs/{run['id']}/weighings",
        json={"grower_id": 999_999, "weight_grams": 1_000, "grade": "A"},
        headers=net.point_staff.headers,
    )
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "grower_id"
    # 张建国 brings to the second point: the first point's staff do not weigh him.
    wrong_point = await c.weigh(net.point_staff, run, 2, 30_000, "A")
    assert wrong_point.status_code == 403, wrong_point.text
    early = await c.receive(net.hub_staff, run, net.point["id"], 1_000)
    assert early.status_code == 409, early.text  # not dispatched yet
    assert await _rows(db) == before

    assert (await c.weigh(net.point_staff, run, 0, 100_000, "A")).status_code == 201
    again = await c.weigh(net.point_staff, run, 0, 90_000, "B")
    assert again.status_code == 409, again.text
    assert (await c.act(c.merchant, run, "dispatch")).status_code == 200
    assert (await c.act(c.merchant, run, "dispatch")).status_code == 409
    weighed = await _rows(db)
    for point_id, grams, status in (
        (net.point["id"], -1, 422),
        (net.point["id"], 500_000_001, 422),  # over 500 t
        (net.point["id"], 1.5, 422),
        (net.station["id"], 1_000, 422),  # no grower of the run brings there
        (999_999, 1_000, 422),
    ):
        refused = await c.receive(net.hub_staff, run, point_id, grams)
        assert refused.status_code == status, (point_id, grams, refused.text)
    assert (await c.act(c.merchant, run, "close")).status_code == 409  # not received yet
    assert await _rows(db) == weighed
    db.expire_all()
    grower = await db.get(CollectionGrower, run["growers"][0]["id"])
    assert grower is not None and (grower.weighed_grams, grower.grade) == (100_000, Grade.A)


async def test_nothing_to_send_is_not_dispatched(collection: Collection) -> None:
    c, net = collection, collection.network
    run = await c.book()
    assert (await c.act(c.merchant, run, "dispatch")).status_code == 409
    assert (await c.weigh(net.point_staff, run, 0, 5_000, "rejected")).status_code == 201
    assert (await c.act(c.merchant, run, "dispatch")).status_code == 409


# Who may see and do what


async def test_each_kind_of_user_sees_and_does_only_their_part(
    collection: Collection, make_user: Callable[..., Awaitable[Actor]]
) -> None:
    c, net = collection, collection.network
    run = await c.book()
    url = f"/api/v1/collection-runs/{run['id']}"
    stranger, buyer = await make_user("merchant"), await make_user("buyer")
    assert (
        await c.client.post(
            "/api/v1/shops",
            json={"name": "隔壁合作社", "region_code": "610431"},
            headers=stranger.headers,
        )
    ).status_code == 201

    # Nobody else learns the run exists: not another merchant, a buyer, the station (no
    # grower of the run brings produce there) or another county's hub.
    for other in (stranger, buyer, net.station_staff, c.other_hub_staff):
        assert (await c.client.get(url, headers=other.headers)).status_code == 404
        assert (await c.weigh(other, run, 0, 1_000, "A")).status_code == 404
        assert (await c.receive(other, run, net.point["id"], 1_000)).status_code == 404
        assert (await c.act(other, run, "dispatch")).status_code == 404
        listed = await c.client.get("/api/v1/collection-runs", headers=other.headers)
        assert listed.status_code == 200 and listed.json()["total"] == 0
    assert (await c.client.get(url)).status_code == 401
    booked_by_stranger = await c.client.post(
        "/api/v1/collection-runs", json=c.booking(), headers=stranger.headers
    )
    assert booked_by_stranger.status_code == 422  # not a shop they manage

    # The co-operative and operators see everything, phones included.
    for manager in (c.merchant, net.operator):
        seen = (await c.client.get(url, headers=manager.headers)).json()
        assert len(seen["growers"]) == 5 and seen["growers"][0]["phone"] == "13900000001"
        listed = (await c.client.get("/api/v1/collection-runs", headers=manager.headers)).json()
        assert [r["id"] for r in listed["items"]] == [run["id"]]

    # The hub's staff see every grower and point, without phones; they do not weigh.
    at_hub = (await c.client.get(url, headers=net.hub_staff.headers)).json()
    assert len(at_hub["growers"]) == 5 and {g["phone"] for g in at_hub["growers"]} == {None}
    assert len(at_hub["points"]) == 2
    assert (await c.weigh(net.hub_staff, run, 0, 1_000, "A")).status_code == 403
    assert (await c.act(net.hub_staff, run, "dispatch")).status_code == 403

    # A point's staff see their own point: its growers with their phones.
    at_point = (await c.client.get(url, headers=net.point_staff.headers)).json()
    assert [g["name"] for g in at_point["growers"]] == ["李大山", "王秀英", "刘福"]
    assert at_point["totals"]["expected_grams"] == 160_000
    listed = await c.client.get("/api/v1/collection-runs", headers=c.point2_staff.headers)
    assert [r["totals"]["expected_grams"] for r in listed.json()["items"]] == [50_000]
    assert (await c.act(net.point_staff, run, "dispatch")).status_code == 403

    # Receiving is the hub's, and only once the run is on its way.
    assert (await c.weigh(net.point_staff, run, 0, 100_000, "A")).status_code == 201
    assert (await c.act(c.merchant, run, "dispatch")).status_code == 200
    assert (await c.receive(net.point_staff, run, net.point["id"], 1_000)).status_code == 403
    assert (await c.receive(c.merchant, run, net.point["id"], 1_000)).status_code == 403
    done = await c.receive(net.hub_staff, run, net.point["id"], 100_000)
    assert done.status_code == 201 and done.json()["status"] == "received"
    assert (await c.act(net.hub_staff, run, "close")).status_code == 403
    assert (await c.act(c.merchant, run, "close")).status_code == 200


async def test_at_the_same_time_a_grower_is_weighed_once_and_every_receipt_counts(
    collection: Collection, db: AsyncSession
) -> None:
    c, net = collection, collection.network
    run = await c.book()
    same = await asyncio.gather(
        *(c.weigh(net.point_staff, run, 0, grams, "A") for grams in (90_000, 95_000, 99_000))
    )
    assert sorted(r.status_code for r in same) == [201, 409, 409]
    (kept,) = [r for r in same if r.status_code == 201]
    db.expire_all()
    grower = await db.get(CollectionGrower, run["growers"][0]["id"])
    assert grower is not None
    assert grower.weighed_grams == kept.json()["growers"][0]["weighed_grams"]
    assert (await c.weigh(c.point2_staff, run, 3, 20_000, "B")).status_code == 201
    assert (await c.act(c.merchant, run, "dispatch")).status_code == 200

    both = await asyncio.gather(
        c.receive(net.hub_staff, run, net.point["id"], 90_000),
        c.receive(net.hub_staff, run, c.point2["id"], 20_000),
        c.receive(net.hub_staff, run, c.point2["id"], 20_000),
    )
    assert sorted(r.status_code for r in both) == [201, 201, 409]
    seen = await c.client.get(f"/api/v1/collection-runs/{run['id']}", headers=c.merchant.headers)
    assert seen.json()["status"] == "received"
    assert await _rows(db) == (1, 5, 2, 2)
