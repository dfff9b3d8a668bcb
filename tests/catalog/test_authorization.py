"""Who may do what in the catalog, route by route.

Callers who cannot see a thing (another merchant's pending shop or its products) get 404;
callers who can see it but not change it get 403; anonymous writers get 401.
"""

import re
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from originlive.accounts.models import AuditEntry
from originlive.catalog.models import Product, ProductImage, ProvenanceEntry, Shop, Sku
from tests.catalog.conftest import PRODUCT, SHOP, Catalog, count, png
from tests.conftest import Actor

BODIES: dict[str, dict[str, Any]] = {
    "POST /api/v1/shops": {"json": SHOP},
    "POST /api/v1/shops/{}/approve": {},
    "POST /api/v1/shops/{}/reject": {"json": {"reason": "资料不全"}},
    "POST /api/v1/shops/{}/products": {"json": PRODUCT},
    "PATCH /api/v1/products/{}": {"json": {"title": "改个标题"}},
    "POST /api/v1/products/{}/skus": {"json": {"name": "小份", "price_cents": 1, "stock": 1}},
    "PATCH /api/v1/skus/{}": {"json": {"stock": 1}},
    "POST /api/v1/products/{}/provenance": {
        "json": {"batch": "B1", "kind": "harvest", "date": "2026-09-01", "place": "果园"}
    },
    "POST /api/v1/products/{}/images": {"files": {"file": ("a.png", png(), "image/png")}},
}

# (method, path, who, expected status); names in braces are filled from the world below.
DENIED = [
    # Anonymous callers write nothing.
    ("POST", "/api/v1/shops", None, 401),
    ("PATCH", "/api/v1/shops/{shop_a}", None, 401),
    ("POST", "/api/v1/shops/{pending_a}/approve", None, 401),
    ("POST", "/api/v1/shops/{pending_a}/reject", None, 401),
    ("POST", "/api/v1/shops/{shop_a}/products", None, 401),
    ("PATCH", "/api/v1/products/{product_a}", None, 401),
    ("POST", "/api/v1/products/{product_a}/skus", None, 401),
    ("PATCH", "/api/v1/skus/{sku_a}", None, 401),
    ("POST", "/api/v1/products/{product_a}/provenance", None, 401),
    ("POST", "/api/v1/products/{product_a}/images", None, 401),
    ("DELETE", "/api/v1/products/{product_a}/images/{image_a}", None, 401),
    # Merchant B sees A's approved shop and products but changes none of them.
    ("PATCH", "/api/v1/shops/{shop_a}", "b", 403),
    ("POST", "/api/v1/shops/{shop_a}/products", "b", 403),
    ("PATCH", "/api/v1/products/{product_a}", "b", 403),
    ("POST", "/api/v1/products/{product_a}/skus", "b", 403),
    ("PATCH", "/api/v1/skus/{sku_a}", "b", 403),
    ("POST", "/api/v1/products/{product_a}/provenance", "b", 403),
    ("POST", "/api/v1/products/{product_a}/images", "b", 403),
    ("DELETE", "/api/v1/products/{product_a}/images/{image_a}", "b", 403),
    ("PATCH", "/api/v1/products/{product_a}", "buyer", 403),
    # A's pending shop and its products do not exist for B, the buyer or the public.
    ("GET", "/api/v1/shops/{pending_a}", None, 404),
    ("GET", "/api/v1/shops/{pending_a}", "b", 404),
    ("GET", "/api/v1/shops/{pending_a}/products", "b", 404),
    ("GET", "/api/v1/products/{pending_product_a}", None, 404),
    ("GET", "/api/v1/products/{pending_product_a}", "b", 404),
    ("GET", "/api/v1/products/{pending_product_a}", "buyer", 404),
    ("PATCH", "/api/v1/shops/{pending_a}", "b", 404),
    ("POST", "/api/v1/shops/{pending_a}/products", "b", 404),
    ("PATCH", "/api/v1/products/{pending_product_a}", "b", 404),
    ("POST", "/api/v1/products/{pending_product_a}/skus", "b", 404),
    ("PATCH", "/api/v1/skus/{pending_sku_a}", "b", 404),
    ("POST", "/api/v1/products/{pending_product_a}/provenance", "b", 404),
    ("POST", "/api/v1/products/{pending_product_a}/images", "b", 404),
    # Review is for operators only, even of one's own shop.
    ("POST", "/api/v1/shops/{pending_a}/approve", "buyer", 403),
    ("POST", "/api/v1/shops/{pending_a}/approve", "a", 403),
    ("POST", "/api/v1/shops/{pending_a}/approve", "b", 403),
    ("POST", "/api/v1/shops/{shop_a}/reject", "buyer", 403),
    ("POST", "/api/v1/shops/{shop_a}/reject", "a", 403),
]

