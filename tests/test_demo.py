"""The demo data: real places, approved shops, searchable products; loading it twice is harmless."""

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.accounts.models import AuditEntry
from originlive.catalog.models import Product, Shop, ShopStatus
from originlive.demo import BUYER_EMAIL, DEMO_PASSWORD, SHOPS, seed_session
from originlive.logistics.collection.models import CollectionGrower, CollectionRun
from originlive.logistics.models import Bag, Parcel, ParcelStatus


async def test_demo_tells_the_story(client: httpx.AsyncClient, db: AsyncSession) -> None:
    made = await seed_session(db)
    await db.commit()
    assert len(made) == len(SHOPS) + 5
    statuses = set(await db.scalars(select(Shop.status)))
    assert statuses == {ShopStatus.APPROVED}
    # Every approval was an operator's, and logged.
    approvals = await db.scalar(
        select(func.count()).where(
            AuditEntry.action == "shop.approve", AuditEntry.actor_id.is_not(None)
        )
    )
    assert approvals == len(SHOPS)

    # The kiwi orchard sits in an operator-added village of Wugong County, Shaanxi.
    found = (await client.get("/api/v1/products", params={"region": "610000"})).json()
    assert [p["origin"]["path_names"] for p in found["items"]] == [
        ["陕西省", "咸阳市", "武功县", "武功镇", "徐杨村"]
    ]
    # The mould factory is in a town of Dongguan, a city with no counties.
    found = (await client.get("/api/v1/products", params={"q": "模具", "region": "441900"})).json()
    assert found["total"] == 1
    assert found["items"][0]["shop"]["region"]["name"] == "长安镇"
    product = (await client.get(f"/api/v1/products/{found['items'][0]['id']}")).json()
    assert product["provenance"] and product["skus"][0]["price_cents"] == 1280000

    # The demo buyer signs in with the documented password and buys from the flash offer.
    token = await client.post(
        "/api/v1/auth/token", data={"username": BUYER_EMAIL, "password": DEMO_PASSWORD}
    )
    assert token.status_code == 200
    offer_id = int(next(m for m in made if m.startswith("flash offer")).split()[2].rstrip(":"))
    offer = (await client.get(f"/api/v1/offers/{offer_id}")).json()
    assert offer["remaining"] == 500 and offer["price_cents"] == 2990
    # It is pinned in the kiwi co-operative's room, which is live; its next one is tomorrow.
    feed = (await client.get("/api/v1/live-sessions")).json()
    assert [s["status"] for s in feed["items"]] == ["live", "scheduled"]
    assert feed["items"][0]["pinned_offer"]["id"] == offer_id
    order = await client.post(
        "/api/v1/orders",
        json={
            "items": [{"offer_id": offer_id, "quantity": 2}],
            "address": {
                "name": "王小满",
                "phone": "13800000000",
                "region_code": "610431102202",
                "detail": "徐杨村 5组",
            },
        },
        headers={
            "Authorization": f"Bearer {token.json()['access_token']}",
            "Idempotency-Key": "demo-1",
        },
    )
    assert order.status_code == 201, order.text
    assert order.json()["total_cents"] == 2 * 2990

    # Last night's session has ended; its orders travel. The demo buyer's parcel waits at the
    # village point with its pick-up code, which the buyer sees; another is in a bag.
    bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
    mine = (await client.get("/api/v1/orders", headers=bearer)).json()["items"]
    shipped = [o for o in mine if o["status"] == "shipped"]
    assert len(shipped) == 1
    (parcel,) = (
        await client.get(f"/api/v1/orders/{shipped[0]['id']}/parcels", headers=bearer)
    ).json()
    assert parcel["status"] == "ready_for_pickup" and parcel["pickup_code"]
    assert parcel["events"][-1]["node_name"] == "徐杨村村邮站"
    assert await db.scalar(select(func.count()).select_from(Bag)) == 1
    statuses = {p.status for p in await db.scalars(select(Parcel))}
    assert {ParcelStatus.READY_FOR_PICKUP, ParcelStatus.IN_TRANSIT} <= statuses
    # The co-operative's collection run for tomorrow: three growers, two weighed, one short.
    (run,) = await db.scalars(select(CollectionRun))
    growers = list(await db.scalars(select(CollectionGrower).order_by(CollectionGrower.id)))
    assert run.status.value == "collecting" and len(growers) == 3
    assert [g.weighed_grams for g in growers] == [301_500, 171_000, None]


async def test_demo_loads_once(client: httpx.AsyncClient, db: AsyncSession) -> None:
    await seed_session(db)
    await db.commit()
    products = await db.scalar(select(func.count()).select_from(Product))
    assert await seed_session(db) == ["demo data is already loaded"]
    await db.commit()
    assert await db.scalar(select(func.count()).select_from(Product)) == products
