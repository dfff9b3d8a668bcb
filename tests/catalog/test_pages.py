"""The product, shop, search and home pages render what is on sale, in Chinese, in yuan."""

from collections.abc import Awaitable, Callable

import httpx

from tests.catalog.conftest import PRODUCT, Catalog, png
from tests.conftest import Actor

HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}

KIWI = PRODUCT | {
    "skus": [
        {"name": "5斤 中果", "price_cents": 3990, "stock": 100},
        {"name": "10斤 大果", "price_cents": 12500, "stock": 0},
    ],
    "provenance": [
        {
            "batch": "2026-09-A",
            "kind": "harvest",
            "date": "2026-09-12",
            "place": "普集街道果园",
            "place_region_code": "610431",
            "note": "清晨采摘",
        }
    ],
}
TEA = {
    "title": "普洱生茶 357克",
    "description": "古树春茶",
    "category": "茶叶",
    "origin_region_code": "530802",
    "skus": [{"name": "一饼", "price_cents": 128800, "stock": 5}],
}


async def test_product_page(
    client: httpx.AsyncClient, catalog: Catalog, make_user: Callable[..., Awaitable[Actor]]
) -> None:
    merchant = await make_user("merchant")
    shop = await catalog.shop(merchant)
    product = await catalog.product(merchant, shop["id"], **KIWI)
    photo = await catalog.upload(merchant, product["id"], png(4, 3))
    assert photo.status_code == 201

    page = await client.get(f"/products/{product['id']}", headers=HTML)

    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    text = page.text
    assert "<title>徐香猕猴桃 5斤装 · originlive</title>" in text
    assert "¥39.90 – ¥125.00" in text  # the price range over the SKUs
    assert "5斤 中果" in text and "¥39.90" in text and "Sold out" in text
    assert f'href="/shops/{shop["id"]}">武功猕猴桃合作社</a>' in text
    # The origin's full path, each level a link to what else comes from there.
    assert '<a href="/search?region=610000">陕西省</a>' in text
    assert '<a href="/search?region=610431">武功县</a>' in text
    assert "普集街道果园" in text and "陕西省 咸阳市 武功县" in text and "清晨采摘" in text
    assert '<time datetime="2026-09-12">' in text
    assert f'src="{photo.json()["url"]}"' in text
    assert '<html lang="en">' in text


async def test_shop_page(
    client: httpx.AsyncClient, catalog: Catalog, make_user: Callable[..., Awaitable[Actor]]
) -> None:
    merchant = await make_user("merchant")
    shop = await catalog.shop(merchant)
    await catalog.product(merchant, shop["id"], **KIWI)
    hidden = await catalog.product(merchant, shop["id"], title="冷库存货")
    await client.patch(
        f"/api/v1/products/{hidden['id']}", json={"status": "hidden"}, headers=merchant.headers
    )

    page = await client.get(f"/shops/{shop['id']}", headers=HTML)

    assert page.status_code == 200
    assert "<h1>武功猕猴桃合作社</h1>" in page.text
    assert "关中平原的果园" in page.text
    assert '<a href="/search?region=610400">咸阳市</a>' in page.text
    assert "徐香猕猴桃 5斤装" in page.text and "¥39.90 – ¥125.00" in page.text
    assert "冷库存货" not in page.text  # hidden products only for the shop


async def test_home_and_search_list_what_is_on_sale(
    client: httpx.AsyncClient, catalog: Catalog, make_user: Callable[..., Awaitable[Actor]]
) -> None:
    merchant = await make_user("merchant")
    kiwi_shop = await catalog.shop(merchant)
    kiwi = await catalog.product(merchant, kiwi_shop["id"], **KIWI)
    tea_shop = await catalog.shop(merchant, name="思茅古茶坊", region_code="530802")
    tea = await catalog.product(merchant, tea_shop["id"], **TEA)
    pending = await catalog.shop(merchant, approve=False, name="未审核小店")
    await catalog.product(merchant, pending["id"], title="未上架的货")

    home = await client.get("/")
    assert home.status_code == 200
    assert "徐香猕猴桃" in home.text and "普洱生茶" in home.text and "未上架的货" not in home.text
    assert home.text.index("普洱生茶") < home.text.index("徐香猕猴桃")  # newest first
    assert "¥1,288.00" in home.text
    assert '<a href="/?region=530000">云南省 <span class="count">1</span></a>' in home.text
    assert '<a href="/?region=610000">陕西省 <span class="count">1</span></a>' in home.text

    yunnan = await client.get("/", params={"region": "530000"})
    assert f"/products/{tea['id']}" in yunnan.text
    assert f"/products/{kiwi['id']}" not in yunnan.text
    assert "Newest from 云南省" in yunnan.text

    found = await client.get("/search", params={"q": "猕猴桃"})
    assert found.status_code == 200
    assert "1 product" in found.text
    assert f"/products/{kiwi['id']}" in found.text
    assert f"/products/{tea['id']}" not in found.text
    assert 'value="猕猴桃"' in found.text

    in_county = await client.get("/search", params={"region": "530802"})
    assert f"/products/{tea['id']}" in in_county.text
    assert '<option value="530802" selected>思茅区</option>' in in_county.text

    nothing = await client.get("/search", params={"q": "大米", "region": "610000"})
    assert "0 products" in nothing.text and "Nothing matches yet" in nothing.text


async def test_pages_escape_what_merchants_type(
    client: httpx.AsyncClient, catalog: Catalog, make_user: Callable[..., Awaitable[Actor]]
) -> None:
    merchant = await make_user("merchant")
    shop = await catalog.shop(merchant, name="<b>坏店</b>")
    product = await catalog.product(merchant, shop["id"], title='<script>alert("x")</script>')

    for path in (f"/products/{product['id']}", f"/shops/{shop['id']}", "/"):
        text = (await client.get(path)).text
        assert "<script>alert" not in text and "<b>坏店</b>" not in text
        assert "&lt;b&gt;坏店&lt;/b&gt;" in text


async def test_unknown_and_unpublished_pages_are_html_404s(
    client: httpx.AsyncClient, catalog: Catalog, make_user: Callable[..., Awaitable[Actor]]
) -> None:
    merchant = await make_user("merchant")
    pending = await catalog.shop(merchant, approve=False)
    product = await catalog.product(merchant, pending["id"])

    for path in (
        "/products/999999",
        "/products/not-a-number",
        f"/products/{product['id']}",
        f"/shops/{pending['id']}",
        "/no-such-page",
    ):
        response = await client.get(path, headers=HTML)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("text/html"), path
        assert "Page not found" in response.text

    # The owner still sees their pending shop's product, marked as not on sale.
    page = await client.get(f"/products/{product['id']}", headers=HTML | merchant.headers)
    assert page.status_code == 200 and "Not on sale" in page.text

    # API clients, and anyone not asking for HTML, keep the problem JSON.
    api = await client.get("/api/v1/products/999999", headers=HTML)
    assert api.headers["content-type"] == "application/problem+json"
    plain = await client.get("/products/999999")
    assert plain.status_code == 404
    assert plain.headers["content-type"] == "application/problem+json"


async def test_bad_filters_get_an_error_page(client: httpx.AsyncClient) -> None:
    bad = await client.get("/search", params={"region": "abc"}, headers=HTML)
    assert bad.status_code == 422
    assert "Invalid request" in bad.text
    unknown = await client.get("/search", params={"region": "999999"}, headers=HTML)
    assert unknown.status_code == 422
    assert unknown.headers["content-type"].startswith("text/html")
