"""Samples on both databases: an approved request becomes a free paid order that travels
through the delivery network like any other; a refusal, an empty shelf or a second approval
writes nothing more."""

from sqlalchemy import select, update

from originlive.catalog.models import Sku
from originlive.ledger import service as ledger
from originlive.ledger.settlement import service as settlement
from tests.affiliates.conftest import Library, MakeActor, rows
from tests.logistics.conftest import VILLAGE, Network, network  # noqa: F401 (a fixture)
from tests.orders.conftest import ADDRESS, units


async def test_an_approved_sample_is_a_free_order_shipped_through_the_network(
    library: Library,
    network: Network,  # noqa: F811
) -> None:
    client, merchant = library.client, library.merchant
    anchor = await library.anchor()
    plan = await library.plan()
    await library.join(anchor, plan["id"])
    asked = await library.ask(anchor, plan["id"], address=ADDRESS | {"region_code": VILLAGE})
    assert asked.status_code == 201, asked.text
    sample = asked.json()
    shelf = (await units(library.db, library.market.sku_id))["shelf"]

    url = f"/api/v1/affiliates/samples/{sample['id']}"
    approved = await client.post(f"{url}/approve", headers=merchant.headers)
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved" and approved.json()["order_status"] == "paid"
    order_id = approved.json()["order_id"]
    order = (await client.get(f"/api/v1/orders/{order_id}", headers=anchor.headers)).json()
    assert order["status"] == "paid" and order["total_cents"] == 0
    assert order["buyer_id"] == anchor.id and order["address"]["region_code"] == VILLAGE
    assert [(i["unit_price_cents"], i["quantity"]) for i in order["items"]] == [(0, 1)]
    assert [e["to_status"] for e in order["events"]] == ["paid"]
    assert (await units(library.db, library.market.sku_id))["shelf"] == shelf - 1

    before = await rows(library.db)
    again = await client.post(f"{url}/approve", headers=merchant.headers)
    assert again.status_code == 409, again.text
    assert await rows(library.db) == before

    shipped = await client.post(f"{url}/ship", headers=merchant.headers)
    assert shipped.status_code == 200, shipped.text
    assert shipped.json()["status"] == "shipped" and shipped.json()["order_status"] == "shipped"
    (parcel,) = (
        await client.get(f"/api/v1/orders/{order_id}/parcels", headers=anchor.headers)
    ).json()
    assert parcel["route"][-1] == network.point["id"]
    mine = await client.get("/api/v1/affiliates/samples", headers=anchor.headers)
    assert [s["status"] for s in mine.json()] == ["shipped"]


async def test_a_refused_or_unsendable_sample_writes_nothing_more(
    library: Library, make_user: MakeActor
) -> None:
    client, merchant = library.client, library.merchant
    anchor = await library.anchor()
    plan = await library.plan()
    await library.join(anchor, plan["id"])
    sample = (await library.ask(anchor, plan["id"])).json()
    url = f"/api/v1/affiliates/samples/{sample['id']}"

    stranger = await make_user("stranger")
    before = await rows(library.db)
    for who in (stranger, anchor):  # neither manages the shop
        assert (await client.post(f"{url}/approve", headers=who.headers)).status_code == 404
    await library.db.execute(update(Sku).where(Sku.id == library.market.sku_id).values(stock=0))
    await library.db.commit()
    empty = await client.post(f"{url}/approve", headers=merchant.headers)
    assert empty.status_code == 409 and empty.json()["type"] == "/problems/sold-out"
    assert await rows(library.db) == before
    pending = await client.get(
        f"/api/v1/affiliates/shops/{library.market.shop_id}/samples?status=requested",
        headers=merchant.headers,
    )
    assert [s["id"] for s in pending.json()] == [sample["id"]]

    rejected = await client.post(
        f"{url}/reject", json={"reason": "库存不足"}, headers=merchant.headers
    )
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    assert rejected.json()["reject_reason"] == "库存不足"
    # Turned down, the request is closed: the anchor may ask again.
    assert (await library.ask(anchor, plan["id"])).status_code == 201


async def test_a_sample_s_cost_comes_out_of_commission_when_the_plan_says_so(
    app,
    library: Library,
    network: Network,  # noqa: F811
) -> None:
    anchor = await library.anchor()
    plan = await library.plan(sample_cost_from_commission=True, name="样品抵佣")
    assert (await library.join(anchor, plan["id"])).status_code == 201
    asked = await library.ask(anchor, plan["id"], address=ADDRESS | {"region_code": VILLAGE})
    assert asked.status_code == 201, asked.text
    url = f"/api/v1/affiliates/samples/{asked.json()['id']}/approve"
    assert (await library.client.post(url, headers=library.merchant.headers)).is_success
    policy = settlement.policy_of(app.state.settings)
    done = await settlement.run(app.state.order_writer, policy=policy)
    assert done.samples == 1
    assert not (await settlement.run(app.state.order_writer, policy=policy)).anything
    async with app.state.engine.connect() as conn:
        held = await conn.run_sync(lambda c: ledger.balances(c, prefix=""))
        report = await conn.run_sync(ledger.verify)
    price = await library.db.scalar(select(Sku.price_cents).where(Sku.id == library.market.sku_id))
    assert held == {
        f"anchor:{anchor.id}:available": -price,  # netted against later commission
        f"shop:{library.market.shop_id}:available": price,
    }
    assert report.ok
