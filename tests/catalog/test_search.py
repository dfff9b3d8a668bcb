"""Product search over HTTP: Chinese and English text, region subtrees, what is on sale."""

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.catalog.models import Product, Sku
from tests.catalog.conftest import Catalog, png
from tests.conftest import Actor


def sku(price: int = 1000) -> list[dict[str, Any]]:
    return [{"name": "标准装", "price_cents": price, "stock": 10}]


@dataclass
class Shelf:
    """The products every search test looks for, by nickname."""

    owner: Actor
    shop: dict[str, Any]
    ids: dict[str, int]


@pytest.fixture
async def shelf(make_user, catalog: Catalog) -> Shelf:
    owner = await make_user("merchant")
    shop = await catalog.shop(owner, name="彩云之南农场", region_code="530000")
    pending = await catalog.shop(owner, approve=False, name="待审果园")
    rows = {
        "kiwi": (shop, "云南红心猕猴桃", "酸甜多汁", "水果", "530114"),
        "jam": (shop, "Wugong Kiwi Jam", "Made from 猕猴桃 grown in Shaanxi", "jam", "610431"),
        "succulent": (shop, "多肉植物组合盆栽", "老桩多肉，带盆发货", "花卉", "500242"),
        "lychee": (shop, "增城荔枝", "妃子笑", "水果", "440000"),
        "hidden": (shop, "下架的猕猴桃", "不再销售", "水果", "530114"),
        "unapproved": (pending, "待审核的猕猴桃", "店铺未审核", "水果", "530114"),
    }
    ids = {}
    for nickname, (where, title, description, category, origin) in rows.items():
        product = await catalog.product(
            owner,
            where["id"],
            title=title,
            description=description,
            category=category,
            origin_region_code=origin,
            skus=sku(),
        )
        ids[nickname] = product["id"]
    response = await catalog.client.patch(
        f"/api/v1/products/{ids['hidden']}", json={"status": "hidden"}, headers=owner.headers
    )
    assert response.status_code == 200
    return Shelf(owner, shop, ids)


async def found(client: httpx.AsyncClient, shelf: Shelf, **params: Any) -> list[str]:
    """Nicknames of the products a search returns, in order."""
    response = await client.get("/api/v1/products", params=params)
    assert response.status_code == 200, response.text
    names = {v: k for k, v in shelf.ids.items()}
    return [names[p["id"]] for p in response.json()["items"]]


async def test_chinese_query_puts_title_matches_first(client, shelf: Shelf) -> None:
    assert await found(client, shelf, q="猕猴桃") == ["kiwi", "jam"]


async def test_two_character_chinese_query(client, shelf: Shelf) -> None:
    assert await found(client, shelf, q="多肉") == ["succulent"]
    assert await found(client, shelf, q="猕猴") == ["kiwi", "jam"]


async def test_english_query_ignores_case(client, shelf: Shelf) -> None:
    assert await found(client, shelf, q="kiwi") == ["jam"]
    assert await found(client, shelf, q="SHAANXI") == ["jam"]
    assert await found(client, shelf, q="wugong jam") == ["jam"]


async def test_every_word_must_match(client, shelf: Shelf) -> None:
    assert await found(client, shelf, q="猕猴桃 红心") == ["kiwi"]
    assert await found(client, shelf, q="猕猴桃 荔枝") == []


async def test_finds_by_shop_category_and_origin_names(client, shelf: Shelf) -> None:
    assert set(await found(client, shelf, q="彩云之南")) == {"kiwi", "jam", "succulent", "lychee"}
    assert await found(client, shelf, q="花卉") == ["succulent"]
    assert await found(client, shelf, q="呈贡区") == ["kiwi"]
    assert await found(client, shelf, q="武功") == ["jam"]
    assert await found(client, shelf, q="重庆") == ["succulent"]


async def test_region_includes_everything_below(client, shelf: Shelf) -> None:
    assert await found(client, shelf, region="530000") == ["kiwi"]
    assert await found(client, shelf, region="530100") == ["kiwi"]
    assert await found(client, shelf, region="610000") == ["jam"]
    assert await found(client, shelf, region="500000") == ["succulent"]
    assert await found(client, shelf, region="440000") == ["lychee"]
    assert await found(client, shelf, region="610431", q="猕猴桃") == ["jam"]
    assert await found(client, shelf, region="530000", q="荔枝") == []


async def test_hidden_and_unapproved_are_never_found(
    client, shelf: Shelf, catalog: Catalog
) -> None:
    everything = await found(client, shelf)
    assert set(everything) == {"kiwi", "jam", "succulent", "lychee"}
    for q in ("下架", "待审核", "猕猴桃"):
        assert {"hidden", "unapproved"}.isdisjoint(await found(client, shelf, q=q))
    # Even for their owner: search is the public shop window.
    response = await client.get(
        "/api/v1/products", params={"q": "下架"}, headers=shelf.owner.headers
    )
    assert response.json()["items"] == []


