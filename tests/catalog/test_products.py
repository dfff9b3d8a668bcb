"""Products over HTTP: listing with SKUs and provenance, reading, editing, SKUs, bad input."""

import httpx
import pytest
from sqlalchemy import select

from originlive.accounts.models import AuditEntry
from originlive.catalog.models import Product, ProvenanceEntry, Sku
from tests.catalog.conftest import PRODUCT, Catalog, count, png

HARVEST = {
    "batch": "2026-09-A",
    "kind": "harvest",
    "date": "2026-09-20",
    "place": "普集街道 3 号果园",
    "place_region_code": "610431",
}


async def test_create_and_read_product(
    client: httpx.AsyncClient, make_user, catalog: Catalog
) -> None:
    owner = await make_user()
    shop = await catalog.shop(owner)
    response = await client.post(
        f"/api/v1/shops/{shop['id']}/products",
        json={
            **PRODUCT,
            "description": "第一行\n\t第二行",
            "skus": [
                {"name": "5斤 中果", "price_cents": 3990, "stock": 100},
                {"name": "10斤 大果", "price_cents": 7990, "stock": 0, "currency": "CNY"},
            ],
            "provenance": [HARVEST],
        },
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert [s["name"] for s in created["skus"]] == ["5斤 中果", "10斤 大果"]
    assert all(isinstance(s["id"], int) for s in created["skus"])

    product = (await client.get(f"/api/v1/products/{created['id']}")).json()
    assert product == created
    assert product["status"] == "active"
    assert product["description"] == "第一行\n\t第二行"
    assert product["shop"] == {
        "id": shop["id"],
        "name": shop["name"],
        "status": "approved",
        "region": shop["region"],
    }
    assert product["origin"]["path_names"] == ["陕西省", "咸阳市", "武功县"]
    sku = product["skus"][0]
    assert (sku["price_cents"], sku["currency"], sku["stock"]) == (3990, "CNY", 100)
    (entry,) = product["provenance"]
    assert entry["date"] == "2026-09-20" and entry["kind"] == "harvest"
    assert entry["place_region"]["full_name"] == "陕西省 咸阳市 武功县"
    assert entry["photo"] is None and product["images"] == []


BAD_PRODUCTS = [
    ({"skus": [{"name": "x", "price_cents": -1, "stock": 1}]}, "skus.0.price_cents"),
    ({"skus": [{"name": "x", "price_cents": 12.5, "stock": 1}]}, "skus.0.price_cents"),
    ({"skus": [{"name": "x", "price_cents": 12.0, "stock": 1}]}, "skus.0.price_cents"),
    ({"skus": [{"name": "x", "price_cents": "1250", "stock": 1}]}, "skus.0.price_cents"),
    ({"skus": [{"name": "x", "price_cents": 100, "stock": -1}]}, "skus.0.stock"),
    ({"skus": [{"name": "x", "price_cents": 100, "stock": 1.5}]}, "skus.0.stock"),
    (
        {"skus": [{"name": "x", "price_cents": 100, "stock": 1, "currency": "cny"}]},
        "skus.0.currency",
    ),
    (
        {"skus": [{"name": "x", "price_cents": 100, "stock": 1, "currency": "RMB1"}]},
        "skus.0.currency",
    ),
    ({"skus": [{"name": "", "price_cents": 100, "stock": 1}]}, "skus.0.name"),
    ({"skus": []}, "skus"),
    ({"skus": [{"name": f"{i}", "price_cents": 1, "stock": 1} for i in range(51)]}, "skus"),
    ({"origin_region_code": "999999"}, "origin_region_code"),
    ({"title": "果" * 121}, "title"),
    ({"title": " "}, "title"),
    ({"title": "两行\n标题"}, "title"),
    ({"category": "\x00"}, "category"),
    ({"description": "x" * 5001}, "description"),
    ({"category": "c" * 41}, "category"),
    ({"shop_id": 1}, "shop_id"),
    ({"provenance": [{**HARVEST, "kind": "rumour"}]}, "provenance.0.kind"),
    (
        {"provenance": [{**HARVEST, "place_region_code": "999999"}]},
        "provenance.0.place_region_code",
    ),
    ({"provenance": [{**HARVEST, "photo_id": 1}]}, "provenance.0.photo_id"),
    ({"provenance": [{**HARVEST, "date": "yesterday"}]}, "provenance.0.date"),
]


@pytest.mark.parametrize(("change", "field"), BAD_PRODUCTS, ids=[f for _, f in BAD_PRODUCTS])
async def test_bad_products_are_refused_and_write_nothing(
    client: httpx.AsyncClient, make_user, catalog: Catalog, db, change, field
) -> None:
    owner = await make_user()
    shop = await catalog.shop(owner)
    response = await client.post(
        f"/api/v1/shops/{shop['id']}/products", json=PRODUCT | change, headers=owner.headers
    )
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["type"] == "/problems/invalid-input"
    assert field in {e["field"] for e in body["errors"]}, body
    assert (await count(db, Product), await count(db, Sku), await count(db, ProvenanceEntry)) == (
        0,
        0,
        0,
    )


async def test_edit_and_hide_product(
    client: httpx.AsyncClient, make_user, catalog: Catalog
) -> None:
    owner = await make_user()
    shop = await catalog.shop(owner)
    product = await catalog.product(owner, shop["id"])
    url = f"/api/v1/products/{product['id']}"
    response = await client.patch(
        url,
        json={"title": "红心猕猴桃", "origin_region_code": "530114", "category": "鲜果"},
        headers=owner.headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["title"], body["category"]) == ("红心猕猴桃", "鲜果")
    assert body["origin"]["full_name"] == "云南省 昆明市 呈贡区"
    assert body["description"] == PRODUCT["description"]

    for bad in ({"title": None}, {"status": "deleted"}, {"origin_region_code": "999999"}):
        assert (await client.patch(url, json=bad, headers=owner.headers)).status_code == 422

    hidden = await client.patch(url, json={"status": "hidden"}, headers=owner.headers)
    assert hidden.json()["status"] == "hidden"
    assert (await client.get(url)).status_code == 404
    assert (await client.get(url, headers=owner.headers)).status_code == 200
    listed = await client.get(f"/api/v1/shops/{shop['id']}/products")
    assert listed.json()["items"] == []
    own = await client.get(f"/api/v1/shops/{shop['id']}/products", headers=owner.headers)
    assert [p["id"] for p in own.json()["items"]] == [product["id"]]


async def test_products_of_unapproved_shops_are_hidden(
    client: httpx.AsyncClient, make_user, catalog: Catalog
) -> None:
    owner = await make_user()
    shop = await catalog.shop(owner, approve=False)
    product = await catalog.product(owner, shop["id"])
    url = f"/api/v1/products/{product['id']}"
    assert (await client.get(url)).status_code == 404
    assert (await client.get(url, headers=owner.headers)).status_code == 200
    assert (await client.get(url, headers=(await catalog.operator()).headers)).status_code == 200
    await catalog.approve(shop["id"])
    assert (await client.get(url)).status_code == 200
    operator = await catalog.operator()
    await client.post(
        f"/api/v1/shops/{shop['id']}/reject", json={"reason": "暂停"}, headers=operator.headers
    )
    assert (await client.get(url)).status_code == 404


async def test_skus(client: httpx.AsyncClient, make_user, catalog: Catalog, db) -> None:
    owner = await make_user()
    shop = await catalog.shop(owner)
    product = await catalog.product(owner, shop["id"])
    added = await client.post(
        f"/api/v1/products/{product['id']}/skus",
        json={"name": "礼盒装", "price_cents": 12800, "stock": 20},
        headers=owner.headers,
    )
    assert added.status_code == 201, added.text
    sku = added.json()
    assert sku["product_id"] == product["id"] and sku["currency"] == "CNY"

    url = f"/api/v1/skus/{sku['id']}"
    changed = await client.patch(url, json={"price_cents": 9900, "stock": 5}, headers=owner.headers)
    assert changed.status_code == 200
    assert (changed.json()["price_cents"], changed.json()["stock"], changed.json()["name"]) == (
        9900,
        5,
        "礼盒装",
    )
    for bad in (
        {"stock": -1},
        {"price_cents": -5},
        {"price_cents": 99.9},
        {"stock": None},
        {"currency": "USD"},
    ):
        response = await client.patch(url, json=bad, headers=owner.headers)
        assert response.status_code == 422, bad
    assert (await client.get(f"/api/v1/products/{product['id']}")).json()["skus"][1] == {
        **sku,
        "price_cents": 9900,
        "stock": 5,
    }
    assert (
        await client.patch("/api/v1/skus/999999", json={}, headers=owner.headers)
    ).status_code == 404
    assert await count(db, Sku) == 2


async def test_sku_limit(client: httpx.AsyncClient, make_user, catalog: Catalog, db) -> None:
    owner = await make_user()
    shop = await catalog.shop(owner)
    skus = [{"name": f"规格{i}", "price_cents": 100, "stock": 1} for i in range(50)]
    product = await catalog.product(owner, shop["id"], skus=skus)
    response = await client.post(
        f"/api/v1/products/{product['id']}/skus",
        json={"name": "再来一个", "price_cents": 100, "stock": 1},
        headers=owner.headers,
    )
    assert response.status_code == 409
    assert await count(db, Sku) == 50


async def test_provenance(client: httpx.AsyncClient, make_user, catalog: Catalog, db) -> None:
    owner = await make_user()
    shop = await catalog.shop(owner)
    product = await catalog.product(owner, shop["id"])
    other = await catalog.product(owner, shop["id"], title="另一款")
    photo = (await catalog.upload(owner, product["id"], png())).json()
    foreign_photo = (await catalog.upload(owner, other["id"], png())).json()
    url = f"/api/v1/products/{product['id']}/provenance"

    inspection = {
        "batch": "2026-09-A",
        "kind": "inspection",
        "date": "2026-09-22",
        "place": "武功县农产品检测站",
        "note": "农残检测合格",
        "photo_id": photo["id"],
    }
    response = await client.post(url, json=inspection, headers=owner.headers)
    assert response.status_code == 201, response.text
    entry = response.json()
    assert entry["photo"] == photo
    assert entry["place_region"] is None and entry["note"] == "农残检测合格"
    harvest = await client.post(url, json=HARVEST, headers=owner.headers)
    assert harvest.status_code == 201

    for bad in (
        {**HARVEST, "photo_id": foreign_photo["id"]},
        {**HARVEST, "kind": "gossip"},
        {**HARVEST, "batch": ""},
        {**HARVEST, "place": "x" * 121},
        {**HARVEST, "note": "x" * 1001},
        {**HARVEST, "place_region_code": "999999"},
    ):
        assert (await client.post(url, json=bad, headers=owner.headers)).status_code == 422, bad
    assert await count(db, ProvenanceEntry) == 2

    read = (await client.get(f"/api/v1/products/{product['id']}")).json()
    # Oldest step first.
    assert [e["kind"] for e in read["provenance"]] == ["harvest", "inspection"]
    assert read["provenance"][1]["photo"]["url"] == photo["url"]

    # Deleting the photo leaves the entry without one.
    deleted = await client.delete(
        f"/api/v1/products/{product['id']}/images/{photo['id']}", headers=owner.headers
    )
    assert deleted.status_code == 204
    read = (await client.get(f"/api/v1/products/{product['id']}")).json()
    assert read["provenance"][1]["photo"] is None


async def test_operator_writes_to_products_are_audited(
    client: httpx.AsyncClient, make_user, catalog: Catalog, db
) -> None:
    owner = await make_user()
    shop = await catalog.shop(owner)
    operator = await catalog.operator()
    product = await catalog.product(operator, shop["id"])
    await client.patch(
        f"/api/v1/products/{product['id']}", json={"status": "hidden"}, headers=operator.headers
    )
    await client.patch(
        f"/api/v1/skus/{product['skus'][0]['id']}", json={"stock": 0}, headers=operator.headers
    )
    await catalog.product(owner, shop["id"])  # the owner's own write: not audited
    rows = (
        await db.execute(
            select(AuditEntry.action, AuditEntry.actor_id, AuditEntry.detail)
            .where(AuditEntry.action != "shop.approve")
            .order_by(AuditEntry.id)
        )
    ).all()
    assert [(a, actor) for a, actor, _ in rows] == [
        ("product.create", operator.id),
        ("product.update", operator.id),
        ("sku.update", operator.id),
    ]
    assert rows[1][2] == {"status": "hidden"}


async def test_out_of_range_ids_are_bad_input(
    client: httpx.AsyncClient, make_user, catalog: Catalog
) -> None:
    owner = await make_user()
    product = await catalog.product(owner, (await catalog.shop(owner))["id"])
    for method, url in [
        ("GET", "/api/v1/shops/99999999999999999999"),
        ("GET", "/api/v1/products/3000000000"),
        ("GET", "/api/v1/products?shop=3000000000"),
        ("PATCH", "/api/v1/skus/3000000000"),
        ("DELETE", f"/api/v1/products/{product['id']}/images/3000000000"),
        ("GET", "/api/v1/products/0"),
    ]:
        response = await client.request(method, url, headers=owner.headers)
        assert response.status_code == 422, (url, response.text)


async def test_a_v1_product_body_needs_no_category(
    client: httpx.AsyncClient, make_user, catalog: Catalog
) -> None:
    """API v1 clients list products with the fields the v1 contract names, no category."""
    owner = await make_user("merchant")
    shop = await catalog.shop(owner)
    v1 = {k: v for k, v in PRODUCT.items() if k != "category"}
    made = await client.post(f"/api/v1/shops/{shop['id']}/products", json=v1, headers=owner.headers)
    assert made.status_code == 201, made.text
    assert made.json()["category"] == "" and made.json()["skus"][0]["id"]
    found = await client.get("/api/v1/products", params={"q": PRODUCT["title"]})
    assert [p["id"] for p in found.json()["items"]] == [made.json()["id"]]


@pytest.mark.parametrize(
    "title",
    ["徐香猕猴桃\u200b", "\u202e装斤5 桃猴猕", "猕猴桃\u2066礼盒\u2069", "\ufeff猕猴桃",
     "猕猴桃\u0085", "猕猴桃\u009b", "猕猴\u00ad桃", "\u200b\u200c", "\u3000 "],
    ids=ascii,
)  # fmt: skip
async def test_a_title_with_what_cannot_be_seen_is_refused(
    client: httpx.AsyncClient, make_user, catalog: Catalog, db, title: str
) -> None:
    owner = await make_user()
    shop = await catalog.shop(owner)
    product = await catalog.product(owner, shop["id"])
    response = await client.post(
        f"/api/v1/shops/{shop['id']}/products",
        json=PRODUCT | {"title": title},
        headers=owner.headers,
    )
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["title"]
    assert await count(db, Product) == 1
    edited = await client.patch(
        f"/api/v1/products/{product['id']}", json={"title": title}, headers=owner.headers
    )
    assert edited.status_code == 422, edited.text
    assert [e["field"] for e in edited.json()["errors"]] == ["title"]


async def test_titles_are_folded_and_descriptions_keep_their_form(
    client: httpx.AsyncClient, make_user, catalog: Catalog
) -> None:
    owner = await make_user()
    shop = await catalog.shop(owner)
    body = PRODUCT | {
        "title": "ＸＵ　徐香猕猴桃 ５㎏（礼盒）",
        "description": "\ufeff树上自然熟，\u200b现摘现发。\n① 5斤装",
    }
    response = await client.post(
        f"/api/v1/shops/{shop['id']}/products", json=body, headers=owner.headers
    )
    assert response.status_code == 201, response.text
    assert response.json()["title"] == "XU 徐香猕猴桃 5kg（礼盒）"
    assert response.json()["description"] == "树上自然熟，现摘现发。\n① 5斤装"
    found = await client.get("/api/v1/products", params={"q": "ｘｕ 徐香"})
    assert [p["id"] for p in found.json()["items"]] == [response.json()["id"]]
    override = await client.post(
        f"/api/v1/shops/{shop['id']}/products",
        json=PRODUCT | {"description": "好\u202e评"},
        headers=owner.headers,
    )
    assert override.status_code == 422
    assert [e["field"] for e in override.json()["errors"]] == ["description"]
