"""The library's JSON API on both databases: plans offered and joined, the library's rates,
and every bad input answered with a 4xx problem that writes nothing."""

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable

from sqlalchemy import select

from originlive.accounts.models import AuditEntry
from tests.affiliates.conftest import Library, MakeActor, new_key, rows
from tests.conftest import Actor


def _at(days: float) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(days=days)).isoformat()


async def test_a_plan_is_offered_joined_and_shown_in_the_library(library: Library) -> None:
    anchor = await library.anchor()
    shop_wide = await library.plan(rate_bp=500)
    star = await library.plan(
        name="明星单品", scope="product", product_ids=[library.market.product_id], rate_bp=1500
    )
    assert shop_wide["status"] == "active" and star["product_ids"] == [library.market.product_id]

    page = await library.client.get("/api/v1/affiliates/library", headers=anchor.headers)
    assert page.status_code == 200, page.text
    items = {i["product_id"]: i for i in page.json()["items"]}
    assert page.json()["total"] == 2
    star_item = items[library.market.product_id]
    assert (star_item["best_plan_id"], star_item["best_rate_bp"]) == (star["id"], 1500)
    assert star_item["joined_plan_id"] is None

    joined = await library.join(anchor, shop_wide["id"])
    assert joined.status_code == 201, joined.text
    assert (await library.join(anchor, shop_wide["id"])).status_code == 200  # once
    assert (await library.join(anchor, star["id"])).status_code == 201
    page = await library.client.get("/api/v1/affiliates/library", headers=anchor.headers)
    items = {i["product_id"]: i for i in page.json()["items"]}
    # The product plan beats the shop plan for its product; the other keeps the shop's rate.
    assert items[library.market.product_id]["joined_rate_bp"] == 1500
    assert items[library.other_product_id]["joined_plan_id"] == shop_wide["id"]


async def test_a_targeted_plan_overrides_the_open_one_for_its_anchor_only(
    library: Library,
) -> None:
    named, other = await library.anchor("named"), await library.anchor("other")
    open_plan = await library.plan(rate_bp=800)
    deal = await library.plan(name="专属", kind="targeted", anchor_ids=[named.id], rate_bp=600)
    for anchor in (named, other):
        assert (await library.join(anchor, open_plan["id"])).status_code == 201
    assert (await library.join(named, deal["id"])).status_code == 201

    def joined(response: object) -> set[tuple[int, int]]:
        items = response.json()["items"]  # type: ignore[attr-defined]
        return {(i["joined_plan_id"], i["joined_rate_bp"]) for i in items}

    url = "/api/v1/affiliates/library"
    assert joined(await library.client.get(url, headers=named.headers)) == {(deal["id"], 600)}
    assert joined(await library.client.get(url, headers=other.headers)) == {(open_plan["id"], 800)}
    # The other anchor does not even see the targeted plan.
    seen = await library.client.get(f"/api/v1/affiliates/plans/{deal['id']}", headers=other.headers)
    assert seen.status_code == 404


async def test_bad_plans_are_refused_and_write_nothing(library: Library) -> None:
    anchor = await library.anchor()
    await library.plan(rate_bp=500, ends_at=_at(30))
    before = await rows(library.db)
    product = library.market.product_id
    refused = [
        ({"rate_bp": 10_001}, 422),  # above 100 %
        ({"rate_bp": -1}, 422),
        ({"rate_bp": "12"}, 422),
        ({"rate_bp": 900, "starts_at": _at(10)}, 409),  # overlaps the first open shop plan
        ({"scope": "product", "product_ids": []}, 422),
        ({"scope": "group", "product_ids": [product, product]}, 422),
        ({"scope": "product", "product_ids": [2_000_000_000]}, 422),  # not of this shop
        ({"kind": "targeted"}, 422),  # names nobody
        ({"kind": "targeted", "anchor_ids": [library.merchant.id]}, 422),  # not an anchor
        ({"starts_at": _at(2), "ends_at": _at(1)}, 422),
        ({"starts_at": "2026-12-01T00:00:00"}, 422),  # no zone
    ]
    for fields, status in refused:
        answer = await library.offer(**fields)
        assert answer.status_code == status, (fields, answer.text)
        problem = answer.json()
        assert problem["status"] == status and problem["type"].startswith("/problems/")
    assert await rows(library.db) == before
    # After the first plan's window, or for named anchors, or for one product: no clash.
    assert (await library.offer(starts_at=_at(31))).status_code == 201
    deal = {"kind": "targeted", "anchor_ids": [anchor.id]}
    assert (await library.offer(**deal)).status_code == 201
    assert (await library.offer(scope="product", product_ids=[product])).status_code == 201
    assert (await library.offer(**deal)).status_code == 409  # the same anchor twice


