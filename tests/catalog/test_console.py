"""The merchant's console, catalog part, in-process: open a shop, change its profile, list a
product, add variants, stock, photos and provenance; bad input is shown and writes nothing;
nobody reaches another's shop."""

from collections.abc import Awaitable, Callable

import httpx

from originlive.catalog.storage import MAX_SIDE
from tests.accounts.test_pages import HTML, csrf_of, login, register
from tests.catalog.conftest import png
from tests.conftest import Actor

FORM = {"name": "武功猕猴桃合作社", "region_code": "610431", "description": "关中平原的果园",
        "contact_name": "", "contact_phone": ""}  # fmt: skip
NEW = {"title": "徐香猕猴桃 5斤装", "category": "水果", "origin_region_code": "610431",
       "description": "树上自然熟", "sku_name": "5斤 中果", "price": "39.9",
       "stock": "100"}  # fmt: skip


def _id(response: httpx.Response, prefix: str) -> int:
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith(prefix), location
    return int(location.removeprefix(prefix).split("?")[0])


async def _shop(client: httpx.AsyncClient, merchant: Actor) -> int:
    opened = await client.post("/console/shops", data=FORM, headers=merchant.headers)
    return _id(opened, "/console/shops/")


async def _product(client: httpx.AsyncClient, merchant: Actor, shop_id: int) -> int:
    made = await client.post(
        f"/console/shops/{shop_id}/products", data=NEW, headers=merchant.headers
    )
    return _id(made, "/console/products/")


async def test_a_merchant_opens_a_shop_and_lists_a_product_through_pages(
    client: httpx.AsyncClient, make_user: Callable[..., Awaitable[Actor]]
) -> None:
    merchant = await make_user("合作社")
    assert "You have no shop yet" in (await client.get("/console", headers=merchant.headers)).text
    shop_id = await _shop(client, merchant)
    page = await client.get(f"/console/shops/{shop_id}", headers=merchant.headers)
    assert page.status_code == 200 and "Awaiting approval" in page.text
    shop = await client.get(f"/api/v1/shops/{shop_id}", headers=merchant.headers)
    assert shop.json()["status"] == "pending" and shop.json()["region"]["code"] == "610431"

    changed = await client.post(
        f"/console/shops/{shop_id}",
        data=FORM | {"description": "秦岭北麓", "contact_phone": "13900000000"},
        headers=merchant.headers,
    )
    assert changed.status_code == 303
    shop = await client.get(f"/api/v1/shops/{shop_id}", headers=merchant.headers)
    assert shop.json()["description"] == "秦岭北麓"
    assert shop.json()["contact_phone"] == "13900000000"

    product_id = await _product(client, merchant, shop_id)
    product = (await client.get(f"/api/v1/products/{product_id}", headers=merchant.headers)).json()
    assert product["title"] == NEW["title"] and product["origin"]["code"] == "610431"
    assert [(s["name"], s["price_cents"], s["stock"]) for s in product["skus"]] == [
        ("5斤 中果", 3990, 100)
    ]
    listed = await client.get(f"/console/shops/{shop_id}/products", headers=merchant.headers)
    assert f'href="/console/products/{product_id}"' in listed.text and "¥39.90" in listed.text

    # A second variant, then a new count and price for the first.
    added = await client.post(
        f"/console/products/{product_id}/skus",
        data={"sku_name": "10斤 大果", "price": "69", "stock": "20"},
        headers=merchant.headers,
    )
    assert added.status_code == 303
    first = product["skus"][0]["id"]
    counted = await client.post(
        f"/console/skus/{first}", data={"price": "35.50", "stock": "80"}, headers=merchant.headers
    )
    assert counted.status_code == 303
    product = (await client.get(f"/api/v1/products/{product_id}", headers=merchant.headers)).json()
    assert sorted((s["name"], s["price_cents"], s["stock"]) for s in product["skus"]) == [
        ("10斤 大果", 6900, 20),
        ("5斤 中果", 3550, 80),
    ]

    # A photo, then a provenance step showing it.
    uploaded = await client.post(
        f"/console/products/{product_id}/photos",
        files={"photo": ("orchard.png", png(4, 4), "image/png")},
        headers=merchant.headers,
    )
    assert uploaded.status_code == 303, uploaded.text
    product = (await client.get(f"/api/v1/products/{product_id}", headers=merchant.headers)).json()
    (image,) = product["images"]
    step = await client.post(
        f"/console/products/{product_id}/provenance",
        data={"batch": "2026-09-A", "kind": "harvest", "date": "2026-09-20",
              "place": "徐杨村 3组果园", "place_region_code": "", "note": "",
              "photo_id": str(image["id"])},
        headers=merchant.headers,
    )  # fmt: skip
    assert step.status_code == 303, step.text
    product = (await client.get(f"/api/v1/products/{product_id}", headers=merchant.headers)).json()
    (entry,) = product["provenance"]
    assert entry["batch"] == "2026-09-A" and entry["photo"]["id"] == image["id"]
    page = await client.get(f"/console/products/{product_id}", headers=merchant.headers)
    assert page.status_code == 200 and "徐杨村 3组果园" in page.text

    # Hidden: off sale for buyers.
    hidden = await client.post(
        f"/console/products/{product_id}",
        data={"title": NEW["title"], "category": "水果", "origin_region_code": "610431",
              "description": "", "status": "hidden"},
        headers=merchant.headers,
    )  # fmt: skip
    assert hidden.status_code == 303
    assert (await client.get(f"/api/v1/products/{product_id}")).status_code == 404


