"""The demo data: real places, approved shops, searchable products; loading it twice is harmless."""

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.accounts.models import AuditEntry, User
from originlive.catalog.models import Product, Shop, ShopStatus
from originlive.demo import (
    ANCHOR_EMAIL,
    ANCHOR_ORDERS,
    BUYER_EMAIL,
    DEMO_PASSWORD,
    LATE_REFUND_FEN,
    SHOPS,
    seed_session,
)
from originlive.ledger import service as ledger
from originlive.ledger.models import EntryKind, JournalEntry, Posting
from originlive.ledger.payouts.models import Payout, PayoutStatus
from originlive.logistics.collection.models import CollectionGrower, CollectionRun
from originlive.logistics.models import Bag, Parcel, ParcelStatus
from originlive.orders.models import Order, OrderItem


async def test_demo_tells_the_story(client: httpx.AsyncClient, db: AsyncSession) -> None:
    made = await seed_session(db)
    await db.commit()
    assert len(made) == len(SHOPS) + 7
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
    parcels = {p.status for p in await db.scalars(select(Parcel))}
    assert {ParcelStatus.READY_FOR_PICKUP, ParcelStatus.IN_TRANSIT} <= parcels
    # The co-operative's collection run for tomorrow: three growers, two weighed, one short.
    (run,) = await db.scalars(select(CollectionRun))
    growers = list(await db.scalars(select(CollectionGrower).order_by(CollectionGrower.id)))
    assert run.status.value == "collecting" and len(growers) == 3
    assert [g.weighed_grams for g in growers] == [301_500, 171_000, None]

    await _the_new_farmer_anchor_s_money(client, db)


async def _the_new_farmer_anchor_s_money(client: httpx.AsyncClient, db: AsyncSession) -> None:
    """The anchor sold both shops' goods in one session: some money released (less a refund
    after release and a payout), some pending; the book verifies."""
    token = await client.post(
        "/api/v1/auth/token", data={"username": ANCHOR_EMAIL, "password": DEMO_PASSWORD}
    )
    assert token.status_code == 200, token.text
    bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
    earnings = (await client.get("/api/v1/anchors/me/earnings", headers=bearer)).json()
    assert earnings["pending_fen"] > 0 and earnings["available_fen"] > 0
    assert earnings["paid_out_fen"] > 0 and earnings["under_way_fen"] == 0
    kinds = {line["kind"] for line in earnings["recent"]}
    assert {"capture", "release", "refund", "payout"} <= kinds
    # The session's line-up held both shops' goods; its order lines carry the anchor's plans.
    anchor = await db.scalar(select(User.id).where(User.email == ANCHOR_EMAIL))
    sold = await db.execute(
        select(Order.shop_id, OrderItem.plan_id, OrderItem.commission_bp)
        .join(Order, Order.id == OrderItem.order_id)
        .where(OrderItem.anchor_id == anchor)
        .distinct()
    )
    assert sorted(rate or 0 for _shop, _plan, rate in sold) == [1000, 1500]
    # One refund came after its order's release, from the available accounts.
    entries = list(await db.scalars(select(JournalEntry).order_by(JournalEntry.id)))
    released = {e.ref: e.at for e in entries if e.kind == EntryKind.RELEASE}
    late = [e for e in entries if e.kind == EntryKind.REFUND and e.ref in released]
    assert len(late) == 1 and late[0].at > released[late[0].ref]
    (refund,) = late
    postings = await db.execute(
        select(Posting.account, Posting.amount_fen).where(Posting.entry_id == refund.id)
    )
    legs = {name: fen for name, fen in postings}
    assert legs["clearing:payments"] == LATE_REFUND_FEN
    assert all(name.endswith(":available") for name in legs if name != "clearing:payments")
    assert len(released) == sum(delivered for *_, delivered in ANCHOR_ORDERS)
    (payout,) = await db.scalars(select(Payout))
    assert payout.status == PayoutStatus.PAID and payout.amount_fen == earnings["paid_out_fen"]
    conn = await db.connection()
    report = await conn.run_sync(ledger.verify)
    assert report.ok, report


async def test_demo_loads_once(client: httpx.AsyncClient, db: AsyncSession) -> None:
    await seed_session(db)
    await db.commit()
    products = await db.scalar(select(func.count()).select_from(Product))
    assert await seed_session(db) == ["demo data is already loaded"]
    await db.commit()
    assert await db.scalar(select(func.count()).select_from(Product)) == products
