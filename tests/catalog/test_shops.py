"""Shops over HTTP: opening, reading by status, listing, editing, approval and rejection;
names refused for what cannot be seen, and unique as a person sees them."""

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from originlive.accounts.models import AuditEntry
from originlive.catalog import service
from originlive.catalog.models import Shop
from originlive.settings import Settings
from tests.catalog.conftest import SHOP, Catalog, count
from tests.conftest import Actor


async def test_open_shop_is_pending_and_makes_a_merchant(
    client: httpx.AsyncClient, make_user
) -> None:
    owner = await make_user("grower")
    response = await client.post(
        "/api/v1/shops",
        json={**SHOP, "contact_name": "王师傅", "contact_phone": "+86 138-0000-0000"},
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text
    shop = response.json()
    assert shop["status"] == "pending"
    assert shop["owner_id"] == owner.id
    assert shop["contact_phone"] == "+86 138-0000-0000"
    assert shop["region"] == {
        "code": "610431",
        "name": "武功县",
        "level": "county",
        "path_names": ["陕西省", "咸阳市", "武功县"],
        "full_name": "陕西省 咸阳市 武功县",
    }
    assert shop["created_at"]
    me = (await client.get("/api/v1/auth/me", headers=owner.headers)).json()
    assert "merchant" in me["roles"]


async def test_open_shop_at_any_level(client: httpx.AsyncClient, make_user) -> None:
    owner = await make_user()
    for code, full_name in [("530000", "云南省"), ("500000", "重庆市")]:
        response = await client.post(
            "/api/v1/shops",
            json={**SHOP, "name": f"{full_name}果园", "region_code": code},
            headers=owner.headers,
        )
        assert response.status_code == 201
        assert response.json()["region"]["full_name"] == full_name


async def test_auto_approve(client: httpx.AsyncClient, make_user, settings: Settings, db) -> None:
    settings.auto_approve_shops = True
    owner = await make_user()
    response = await client.post("/api/v1/shops", json=SHOP, headers=owner.headers)
    assert response.json()["status"] == "approved"
    entry = await db.scalar(select(AuditEntry))
    assert entry.action == "shop.approve" and entry.detail == {"automatic": True}


async def test_bad_shops_are_refused_and_write_nothing(
    client: httpx.AsyncClient, make_user, db
) -> None:
    owner = await make_user()
    cases = [
        ({**SHOP, "region_code": "999999"}, "region_code"),
        ({**SHOP, "region_code": "abc"}, "region_code"),
        ({**SHOP, "name": "   "}, "name"),
        ({**SHOP, "name": "店" * 81}, "name"),
        ({**SHOP, "name": "a\x00b"}, "name"),
        ({**SHOP, "description": "NUL \x00 is refused by PostgreSQL"}, "description"),
        ({**SHOP, "description": "x" * 2001}, "description"),
        ({**SHOP, "contact_phone": "call me"}, "contact_phone"),
        ({**SHOP, "contact_phone": "+86 " + "1" * 20}, "contact_phone"),
        ({**SHOP, "owner_id": 1}, "owner_id"),
        ({"name": "无地区"}, "region_code"),
    ]
    for body, field in cases:
        response = await client.post("/api/v1/shops", json=body, headers=owner.headers)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert field in {e["field"] for e in response.json()["errors"]}, response.json()
    assert await count(db, Shop) == 0
    me = (await client.get("/api/v1/auth/me", headers=owner.headers)).json()
    assert me["roles"] == ["buyer"]


async def test_pending_shop_is_seen_by_owner_and_operators_only(
    client: httpx.AsyncClient, make_user, catalog: Catalog
) -> None:
    owner, other = await make_user("owner"), await make_user("other")
    shop = await catalog.shop(owner, approve=False)
    url = f"/api/v1/shops/{shop['id']}"
    assert (await client.get(url, headers=owner.headers)).status_code == 200
    assert (await client.get(url, headers=(await catalog.operator()).headers)).status_code == 200
    for headers in ({}, other.headers):
        response = await client.get(url, headers=headers)
        assert response.status_code == 404
        assert response.json()["type"] == "/problems/not-found"
    await catalog.approve(shop["id"])
    assert (await client.get(url)).json()["status"] == "approved"


async def test_list_shops(client: httpx.AsyncClient, make_user, catalog: Catalog) -> None:
    owner, other = await make_user("owner"), await make_user("other")
    kiwi = await catalog.shop(owner)
    tea = await catalog.shop(owner, name="普洱茶庄", region_code="530114")
    pending = await catalog.shop(owner, approve=False, name="待审小店")
    await catalog.shop(other, approve=False, name="别人的店")

    def ids(response: httpx.Response) -> list[int]:
        assert response.status_code == 200, response.text
        return [s["id"] for s in response.json()["items"]]

    assert ids(await client.get("/api/v1/shops")) == [tea["id"], kiwi["id"]]
    assert ids(await client.get("/api/v1/shops", params={"region": "530000"})) == [tea["id"]]
    assert ids(await client.get("/api/v1/shops", params={"region": "610400"})) == [kiwi["id"]]
    mine = await client.get("/api/v1/shops", params={"mine": "true"}, headers=owner.headers)
    assert ids(mine) == [pending["id"], tea["id"], kiwi["id"]]
    assert mine.json()["total"] == 3
    mine_pending = await client.get(
        "/api/v1/shops", params={"mine": "true", "status": "pending"}, headers=owner.headers
    )
    assert ids(mine_pending) == [pending["id"]]
    page = (await client.get("/api/v1/shops", params={"limit": 1, "offset": 1})).json()
    assert [s["id"] for s in page["items"]] == [kiwi["id"]]
    assert (page["total"], page["limit"], page["offset"]) == (2, 1, 1)

    operator = await catalog.operator()
    review = await client.get(
        "/api/v1/shops", params={"status": "pending"}, headers=operator.headers
    )
    assert len(ids(review)) == 2
    assert (await client.get("/api/v1/shops", params={"mine": "true"})).status_code == 401
    refused = await client.get("/api/v1/shops", params={"status": "pending"}, headers=other.headers)
    assert refused.status_code == 403
    unknown = await client.get("/api/v1/shops", params={"region": "999999"})
    assert unknown.status_code == 422


async def test_owner_edits_shop(client: httpx.AsyncClient, make_user, catalog: Catalog, db) -> None:
    owner = await make_user()
    shop = await catalog.shop(owner)
    url = f"/api/v1/shops/{shop['id']}"
    response = await client.patch(
        url,
        json={"name": "  武功果园  ", "region_code": "610400", "contact_name": "李姐"},
        headers=owner.headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "武功果园"
    assert body["region"]["full_name"] == "陕西省 咸阳市"
    assert body["contact_name"] == "李姐"
    assert body["description"] == SHOP["description"]
    cleared = await client.patch(url, json={"contact_name": None}, headers=owner.headers)
    assert cleared.json()["contact_name"] is None
    for bad in ({"name": None}, {"region_code": "999999"}, {"status": "approved"}):
        response = await client.patch(url, json=bad, headers=owner.headers)
        assert response.status_code == 422, bad
    assert (await client.get(url)).json()["name"] == "武功果园"
    # The owner's own edits are not audited; only the operator's approval is.
    assert (await db.scalars(select(AuditEntry.action))).all() == ["shop.approve"]


async def test_operator_edit_is_audited(
    client: httpx.AsyncClient, make_user, catalog: Catalog, db
) -> None:
    owner = await make_user()
    shop = await catalog.shop(owner, approve=False)
    operator = await catalog.operator()
    response = await client.patch(
        f"/api/v1/shops/{shop['id']}", json={"name": "改名"}, headers=operator.headers
    )
    assert response.status_code == 200
    entry = await db.scalar(select(AuditEntry).where(AuditEntry.action == "shop.update"))
    assert entry is not None
    assert (entry.actor_id, entry.target_type, entry.target_id) == (
        operator.id,
        "shop",
        str(shop["id"]),
    )
    assert entry.detail == {"name": "改名"}


async def test_approve_and_reject(
    client: httpx.AsyncClient, make_user, catalog: Catalog, db
) -> None:
    owner = await make_user()
    shop = await catalog.shop(owner, approve=False)
    operator = await catalog.operator()
    url = f"/api/v1/shops/{shop['id']}"

    rejected = await client.post(
        f"{url}/reject", json={"reason": "营业执照不清晰"}, headers=operator.headers
    )
    assert rejected.status_code == 200
    assert rejected.json()["status"] == "rejected"
    assert rejected.json()["reject_reason"] == "营业执照不清晰"
    assert (await client.get(url)).status_code == 404
    no_reason = await client.post(f"{url}/reject", json={}, headers=operator.headers)
    assert no_reason.status_code == 422

    approved = await client.post(f"{url}/approve", headers=operator.headers)
    assert approved.json()["status"] == "approved"
    assert approved.json()["reject_reason"] is None
    assert (await client.get(url)).status_code == 200

    entries = (await db.scalars(select(AuditEntry).order_by(AuditEntry.id))).all()
    assert [(e.action, e.actor_id, e.target_id) for e in entries] == [
        ("shop.reject", operator.id, str(shop["id"])),
        ("shop.approve", operator.id, str(shop["id"])),
    ]
    assert entries[0].detail == {"reason": "营业执照不清晰"}
    missing = await client.post("/api/v1/shops/999999/approve", headers=operator.headers)
    assert missing.status_code == 404


# Names a person must recognise (issue 15, defect 8)

INVISIBLE_NAMES = [
    "武功猕猴桃合作社\u200b",  # the tester's: a trailing zero-width space
    "\u202e社作合桃猴猕功武",  # right-to-left override
    "武功\u2066猕猴桃\u2069合作社",  # an isolate
    "\ufeff武功猕猴桃合作社",  # a BOM
    "武功\u0085猕猴桃",  # C1: next line
    "武功\u009b猕猴桃",  # C1: control sequence introducer
    "猕猴\u00ad桃",  # soft hyphen
    "武功\u200d猕猴桃",  # a joiner that joins no emoji
    "\u200b\u200b",  # nothing but zero-width spaces
    "\u3164",  # a Hangul filler, drawn as nothing
    "\u3000\u00a0 ",  # only spaces
    "\U000e0041\U000e0042",  # tag characters
    "\ue000店",  # private use
]


@pytest.mark.parametrize("name", INVISIBLE_NAMES, ids=ascii)
async def test_a_name_with_what_cannot_be_seen_is_refused(
    client: httpx.AsyncClient, make_user, catalog: Catalog, db, name: str
) -> None:
    owner = await make_user()
    response = await client.post("/api/v1/shops", json=SHOP | {"name": name}, headers=owner.headers)
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["name"]
    assert await count(db, Shop) == 0
    shop = await catalog.shop(owner, name="斗南花园")
    renamed = await client.patch(
        f"/api/v1/shops/{shop['id']}", json={"name": name}, headers=owner.headers
    )
    assert renamed.status_code == 422, renamed.text
    assert (await client.get(f"/api/v1/shops/{shop['id']}")).json()["name"] == "斗南花园"


async def test_names_are_folded_and_emoji_keep_their_joiners(
    client: httpx.AsyncClient, make_user
) -> None:
    owner = await make_user()
    for typed, kept in [
        # Full-width letters and spaces fold; full-width brackets keep their form.
        ("  ＡＢＣ　　农场（武功）  ", "ABC 农场（武功）"),
        ("👩\u200d🌾 花园", "👩\u200d🌾 花园"),  # woman farmer: one picture
    ]:
        response = await client.post(
            "/api/v1/shops", json=SHOP | {"name": typed}, headers=owner.headers
        )
        assert response.status_code == 201, response.text
        assert response.json()["name"] == kept


async def test_a_name_that_looks_like_another_shops_is_a_conflict(
    client: httpx.AsyncClient, make_user, catalog: Catalog, db
) -> None:
    first, other = await make_user("first"), await make_user("other")
    await catalog.shop(first, name="ABC 农场")
    for look_alike in ["ＡＢＣ 农场", "abc 农场", "ABC\u3000农场", "Abc  农场", "ABC 农场\ufe0f"]:
        response = await client.post(
            "/api/v1/shops", json=SHOP | {"name": look_alike}, headers=other.headers
        )
        assert response.status_code == 409, (look_alike, response.text)
        problem = response.json()
        assert problem["type"] == "/problems/conflict"
        assert "looks like" in problem["detail"]
        assert [e["field"] for e in problem["errors"]] == ["name"]
    assert await count(db, Shop) == 1
    me = (await client.get("/api/v1/auth/me", headers=other.headers)).json()
    assert me["roles"] == ["buyer"]  # nothing written: not even the merchant role


async def test_renaming_to_another_shops_name_is_a_conflict(
    client: httpx.AsyncClient, make_user, catalog: Catalog
) -> None:
    owner = await make_user()
    await catalog.shop(owner, name="ABC 农场")
    mine = await catalog.shop(owner, name="DEF 农场")
    url = f"/api/v1/shops/{mine['id']}"
    taken = await client.patch(url, json={"name": "ａｂｃ 农场"}, headers=owner.headers)
    assert taken.status_code == 409, taken.text
    assert taken.json()["errors"][0]["field"] == "name"
    assert (await client.get(url)).json()["name"] == "DEF 农场"
    own = await client.patch(url, json={"name": "def 农场"}, headers=owner.headers)
    assert own.status_code == 200 and own.json()["name"] == "def 农场"  # its own look is free


async def test_the_unique_index_settles_a_race(
    client: httpx.AsyncClient, make_user, catalog: Catalog, db, monkeypatch
) -> None:
    """Two openings at once both pass the check; the index refuses the second."""

    async def too_late(*_args: Any, **_kwargs: Any) -> None:
        return None

    owner = await make_user()
    await catalog.shop(owner, name="ABC 农场")
    mine = await catalog.shop(owner, name="DEF 农场")
    monkeypatch.setattr(service, "_check_name_free", too_late)
    opened = await client.post(
        "/api/v1/shops", json=SHOP | {"name": "ａｂｃ 农场"}, headers=owner.headers
    )
    assert opened.status_code == 409, opened.text
    url = f"/api/v1/shops/{mine['id']}"
    renamed = await client.patch(url, json={"name": "Abc 农场"}, headers=owner.headers)
    assert renamed.status_code == 409, renamed.text
    form = {"name": "Abc 农场", "region_code": "610431", "description": "",
            "contact_name": "", "contact_phone": ""}  # fmt: skip
    page = await client.post(f"/console/shops/{mine['id']}", data=form, headers=owner.headers)
    assert page.status_code == 409, page.text
    assert "DEF 农场" in page.text  # the shop as it is, beside what was typed
    assert (await client.get(url)).json()["name"] == "DEF 农场"
    assert await count(db, Shop) == 2


async def _console_shops(client: httpx.AsyncClient, merchant: Actor) -> list[str]:
    mine = await client.get("/api/v1/shops?mine=true", headers=merchant.headers)
    return [s["name"] for s in mine.json()["items"]]


async def test_the_console_says_a_name_is_taken_or_holds_invisible_characters(
    client: httpx.AsyncClient, make_user, catalog: Catalog
) -> None:
    other, merchant = await make_user("other"), await make_user("merchant")
    await catalog.shop(other, name="ABC 农场")
    form = {"name": "ＡＢＣ 农场", "region_code": "610431", "description": "",
            "contact_name": "", "contact_phone": ""}  # fmt: skip
    taken = await client.post("/console/shops", data=form, headers=merchant.headers)
    assert taken.status_code == 409
    assert "Another shop already has a name that looks like this one." in taken.text
    assert "ＡＢＣ 农场" in taken.text  # what was typed stays
    hidden = await client.post(
        "/console/shops", data=form | {"name": "DEF\u202e 农场"}, headers=merchant.headers
    )
    assert hidden.status_code == 422
    assert "Remove the invisible or control characters" in hidden.text
    assert await _console_shops(client, merchant) == []

    opened = await client.post(
        "/console/shops", data=form | {"name": "DEF 农场"}, headers=merchant.headers
    )
    assert opened.status_code == 303, opened.text
    url = opened.headers["location"].split("?")[0]
    renamed = await client.post(url, data=form | {"name": "abc 农场"}, headers=merchant.headers)
    assert renamed.status_code == 409
    assert "Another shop already has a name that looks like this one." in renamed.text
    assert await _console_shops(client, merchant) == ["DEF 农场"]