async def test_targeted_plans_for_different_anchors_may_overlap(library: Library) -> None:
    first, second = await library.anchor("a"), await library.anchor("b")
    await library.plan(kind="targeted", anchor_ids=[first.id])
    await library.plan(kind="targeted", anchor_ids=[second.id])
    clash = await library.offer(kind="targeted", anchor_ids=[second.id, first.id])
    assert clash.status_code == 409, clash.text


async def test_an_anchor_cannot_join_a_plan_not_meant_for_them(library: Library) -> None:
    named, other = await library.anchor("named"), await library.anchor("other")
    deal = await library.plan(kind="targeted", anchor_ids=[named.id])
    before = await rows(library.db)
    refused = await library.join(other, deal["id"])
    assert refused.status_code == 404, refused.text  # not even shown to them
    assert await rows(library.db) == before
    ended = await library.plan(scope="product", product_ids=[library.market.product_id])
    end = f"/api/v1/affiliates/plans/{ended['id']}/end"
    assert (await library.client.post(end, headers=library.merchant.headers)).status_code == 200
    before = await rows(library.db)
    assert (await library.join(other, ended["id"])).status_code == 409
    assert await rows(library.db) == before


async def test_only_the_shop_edits_its_plans_and_only_anchors_join(
    library: Library, make_user: MakeActor
) -> None:
    plan = await library.plan()
    url = f"/api/v1/affiliates/plans/{plan['id']}"
    stranger = await make_user("merchant")
    other_shop = await library.client.post(
        "/api/v1/shops",
        json={"name": "别家果园", "region_code": "610431"},
        headers=stranger.headers,
    )
    assert other_shop.status_code == 201
    buyer = await make_user("buyer")
    before = await rows(library.db)
    for who in (stranger, buyer):
        patched = await library.client.patch(url, json={"rate_bp": 9000}, headers=who.headers)
        assert patched.status_code == 403, patched.text
        ended = await library.client.post(f"{url}/end", headers=who.headers)
        assert ended.status_code == 403
    listing = f"/api/v1/affiliates/shops/{library.market.shop_id}/plans"
    assert (await library.client.get(listing, headers=stranger.headers)).status_code == 403
    joined = await library.join(buyer, plan["id"])
    assert joined.status_code == 403 and "anchor" in joined.json()["detail"]
    library_page = await library.client.get("/api/v1/affiliates/library", headers=buyer.headers)
    assert library_page.status_code == 403
    assert await rows(library.db) == before

    patched = await library.client.patch(
        url, json={"rate_bp": 1200, "ends_at": _at(5)}, headers=library.merchant.headers
    )
    assert patched.status_code == 200 and patched.json()["rate_bp"] == 1200


async def test_a_double_clicked_sample_request_is_one(library: Library) -> None:
    anchor = await library.anchor()
    plan = await library.plan()
    await library.join(anchor, plan["id"])
    key = new_key()
    first = await library.ask(anchor, plan["id"], key=key)
    assert first.status_code == 201, first.text
    assert first.json()["status"] == "requested"
    before = await rows(library.db)

    again = await library.ask(anchor, plan["id"], key=key)
    assert again.status_code == 200 and again.json() == first.json()
    other_note = await library.ask(anchor, plan["id"], key=key, note="再来一个")
    assert other_note.status_code == 422, other_note.text  # the same key, another body
    other_sku = await library.ask(anchor, plan["id"], key=key, sku_id=2_000_000_000)
    assert other_sku.status_code == 422, other_sku.text
    no_key = await library.ask(anchor, plan["id"])
    assert no_key.status_code == 409 and f"{first.json()['id']}" in no_key.json()["detail"]
    new_key_same_product = await library.ask(anchor, plan["id"], key=new_key())
    assert new_key_same_product.status_code == 409
    assert await rows(library.db) == before


