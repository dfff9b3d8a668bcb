"""The library's pages, in-process, in English and Chinese: the shop's plans with its form and
the samples waiting, and the anchor's library with its join buttons."""

from tests.accounts.test_pages import HTML
from tests.affiliates.conftest import Library, MakeActor, rows

CHINESE = HTML | {"Accept-Language": "zh-CN,zh;q=0.9"}


async def test_the_shop_sees_its_plans_and_offers_one_by_form(library: Library) -> None:
    client, merchant = library.client, library.merchant
    await library.plan(name="春季好物", rate_bp=1250)
    url = f"/console/shops/{library.market.shop_id}/plans"

    page = await client.get(url, headers=merchant.headers | HTML)
    assert page.status_code == 200, page.text
    assert "Commission plans" in page.text and "春季好物" in page.text and "12.5%" in page.text
    assert "The whole shop" in page.text and 'id="plan-form"' in page.text
    chinese = await client.get(url, headers=merchant.headers | CHINESE)
    assert chinese.status_code == 200 and "佣金计划" in chinese.text and "整个店铺" in chinese.text

    form = {"name": "单品", "rate": "8", "scope": "product", "kind": "open",
            "product_ids": str(library.market.product_id), "samples_allowed": "on"}  # fmt: skip
    made = await client.post(url, data=form, headers=merchant.headers | HTML)
    assert made.status_code == 303 and made.headers["location"].endswith("?done=created")
    before = await rows(library.db)
    too_much = await client.post(url, data=form | {"rate": "100.01"}, headers=merchant.headers)
    assert too_much.status_code == 422 and "from 0 to 100" in too_much.text
    clash = await client.post(url, data=form, headers=merchant.headers | HTML)
    assert clash.status_code == 409 and "overlapping window" in clash.text
    assert await rows(library.db) == before


async def test_the_anchor_browses_the_library_and_joins(
    library: Library, make_user: MakeActor
) -> None:
    client = library.client
    anchor = await library.anchor()
    plan = await library.plan(rate_bp=1000)

    page = await client.get("/anchor/library", headers=anchor.headers | HTML)
    assert page.status_code == 200, page.text
    assert "徐香猕猴桃 5斤装" in page.text and "Join the plan at 10%" in page.text
    chinese = await client.get("/anchor/library", headers=anchor.headers | CHINESE)
    assert chinese.status_code == 200 and "选品库" in chinese.text

    joined = await client.post(f"/anchor/plans/{plan['id']}/join", headers=anchor.headers)
    assert joined.status_code == 303
    page = await client.get("/anchor/library?done=joined", headers=anchor.headers | HTML)
    assert "You joined the plan." in page.text and "Join the plan at" not in page.text

    buyer = await make_user("buyer")
    refused = await client.get("/anchor/library", headers=buyer.headers | HTML)
    assert refused.status_code == 403