async def test_bad_input_is_shown_on_the_form_and_writes_nothing(
    client: httpx.AsyncClient, make_user: Callable[..., Awaitable[Actor]]
) -> None:
    merchant = await make_user("合作社")
    no_place = await client.post(
        "/console/shops", data=FORM | {"region_code": "999999"}, headers=merchant.headers
    )
    assert no_place.status_code == 422 and "Choose the region" in no_place.text
    assert "武功猕猴桃合作社" in no_place.text  # what was typed stays
    mine = await client.get("/api/v1/shops?mine=true", headers=merchant.headers)
    assert mine.json()["total"] == 0

    shop_id = await _shop(client, merchant)
    for field, value, message in [
        ("price", "12.345", "Enter a price in yuan"),
        ("price", "-1", "Enter a price in yuan"),
        ("stock", "ten", "Enter how many you have"),
        ("title", "", "Enter a title"),
        ("origin_region_code", "12", "Choose the region"),
    ]:
        refused = await client.post(
            f"/console/shops/{shop_id}/products",
            data=NEW | {field: value},
            headers=merchant.headers,
        )
        assert refused.status_code == 422, (field, value)
        assert message in refused.text, (field, value)
    listed = await client.get(f"/api/v1/shops/{shop_id}/products", headers=merchant.headers)
    assert listed.json()["total"] == 0

    product_id = await _product(client, merchant, shop_id)
    not_an_image = await client.post(
        f"/console/products/{product_id}/photos",
        files={"photo": ("x.png", b"<?php echo 1; ?>", "image/png")},
        headers=merchant.headers,
    )
    assert not_an_image.status_code == 422 and "JPEG, PNG or WebP" in not_an_image.text
    too_large = await client.post(
        f"/console/products/{product_id}/photos",
        files={"photo": ("field.png", png(MAX_SIDE + 1, 1), "image/png")},
        headers=merchant.headers,
    )
    assert too_large.status_code == 422 and "pixels a side" in too_large.text
    product = (await client.get(f"/api/v1/products/{product_id}", headers=merchant.headers)).json()
    assert product["images"] == []
    sku_id = product["skus"][0]["id"]
    bad_count = await client.post(
        f"/console/skus/{sku_id}", data={"price": "39.90", "stock": "-3"}, headers=merchant.headers
    )
    assert bad_count.status_code == 422
    product = (await client.get(f"/api/v1/products/{product_id}", headers=merchant.headers)).json()
    assert product["skus"][0]["stock"] == 100


async def test_numbers_are_ascii_digits_on_every_form(
    client: httpx.AsyncClient, make_user: Callable[..., Awaitable[Actor]]
) -> None:
    merchant = await make_user("合作社")
    shop_id = await _shop(client, merchant)
    # "²" passes str.isdigit(), which int() refuses (a 500); "１２" and "١٢" int() reads.
    for field, value in [("stock", "²"), ("stock", "１２"), ("stock", "١٢"), ("stock", "+5"),
                         ("price", "１２.５"), ("price", "²")]:  # fmt: skip
        refused = await client.post(
            f"/console/shops/{shop_id}/products",
            data=NEW | {field: value},
            headers=merchant.headers,
        )
        assert refused.status_code == 422, (field, value, refused.text)
    product_id = await _product(client, merchant, shop_id)
    product = (await client.get(f"/api/v1/products/{product_id}", headers=merchant.headers)).json()
    sku_id = product["skus"][0]["id"]
    for stock in ("²", "³", "١٠"):
        url = f"/console/skus/{sku_id}"
        refused = await client.post(
            url, data={"price": "39.90", "stock": stock}, headers=merchant.headers
        )
        assert refused.status_code == 422, (stock, refused.text)
        url = f"/console/products/{product_id}/skus"
        sku = {"sku_name": "10斤", "price": "69", "stock": stock}
        assert (await client.post(url, data=sku, headers=merchant.headers)).status_code == 422
    step = {"batch": "2026-09-A", "kind": "harvest", "date": "2026-09-20", "place": "果园",
            "place_region_code": "", "note": ""}  # fmt: skip
    for photo_id in ("²", "99999999999"):
        sent = await client.post(
            f"/console/products/{product_id}/provenance",
            data=step | {"photo_id": photo_id},
            headers=merchant.headers,
        )
        assert sent.status_code == 422, (photo_id, sent.text)
    product = (await client.get(f"/api/v1/products/{product_id}", headers=merchant.headers)).json()
    assert [s["stock"] for s in product["skus"]] == [100]
    assert product["provenance"] == []  # nothing written


async def test_nobody_reaches_another_merchants_console(
    client: httpx.AsyncClient, make_user: Callable[..., Awaitable[Actor]]
) -> None:
    merchant, other = await make_user("合作社"), await make_user("other")
    shop_id = await _shop(client, merchant)
    product_id = await _product(client, merchant, shop_id)
    for url in (f"/console/shops/{shop_id}", f"/console/products/{product_id}"):
        seen = await client.get(url, headers=other.headers | HTML)
        assert seen.status_code == 404, url  # a pending shop's ids give nothing away
    written = await client.post(
        f"/console/shops/{shop_id}/products", data=NEW | {"title": "偷"}, headers=other.headers
    )
    assert written.status_code == 404
    anonymous = await client.get(f"/console/shops/{shop_id}", headers=HTML)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")


async def test_a_console_form_needs_its_csrf_token_with_a_cookie_session(
    client: httpx.AsyncClient,
) -> None:
    await register(client, "coop@example.com", "合作社")
    await login(client, "coop@example.com")
    page = await client.get("/console")
    assert page.status_code == 200
    forged = await client.post("/console/shops", data=FORM, headers=HTML)
    assert forged.status_code == 403
    assert (await client.get("/api/v1/shops?mine=true")).json()["total"] == 0
    sent = await client.post("/console/shops", data=FORM | {"csrf_token": csrf_of(page)})
    assert sent.status_code == 303