async def test_filters_and_pages(client, shelf: Shelf) -> None:
    assert await found(client, shelf, category="水果") == ["lychee", "kiwi"]
    assert await found(client, shelf, shop=shelf.shop["id"], q="jam") == ["jam"]
    assert await found(client, shelf, shop=999999) == []
    page = (await client.get("/api/v1/products", params={"limit": 2, "offset": 1})).json()
    assert (page["total"], page["limit"], page["offset"], len(page["items"])) == (4, 2, 1, 2)
    item = page["items"][0]
    assert {"skus", "shop", "origin", "provenance", "images"} <= item.keys()


async def test_index_follows_changes(client, shelf: Shelf, catalog: Catalog) -> None:
    headers = shelf.owner.headers
    await client.patch(
        f"/api/v1/products/{shelf.ids['lychee']}", json={"title": "桂味荔枝"}, headers=headers
    )
    assert await found(client, shelf, q="增城") == []
    assert await found(client, shelf, q="桂味荔枝") == ["lychee"]
    await client.patch(
        f"/api/v1/shops/{shelf.shop['id']}", json={"name": "山货铺"}, headers=headers
    )
    assert len(await found(client, shelf, q="山货铺")) == 4
    assert await found(client, shelf, q="彩云之南") == []
    await client.patch(
        f"/api/v1/products/{shelf.ids['hidden']}", json={"status": "active"}, headers=headers
    )
    assert "hidden" in await found(client, shelf, q="下架")
    product = await client.get(f"/api/v1/products/{shelf.ids['unapproved']}", headers=headers)
    await catalog.approve(product.json()["shop_id"])
    assert await found(client, shelf, q="待审核") == ["unapproved"]


async def test_query_text_is_taken_literally(client, shelf: Shelf) -> None:
    for q in ("%", "_", '"', "猕猴桃 OR", 'NEAR("a" "b")', "*", "a\\b", "^水果"):
        response = await client.get("/api/v1/products", params={"q": q})
        assert response.status_code == 200, (q, response.text)
    assert await found(client, shelf, q="%") == []
    assert await found(client, shelf, q="   ") != []  # blank: no text filter


async def test_bad_search_parameters(client, shelf: Shelf) -> None:
    for params in (
        {"region": "999999"},
        {"region": "abc"},
        {"limit": 0},
        {"limit": 101},
        {"offset": -1},
        {"q": "x" * 101},
        {"q": "abc\x00"},
        {"category": "\x00"},
    ):
        response = await client.get("/api/v1/products", params=params)
        assert response.status_code == 422, params
        assert response.json()["type"] == "/problems/invalid-input"


# The search and the shop listings read pages without the ORM (service.read_product_page):
# what they show must be what a product's own read shows, and their order and pages must be
# those of one sort by rank and age.


async def test_listed_products_are_shown_as_their_own_reads_show_them(
    client: httpx.AsyncClient, make_user, catalog: Catalog
) -> None:
    owner = await make_user("merchant")
    shop = await catalog.shop(owner, name="周至猕猴桃园", region_code="610124")
    full = await catalog.product(
        owner,
        shop["id"],
        title="周至翠香猕猴桃 Kiwi",
        origin_region_code="610124",
        skus=[
            {"name": "大果 5斤", "price_cents": 5990, "stock": 3},
            {"name": "小果 3斤", "price_cents": 2990, "stock": 0, "currency": "USD"},
        ],
        provenance=[
            {"batch": "B2", "kind": "inspection", "date": "2026-09-22", "place": "检测站"},
            {
                "batch": "B1",
                "kind": "harvest",
                "date": "2026-09-20",
                "place": "二号果园",
                "place_region_code": "610124",
                "note": "雨后采摘",
            },
        ],
    )
    photos = [(await catalog.upload(owner, full["id"], png())).json() for _ in range(2)]
    entry = await client.post(
        f"/api/v1/products/{full['id']}/provenance",
        json={
            "batch": "B1",
            "kind": "processing",
            "date": "2026-09-21",
            "place": "冷库",
            "place_region_code": "610000",
            "photo_id": photos[1]["id"],
        },
        headers=owner.headers,
    )
    assert entry.status_code == 201, entry.text
    other_shop = await catalog.shop(owner, name="洛川苹果社", region_code="610629")
    await catalog.product(owner, other_shop["id"], title="洛川苹果 猕猴桃拼箱", skus=sku())
    bare = await catalog.product(owner, shop["id"], title="猕猴桃树苗", skus=sku(1))

    async def each_as_read(items: list[dict[str, Any]]) -> None:
        for item in items:
            read = await client.get(f"/api/v1/products/{item['id']}", headers=owner.headers)
            assert item == read.json()

    searched = (await client.get("/api/v1/products", params={"q": "猕猴桃"})).json()
    assert len(searched["items"]) == searched["total"] == 3
    await each_as_read(searched["items"])
    shown = {p["id"]: p for p in searched["items"]}[full["id"]]
    assert [e["batch"] for e in shown["provenance"]] == ["B1", "B1", "B2"]  # oldest first
    assert shown["provenance"][1]["photo"]["url"] == photos[1]["url"]
    assert shown["provenance"][1]["place_region"]["path_names"] == ["陕西省"]
    assert [i["id"] for i in shown["images"]] == [p["id"] for p in photos]
    assert shown["shop"]["region"]["full_name"] == "陕西省 西安市 周至县"

    hidden = await client.patch(
        f"/api/v1/products/{bare['id']}", json={"status": "hidden"}, headers=owner.headers
    )
    assert hidden.status_code == 200
    for headers in ({}, owner.headers):  # the owner sees the hidden one too
        listed = await client.get(f"/api/v1/shops/{shop['id']}/products", headers=headers)
        assert listed.status_code == 200
        items = listed.json()["items"]
        assert [p["id"] for p in items] == [bare["id"], full["id"]][0 if headers else 1 :]
        await each_as_read(items)


