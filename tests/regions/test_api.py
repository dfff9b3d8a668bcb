"""Regions over HTTP: the shipped tree, look-ups, search and operator-added nodes."""

import httpx
from sqlalchemy import func, select

from originlive.accounts.models import AuditEntry
from originlive.regions.models import Region


async def test_provinces_without_parent(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/regions")
    assert response.status_code == 200
    provinces = {r["code"]: r for r in response.json()}
    assert provinces["530000"]["name"] == "云南省"
    assert all(r["level"] == "province" and r["parent_code"] is None for r in provinces.values())


async def test_children_and_lookup(client: httpx.AsyncClient) -> None:
    children = (await client.get("/api/v1/regions", params={"parent": "610400"})).json()
    assert {
        "code": "610431",
        "name": "武功县",
        "level": "county",
        "parent_code": "610400",
    } in children
    one = await client.get("/api/v1/regions/610431")
    assert one.json() == {
        "code": "610431",
        "name": "武功县",
        "level": "county",
        "parent_code": "610400",
    }


async def test_unknown_code_is_404_problem(client: httpx.AsyncClient) -> None:
    for url in ("/api/v1/regions/999999", "/api/v1/regions?parent=999999"):
        response = await client.get(url)
        assert response.status_code == 404
        assert response.json()["type"] == "/problems/not-found"


async def test_search_by_name(client: httpx.AsyncClient) -> None:
    found = (await client.get("/api/v1/regions", params={"q": "武功"})).json()
    assert found[0]["code"] == "610431"
    # LIKE wildcards in the query are taken literally.
    assert (await client.get("/api/v1/regions", params={"q": "%"})).json() == []


async def test_operator_adds_township_and_village(
    client: httpx.AsyncClient, make_operator, db
) -> None:
    operator = await make_operator()
    township = await client.post(
        "/api/v1/regions",
        json={"code": "610431100", "name": "普集街道", "parent_code": "610431"},
        headers=operator.headers,
    )
    assert township.status_code == 201, township.text
    assert township.json()["level"] == "township"
    village = await client.post(
        "/api/v1/regions",
        json={"code": "610431100201", "name": "演示村", "parent_code": "610431100"},
        headers=operator.headers,
    )
    assert village.json()["level"] == "village"
    # The new village lies within Shaanxi's subtree.
    region = await db.get(Region, "610431100201")
    assert region is not None and region.path.startswith("610000/610400/610431/")
    actions = (await db.scalars(select(AuditEntry.action))).all()
    assert actions.count("region.create") == 2


async def test_region_rules(client: httpx.AsyncClient, make_operator, make_user, db) -> None:
    operator = await make_operator()
    buyer = await make_user("buyer")
    before = await db.scalar(select(func.count()).select_from(Region))
    cases = [
        ({"code": "610431100", "name": "x", "parent_code": "610431"}, buyer.headers, 403),
        ({"code": "610431100", "name": "x", "parent_code": "610431"}, {}, 401),
        ({"code": "530102100", "name": "x", "parent_code": "610431"}, operator.headers, 422),
        ({"code": "610400100", "name": "x", "parent_code": "610400"}, operator.headers, 422),
        ({"code": "610431100", "name": "x", "parent_code": "999999"}, operator.headers, 422),
        ({"code": "61043110", "name": "x", "parent_code": "610431"}, operator.headers, 422),
        ({"code": "610431100", "name": "", "parent_code": "610431"}, operator.headers, 422),
    ]
    for body, headers, status in cases:
        response = await client.post("/api/v1/regions", json=body, headers=headers)
        assert response.status_code == status, (body, response.text)
    assert await db.scalar(select(func.count()).select_from(Region)) == before


async def test_towns_of_a_city_without_counties(client: httpx.AsyncClient, make_operator) -> None:
    # Dongguan (441900) has towns directly below it (shipped ones too: 长安镇 is 441900119);
    # a city with counties does not.
    operator = await make_operator()
    town = await client.post(
        "/api/v1/regions",
        json={"code": "441900901", "name": "演示镇", "parent_code": "441900"},
        headers=operator.headers,
    )
    assert town.status_code == 201, town.text
    assert town.json()["level"] == "township"
    refused = await client.post(
        "/api/v1/regions",
        json={"code": "610400100", "name": "x", "parent_code": "610400"},
        headers=operator.headers,
    )
    assert refused.status_code == 422


async def test_shipped_tree_is_whole(client: httpx.AsyncClient) -> None:
    provinces = (await client.get("/api/v1/regions")).json()
    assert len(provinces) == 31  # the mainland's provinces, regions and municipalities
    chongqing = (await client.get("/api/v1/regions", params={"parent": "500000"})).json()
    assert {r["name"] for r in chongqing} == {"市辖区", "县"}
    shizhu = (await client.get("/api/v1/regions/500240")).json()
    assert shizhu == {
        "code": "500240",
        "name": "石柱土家族自治县",
        "level": "county",
        "parent_code": "500200",
    }