ALLOWED = [
    ("GET", "/api/v1/shops/{pending_a}", "a", 200),
    ("GET", "/api/v1/shops/{pending_a}", "operator", 200),
    ("GET", "/api/v1/shops/{pending_a}/products", "a", 200),
    ("GET", "/api/v1/products/{pending_product_a}", "a", 200),
    ("GET", "/api/v1/products/{pending_product_a}", "operator", 200),
    ("GET", "/api/v1/products/{product_a}", None, 200),
    ("PATCH", "/api/v1/shops/{shop_a}", "a", 200),
    ("POST", "/api/v1/shops/{pending_a}/products", "a", 201),
    ("PATCH", "/api/v1/shops/{shop_b}", "operator", 200),
    ("POST", "/api/v1/shops/{shop_b}/products", "operator", 201),
    ("PATCH", "/api/v1/products/{pending_product_a}", "operator", 200),
    ("POST", "/api/v1/products/{product_a}/skus", "operator", 201),
    ("PATCH", "/api/v1/skus/{sku_a}", "operator", 200),
    ("POST", "/api/v1/products/{product_a}/provenance", "operator", 201),
    ("POST", "/api/v1/products/{product_a}/images", "operator", 201),
    ("DELETE", "/api/v1/products/{product_a}/images/{image_a}", "operator", 204),
    ("POST", "/api/v1/shops/{pending_a}/approve", "operator", 200),
    ("POST", "/api/v1/shops/{shop_b}/reject", "operator", 200),
]


@pytest.fixture
async def world(make_user, catalog: Catalog) -> dict[str, Any]:
    """Merchant A with an approved and a pending shop, merchant B, a buyer and an operator."""
    a, b, buyer = await make_user("a"), await make_user("b"), await make_user("buyer")
    shop_a = await catalog.shop(a)
    pending_a = await catalog.shop(a, approve=False, name="A 的新店")
    shop_b = await catalog.shop(b, name="B 的店")
    product_a = await catalog.product(a, shop_a["id"])
    pending_product_a = await catalog.product(a, pending_a["id"])
    image_a = (await catalog.upload(a, product_a["id"], png())).json()
    return {
        "actors": {"a": a, "b": b, "buyer": buyer, "operator": await catalog.operator()},
        "shop_a": shop_a["id"],
        "pending_a": pending_a["id"],
        "shop_b": shop_b["id"],
        "product_a": product_a["id"],
        "sku_a": product_a["skus"][0]["id"],
        "pending_product_a": pending_product_a["id"],
        "pending_sku_a": pending_product_a["skus"][0]["id"],
        "image_a": image_a["id"],
    }


async def call(
    client: httpx.AsyncClient, world: dict[str, Any], method: str, path: str, who: str | None
) -> httpx.Response:
    actor: Actor | None = world["actors"][who] if who else None
    route = re.sub(r"\{\w+\}", "{}", path)  # "/shops/{shop_a}" -> "/shops/{}"
    body = BODIES.get(f"{method} {route}", {})
    url = path.format(**world)
    if f"{method} {route}" == "PATCH /api/v1/shops/{}":  # no two shops' names look alike
        body = {"json": {"name": f"改个名字 {url}"}}
    headers = actor.headers if actor else {}
    return await client.request(method, url, headers=headers, **body)


async def snapshot(db) -> tuple[Any, ...]:
    """Everything a refused call might have changed."""
    db.expire_all()
    return (
        (await db.execute(select(Shop.id, Shop.name, Shop.status).order_by(Shop.id))).all(),
        (await db.execute(select(Product.id, Product.title).order_by(Product.id))).all(),
        (await db.execute(select(Sku.id, Sku.stock).order_by(Sku.id))).all(),
        await count(db, ProductImage),
        await count(db, ProvenanceEntry),
        await count(db, AuditEntry),
    )


async def test_route_by_route(client: httpx.AsyncClient, world: dict[str, Any], db) -> None:
    before = await snapshot(db)
    wrong = []
    for method, path, who, expected in DENIED:
        response = await call(client, world, method, path, who)
        if response.status_code != expected:
            wrong.append((method, path, who, expected, response.status_code, response.text))
        elif not response.headers["content-type"].startswith("application/problem+json"):
            wrong.append((method, path, who, "problem json", response.headers["content-type"]))
    assert wrong == []
    assert await snapshot(db) == before

    for method, path, who, expected in ALLOWED:
        response = await call(client, world, method, path, who)
        if response.status_code != expected:
            wrong.append((method, path, who, expected, response.status_code, response.text))
    assert wrong == []


async def test_every_operator_write_is_audited(
    client: httpx.AsyncClient, world: dict[str, Any], db
) -> None:
    last = await db.scalar(select(func.max(AuditEntry.id)))
    writes = [case for case in ALLOWED if case[0] != "GET" and case[2] == "operator"]
    for method, path, who, _ in writes:
        await call(client, world, method, path, who)
    new = (
        await db.execute(select(AuditEntry.actor_id, AuditEntry.action).where(AuditEntry.id > last))
    ).all()
    assert len(new) == len(writes), new
    assert {actor for actor, _ in new} == {world["actors"]["operator"].id}