def _rank(title: str, words: list[str]) -> int:
    return sum(w.lower() in title.lower() for w in words)


@pytest.mark.parametrize(
    "q",
    [
        "红心 猕猴桃",  # a short word (LIKE on SQLite) and a long one (the FTS5 index)
        "猕猴桃 kiwi 礼盒",
        "KIWI",
        "果园",  # in the shop's name only: every title ranks 0
    ],
)
async def test_pages_follow_one_order_by_words_in_title_then_newest(
    client: httpx.AsyncClient, make_user, catalog: Catalog, q: str
) -> None:
    owner = await make_user("merchant")
    shop = await catalog.shop(owner, name="秦岭果园", region_code="610124")
    everything = "红心 猕猴桃 kiwi 礼盒"
    titles = ["红心猕猴桃", "猕猴桃 礼盒", "红心果", "精品水果", "Kiwi 红心猕猴桃 礼盒",
              "kiwi", "猕猴桃", "红心猕猴桃 大果", "礼盒装"]  # fmt: skip
    ids = []
    for title in titles:
        made = await catalog.product(
            owner, shop["id"], title=title, description=everything, skus=sku()
        )
        ids.append(made["id"])
    words = q.split()
    expected = sorted(ids, key=lambda i: (-_rank(titles[ids.index(i)], words), -i))

    for limit in (1, 2, 3, 4, 20):
        shown = []
        for offset in range(0, len(ids) + limit, limit):
            params = {"q": q, "limit": limit, "offset": offset}
            page = (await client.get("/api/v1/products", params=params)).json()
            assert (page["total"], page["limit"], page["offset"]) == (len(ids), limit, offset)
            assert len(page["items"]) <= limit
            shown += [p["id"] for p in page["items"]]
        assert shown == expected, limit
    for offset in (2, 5):  # a page may start anywhere, not only at a multiple of its size
        params = {"q": q, "limit": 3, "offset": offset}
        page = (await client.get("/api/v1/products", params=params)).json()
        assert [p["id"] for p in page["items"]] == expected[offset : offset + 3]


async def test_a_search_shows_a_change_through_the_app_at_once_and_any_commit_within_a_second(
    app: Any, client: httpx.AsyncClient, shelf: Shelf, db: AsyncSession
) -> None:
    """Pages the reader keeps (service.kept) are read anew at once after a commit of the
    app's ORM sessions (a product or a price changed through the API or the console), and
    within the pages' cache age after any other commit: plain SQL on another connection,
    which no ORM event sees (the order path taking stock, another process)."""

    async def kiwi_stock() -> int:
        page = (await client.get("/api/v1/products", params={"q": "红心"})).json()
        return int(page["items"][0]["skus"][0]["stock"])

    assert await kiwi_stock() == await kiwi_stock() == 10
    async with app.state.sessionmaker() as session, session.begin():
        kiwi = await session.scalar(select(Sku).where(Sku.product_id == shelf.ids["kiwi"]))
        assert kiwi is not None
        kiwi.stock = 8
    assert await kiwi_stock() == 8

    await db.execute(update(Sku).where(Sku.product_id == shelf.ids["kiwi"]).values(stock=7))
    await db.commit()
    assert app.state.page_cache.max_age == 1
    async with asyncio.timeout(3):
        while await kiwi_stock() != 7:
            await asyncio.sleep(0.05)
    await db.execute(update(Product).where(Product.id == shelf.ids["kiwi"]).values(status="hidden"))
    await db.commit()
    async with asyncio.timeout(3):
        while await found(client, shelf, q="红心") != []:
            await asyncio.sleep(0.05)
