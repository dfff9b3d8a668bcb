"""The rule's reader (``service.plan_figures``) on both databases, on a connection like the
order writer's: what it reads makes the pure rule give what the library shows."""

import datetime as dt
from typing import Any

from sqlalchemy import Connection

from originlive.affiliates.service import PlanFigures, effective_plan, plan_figures
from tests.affiliates.conftest import Library
from tests.writer import on_writer_connection


async def _read(library: Library, **asked: Any) -> list[PlanFigures]:
    found: list[PlanFigures] = []

    def read(conn: Connection) -> None:
        found.extend(plan_figures(conn, **asked))

    await on_writer_connection(library.database_url, read)
    return found


async def test_the_figures_read_give_the_rates_the_library_shows(library: Library) -> None:
    named, other = await library.anchor("named"), await library.anchor("other")
    shop_id, product, second = (
        library.market.shop_id,
        library.market.product_id,
        library.other_product_id,
    )
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).isoformat()
    shop_wide = await library.plan(rate_bp=500)
    star = await library.plan(scope="product", product_ids=[product], rate_bp=900)
    deal = await library.plan(kind="targeted", anchor_ids=[named.id], rate_bp=1200)
    future = await library.plan(scope="group", product_ids=[second], starts_at=later)
    unjoined = await library.plan(kind="targeted", anchor_ids=[other.id], scope="group",
                                  product_ids=[second], rate_bp=3000)  # fmt: skip
    for anchor in (named, other):
        for plan in (shop_wide, star, future):
            assert (await library.join(anchor, plan["id"])).status_code == 201
    assert (await library.join(named, deal["id"])).status_code == 201

    now = dt.datetime.now(dt.UTC)
    figures = await _read(library, shop_ids=[shop_id], anchor_ids=[named.id, other.id], at=now)
    read = {f.plan_id: f for f in figures}
    # Running plans with a member asked about; the future one and the unjoined one are not.
    assert set(read) == {shop_wide["id"], star["id"], deal["id"]}
    assert read[star["id"]].product_ids == {product}
    assert read[deal["id"]].anchor_ids == {named.id} and read[deal["id"]].members == {named.id}
    assert unjoined["id"] not in read

    def pays(anchor_id: int, product_id: int) -> tuple[int, int] | None:
        return effective_plan(
            figures, anchor_id=anchor_id, product_id=product_id, shop_id=shop_id, at=now
        )

    assert pays(named.id, product) == (deal["id"], 1200)
    assert pays(other.id, product) == (star["id"], 900)
    assert pays(other.id, second) == (shop_wide["id"], 500)
    # The library shows the same rates earned.
    page = await library.client.get("/api/v1/affiliates/library", headers=other.headers)
    shown = {
        i["product_id"]: (i["joined_plan_id"], i["joined_rate_bp"]) for i in page.json()["items"]
    }
    assert shown == {product: pays(other.id, product), second: pays(other.id, second)}

    # An anchor of no plan, or a shop without plans, reads nothing.
    assert await _read(library, shop_ids=[shop_id], anchor_ids=[10**6], at=now) == []
    assert await _read(library, shop_ids=[], anchor_ids=[named.id], at=now) == []
    # After a plan ends it is read no more.
    ended = await library.client.post(
        f"/api/v1/affiliates/plans/{deal['id']}/end", headers=library.merchant.headers
    )
    assert ended.status_code == 200
    after = await _read(library, shop_ids=[shop_id], anchor_ids=[named.id], at=now)
    assert deal["id"] not in {f.plan_id for f in after}