async def test_bad_sample_requests_are_refused_and_write_nothing(
    library: Library, make_user: MakeActor
) -> None:
    anchor = await library.anchor()
    plan = await library.plan()
    narrow = await library.plan(
        name="单品", scope="product", product_ids=[library.other_product_id], samples_allowed=False
    )
    buyer = await make_user("buyer")
    before = await rows(library.db)
    not_joined = await library.ask(anchor, plan["id"])
    assert not_joined.status_code == 403, not_joined.text
    assert (await library.ask(buyer, plan["id"])).status_code == 403
    await library.join(anchor, plan["id"])
    await library.join(anchor, narrow["id"])
    before = await rows(library.db)
    cases = [
        ({"plan_id": narrow["id"]}, 409),  # gives no samples
        ({"sku_id": 2_000_000_000}, 422),
        ({"address": {"name": "x", "phone": "1", "region_code": "610431", "detail": "y"}}, 422),
        (
            {
                "address": {
                    "name": "王",
                    "phone": "13800000000",
                    "region_code": "999999",
                    "detail": "y",
                }
            },
            422,
        ),
    ]
    for fields, status in cases:
        plan_id = fields.pop("plan_id", plan["id"])
        answer = await library.ask(anchor, plan_id, **fields)
        assert answer.status_code == status, (fields, answer.text)
    assert await rows(library.db) == before


async def test_an_operators_plan_changes_are_audited_and_pending_shops_offer_nothing(
    library: Library, make_operator: Callable[[], Awaitable[Actor]]
) -> None:
    operator = await make_operator()
    made = await library.client.post(
        f"/api/v1/affiliates/shops/{library.market.shop_id}/plans",
        json={"name": "运营代建", "rate_bp": 700},
        headers=operator.headers,
    )
    assert made.status_code == 201, made.text
    await library.plan(scope="product", product_ids=[library.market.product_id])  # the owner's
    audited = await library.db.scalars(
        select(AuditEntry.action).where(AuditEntry.target_type == "commission_plans")
    )
    assert list(audited) == ["plan.create"]

    owner = await library.make_user("owner")
    pending = await library.client.post(
        "/api/v1/shops", json={"name": "待审果园", "region_code": "610431"}, headers=owner.headers
    )
    plan = await library.client.post(
        f"/api/v1/affiliates/shops/{pending.json()['id']}/plans",
        json={"name": "未开张", "rate_bp": 700},
        headers=owner.headers,
    )
    assert plan.status_code == 201, plan.text
    anchor = await library.anchor()
    assert (await library.join(anchor, plan.json()["id"])).status_code == 404


async def test_clashing_plans_and_sample_requests_sent_at_once_are_one(library: Library) -> None:
    made = await asyncio.gather(*(library.offer(rate_bp=500 + n) for n in range(5)))
    assert sorted(r.status_code for r in made) == [201, 409, 409, 409, 409], [r.text for r in made]
    plan = next(r.json() for r in made if r.status_code == 201)
    anchor = await library.anchor()
    joins = await asyncio.gather(*(library.join(anchor, plan["id"]) for _ in range(3)))
    assert sorted(r.status_code for r in joins) == [200, 200, 201], [r.text for r in joins]

    key = new_key()
    same_key = await asyncio.gather(*(library.ask(anchor, plan["id"], key=key) for _ in range(4)))
    assert sorted(r.status_code for r in same_key) == [200, 200, 200, 201]
    assert len({r.json()["id"] for r in same_key}) == 1
    other = library.other_product_id
    sku = (await library.client.get(f"/api/v1/products/{other}")).json()["skus"][0]["id"]
    no_key = await asyncio.gather(*(library.ask(anchor, plan["id"], sku_id=sku) for _ in range(4)))
    assert sorted(r.status_code for r in no_key) == [201, 409, 409, 409], [r.text for r in no_key]
    assert (await rows(library.db))["sample_requests"] == 2


async def test_a_change_that_would_clash_or_break_the_rate_is_refused(library: Library) -> None:
    first = await library.plan(rate_bp=500, ends_at=_at(30))
    await library.plan(rate_bp=600, starts_at=_at(31))
    url = f"/api/v1/affiliates/plans/{first['id']}"
    headers = library.merchant.headers
    for body, status in (
        ({"ends_at": None}, 409),  # open-ended, it would run into the second
        ({"ends_at": _at(40)}, 409),
        ({"rate_bp": 10_001}, 422),
        ({"rate_bp": None}, 422),
        ({"kind": "targeted"}, 422),  # not to be changed
    ):
        answer = await library.client.patch(url, json=body, headers=headers)
        assert answer.status_code == status, (body, answer.text)
    shown = await library.client.get(url, headers=headers)
    assert shown.json() == first
    moved = await library.client.patch(url, json={"ends_at": _at(30.5)}, headers=headers)
    assert moved.status_code == 200, moved.text
