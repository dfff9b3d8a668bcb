"""Outside carriers: the sandbox carrier books waybills and its courier's signed webhooks move
its parcels to delivered (and the order with them); forged, stale, malformed and replayed
webhooks; events in any order; manual carriers, which get no webhooks; the status table."""

import datetime as dt
import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from originlive.db import utcnow
from originlive.logistics import carriers
from originlive.logistics.models import ParcelStatus
from tests.conftest import Actor
from tests.logistics.conftest import Network
from tests.servers import free_port

WEBHOOK = "/api/v1/carriers/sandbox/webhook"
STEP = dt.timedelta(seconds=1)  # the schedule's step in these tests: its events a second apart

MakeUser = Callable[..., Awaitable[Actor]]


async def deliver(
    app: Any,
    *,
    at: dt.datetime | None = None,
    url: str = WEBHOOK,
    retries: carriers.Retries | None = None,
    client: httpx.AsyncClient | None = None,
) -> int:
    """Run the sandbox carrier's courier once, as of ``at`` by its clock (a minute from now:
    everything due), posting to the app in-process unless another client is given."""
    secret = app.state.carrier_secrets["sandbox"]
    when = at or utcnow() + dt.timedelta(minutes=1)
    if client is not None:
        return await carriers.deliver_due(
            app.state.engine, client, url=url, secret=secret, step=STEP, now=when, retries=retries
        )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as own:
        return await carriers.deliver_due(
            app.state.engine, own, url=url, secret=secret, step=STEP, now=when, retries=retries
        )


def signed(body: bytes, secret: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    """Headers of a webhook signed as the sandbox carrier signs it."""
    stamp = int(time.time()) if timestamp is None else timestamp
    return {
        "Content-Type": "application/json",
        carriers.SIGNATURE_HEADER: carriers.sign(secret, body, stamp),
    }


async def post_event(network: Network, event: carriers.Planned) -> httpx.Response:
    """One event of the sandbox's schedule, posted as its courier would."""
    body = event.body()
    secret = network.app.state.carrier_secrets["sandbox"]
    return await network.market.client.post(WEBHOOK, content=body, headers=signed(body, secret))


async def parcel_of(network: Network, code: str) -> dict[str, Any]:
    seen = await network.market.client.get(
        f"/api/v1/parcels/{code}", headers=network.market.merchant.headers
    )
    assert seen.status_code == 200, seen.text
    return dict(seen.json())


async def order_status(network: Network, order: dict[str, Any], buyer: Actor) -> str:
    fresh = await network.market.client.get(f"/api/v1/orders/{order['id']}", headers=buyer.headers)
    return str(fresh.json()["status"])


def schedule(parcel: dict[str, Any]) -> list[carriers.Planned]:
    """The sandbox's schedule for the parcel: from the time it was shipped (its first event)."""
    handed_at = dt.datetime.fromisoformat(parcel["events"][0]["happened_at"])
    return carriers.plan(parcel["carrier_tracking"], handed_at=handed_at, step=STEP)


# The status table


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ACCEPTED", "picked_up"),
        ("DEPARTED", "in_transit"),
        ("IN_TRANSIT", "in_transit"),
        ("ARRIVED", "at_node"),
        ("OUT_FOR_DELIVERY", "out_for_delivery"),
        ("AT_PICKUP_POINT", "ready_for_pickup"),
        ("DELIVERY_FAILED", "failed_attempt"),
        ("EXCEPTION", "failed_attempt"),
        ("SIGNED", "delivered"),
        ("RETURNED", "returned"),
        ("signed", None),  # its words are upper case
        ("LOST", None),
        ("", None),
    ],
)
def test_the_sandbox_carriers_words_map_to_our_statuses(code: str, status: str | None) -> None:
    mapped = carriers.sandbox_status(code)
    assert (mapped.value if mapped else None) == status


def test_every_sandbox_word_is_in_the_table_and_no_carrier_says_pending() -> None:
    assert set(carriers.SANDBOX_STATUSES) == {
        "ACCEPTED", "DEPARTED", "IN_TRANSIT", "ARRIVED", "OUT_FOR_DELIVERY", "AT_PICKUP_POINT",
        "DELIVERY_FAILED", "EXCEPTION", "SIGNED", "RETURNED",
    }  # fmt: skip
    assert ParcelStatus.PENDING not in carriers.SANDBOX_STATUSES.values()


def test_the_sandbox_schedule() -> None:
    start = dt.datetime(2026, 5, 1, 8, tzinfo=dt.UTC)
    plain = carriers.plan("SBX0000000001", handed_at=start, step=dt.timedelta(minutes=1))
    assert [p.status for p in plain] == [
        "ACCEPTED", "DEPARTED", "ARRIVED", "OUT_FOR_DELIVERY", "SIGNED",
    ]  # fmt: skip
    assert [p.at for p in plain] == [start + dt.timedelta(minutes=n) for n in range(1, 6)]
    assert len({p.event_id for p in plain}) == 5
    failing = carriers.plan("SBX0000000009", handed_at=start, step=dt.timedelta(minutes=1))
    assert [p.status for p in failing] == [
        "ACCEPTED", "DEPARTED", "ARRIVED", "OUT_FOR_DELIVERY", "DELIVERY_FAILED",
        "OUT_FOR_DELIVERY", "SIGNED",
    ]  # fmt: skip
    assert failing[4].reason is not None and len({p.event_id for p in failing}) == 7
    # The schedule is the waybill's: worked out again, it is the same (what makes it the outbox).
    assert carriers.plan("SBX0000000009", handed_at=start, step=dt.timedelta(minutes=1)) == failing


# The sandbox carrier over the API


async def test_the_sandbox_carrier_books_a_waybill_and_its_webhooks_deliver_the_order(
    network: Network, make_user: MakeUser
) -> None:
    buyer = await make_user("buyer")
    order = await network.paid_order(buyer)
    (parcel,) = await network.ship(order, carrier="Sandbox")  # any case picks it
    assert parcel["carrier"] == "sandbox" and parcel["destination_id"] is None
    assert re.fullmatch(r"SBX[0-9]{10}", parcel["carrier_tracking"]), parcel
    assert parcel["status"] == "pending" and parcel["route"] == []
    plan = schedule(parcel)

    # Two steps on, the carrier has said two things, and said them once.
    halfway = plan[1].at + STEP / 2
    assert await deliver(network.app, at=halfway) == 2
    assert await deliver(network.app, at=halfway) == 0
    seen = await parcel_of(network, parcel["code"])
    assert seen["status"] == "in_transit"
    assert [(e["status"], e["source"]) for e in seen["events"]] == [
        ("pending", "system"), ("picked_up", "carrier"), ("in_transit", "carrier"),
    ]  # fmt: skip
    assert seen["events"][2]["reason"] == "始发分拨中心"
    assert await order_status(network, order, buyer) == "shipped"

    assert await deliver(network.app) == len(plan) - 2
    seen = await parcel_of(network, parcel["code"])
    assert seen["status"] == "delivered"
    assert [e["status"] for e in seen["events"]] == [
        "pending", "picked_up", "in_transit", "at_node", "out_for_delivery", "delivered",
    ]  # fmt: skip
    # The carrier's own times, and none of them doubted.
    assert [dt.datetime.fromisoformat(e["happened_at"]) for e in seen["events"][1:]] == [
        p.at for p in plan
    ]
    assert all(e["claimed_at"] is None for e in seen["events"])
    assert await order_status(network, order, buyer) == "delivered"
    assert await deliver(network.app) == 0  # a delivered parcel is the courier's no more


async def test_split_parcels_get_a_waybill_each_and_the_order_waits_for_both(
    network: Network, make_user: MakeUser
) -> None:
    buyer = await make_user("buyer")
    order = await network.paid_order(buyer, quantity=2)
    line = order["items"][0]["id"]
    one = {"items": [{"order_item_id": line, "quantity": 1}]}
    first, second = await network.ship(order, carrier="sandbox", parcels=[one, one])
    assert first["carrier_tracking"] != second["carrier_tracking"]
    for event in schedule(first):
        assert (await post_event(network, event)).status_code == 200
    assert (await parcel_of(network, first["code"]))["status"] == "delivered"
    assert await order_status(network, order, buyer) == "shipped"  # the other is on its way
    assert await deliver(network.app) == len(schedule(second))
    assert await order_status(network, order, buyer) == "delivered"


async def test_nobody_home_once_then_delivered(network: Network, make_user: MakeUser) -> None:
    buyer = await make_user("buyer")
    order = await network.paid_order(buyer)
    # The merchant's own waybill is taken; ending in 9, the sandbox finds nobody home once.
    (parcel,) = await network.ship(order, carrier="sandbox", tracking_number="SBX-TEST-0009")
    assert parcel["carrier_tracking"] == "SBX-TEST-0009"
    assert await deliver(network.app) == 7
    seen = await parcel_of(network, parcel["code"])
    assert [e["status"] for e in seen["events"]][4:] == [
        "out_for_delivery", "failed_attempt", "out_for_delivery", "delivered",
    ]  # fmt: skip
    assert seen["events"][5]["reason"] == "派送站 · 无人在家，改日再派"
    assert seen["status"] == "delivered"
    assert await order_status(network, order, buyer) == "delivered"


async def test_a_forged_or_stale_webhook_is_refused_and_writes_nothing(
    network: Network, make_user: MakeUser
) -> None:
    client = network.market.client
    buyer = await make_user("buyer")
    (parcel,) = await network.ship(await network.paid_order(buyer), carrier="sandbox")
    signed_for = schedule(parcel)[-1].body()
    secret = network.app.state.carrier_secrets["sandbox"]
    for headers in (
        signed(signed_for, b"not the carrier's secret"),
        signed(signed_for, secret, timestamp=int(time.time()) - 600),  # a replay from before
        {"Content-Type": "application/json"},
        {carriers.SIGNATURE_HEADER: "t=abc,v1=00"},
    ):
        refused = await client.post(WEBHOOK, content=signed_for, headers=headers)
        assert refused.status_code == 403, refused.text
        assert refused.json()["type"] == "/problems/bad-signature"
    # A body changed after signing is a forgery too.
    other = signed_for.replace(b"SIGNED", b"RETURNED")
    tampered = await client.post(WEBHOOK, content=other, headers=signed(signed_for, secret))
    assert tampered.status_code == 403
    seen = await parcel_of(network, parcel["code"])
    assert seen["status"] == "pending" and len(seen["events"]) == 1


async def test_a_replayed_event_is_recorded_once(network: Network, make_user: MakeUser) -> None:
    buyer = await make_user("buyer")
    (parcel,) = await network.ship(await network.paid_order(buyer), carrier="sandbox")
    plan = schedule(parcel)
    first = await post_event(network, plan[0])
    again = await post_event(network, plan[0])
    assert first.status_code == again.status_code == 200
    assert first.json()["recorded"] == [
        {"parcel_code": parcel["code"], "status": "picked_up", "duplicate": False}
    ]
    assert again.json()["recorded"][0]["duplicate"] is True
    seen = await parcel_of(network, parcel["code"])
    assert [e["status"] for e in seen["events"]] == ["pending", "picked_up"]
    # The courier posts what is not in yet, not the one already acknowledged.
    assert await deliver(network.app) == len(plan) - 1
    seen = await parcel_of(network, parcel["code"])
    assert [e["status"] for e in seen["events"]].count("picked_up") == 1
    # The same event id for another event is refused, and changes nothing.
    reused = carriers.Planned(
        plan[0].event_id, plan[0].waybill, "DEPARTED", plan[0].at, "始发分拨中心"
    )
    assert (await post_event(network, reused)).status_code == 409


async def test_events_out_of_order_leave_the_parcel_where_they_imply(
    network: Network, make_user: MakeUser
) -> None:
    buyer = await make_user("buyer")
    order = await network.paid_order(buyer)
    first, second = (
        (await network.ship(await network.paid_order(buyer), carrier="sandbox"))[0],
        (await network.ship(order, carrier="sandbox"))[0],
    )
    accepted, departed, arrived, *_ = schedule(first)
    # Arrived came before the collection it followed: the parcel is where arrived says.
    for event in (arrived, accepted, departed):
        assert (await post_event(network, event)).status_code == 200
    assert (await parcel_of(network, first["code"]))["status"] == "at_node"

    # Delivered first; what happened before it, coming late, is kept and changes nothing.
    *_, last = plan = schedule(second)
    done = await post_event(network, last)
    assert done.json()["recorded"][0]["status"] == "delivered"
    assert await order_status(network, order, buyer) == "delivered"
    for event in plan[:-1]:
        late = await post_event(network, event)
        assert late.status_code == 200 and late.json()["recorded"][0]["status"] == "delivered"
    seen = await parcel_of(network, second["code"])
    assert seen["status"] == "delivered"
    assert [e["status"] for e in seen["events"]] == [
        "pending", "picked_up", "in_transit", "at_node", "out_for_delivery", "delivered",
    ]  # fmt: skip
    # Something that happened after delivery is a conflict: delivered stays.
    after = carriers.Planned(
        f"sbx-{last.waybill}-99", last.waybill, "RETURNED", last.at + STEP, "退回"
    )
    assert (await post_event(network, after)).status_code == 409
    assert (await parcel_of(network, second["code"]))["status"] == "delivered"


async def test_webhooks_the_platform_cannot_take(network: Network, make_user: MakeUser) -> None:
    client = network.market.client
    buyer = await make_user("buyer")
    (parcel,) = await network.ship(await network.paid_order(buyer), carrier="sandbox")
    secret = network.app.state.carrier_secrets["sandbox"]
    event = json.loads(schedule(parcel)[0].body())["events"][0]

    async def send(body: bytes, name: str = "sandbox") -> httpx.Response:
        url = f"/api/v1/carriers/{name}/webhook"
        return await client.post(url, content=body, headers=signed(body, secret))

    def of(*events: dict[str, Any]) -> bytes:
        return json.dumps({"events": list(events)}).encode()

    # No such carrier, or one that sends no webhooks: 404 (and the carrier stops).
    assert (await send(of(event), "nowhere")).status_code == 404
    assert (await send(of(event), "中国邮政")).status_code == 404
    # Signed, but not JSON, or nested past the limit: 400.
    for body in (b"{not json", b"[" * 40 + b"]" * 40):
        malformed = await send(body)
        assert malformed.status_code == 400, malformed.text
    # Signed JSON that is not the carrier's events: 422, naming what is wrong.
    for body, field in (
        (b"{}", "events"),
        (of(), "events"),
        (of(event | {"time": "2026-05-01T08:00:00"}), "events.0.time"),  # no zone
        (of(event | {"id": "short"}), "events.0.id"),
        (of(event | {"status": "LOST"}), "events.0.status"),
        (of(event | {"location": "中\u200b转"}), "events.0.location"),
    ):
        refused = await send(body)
        assert refused.status_code == 422, (body, refused.text)
        assert refused.json()["errors"][0]["field"] == field
    # A waybill no parcel of the carrier has: 404; with a good event beside it, neither is in.
    unknown = await send(of(event, event | {"id": "sbx-other-1", "waybill": "SBX9999999990"}))
    assert unknown.status_code == 404
    seen = await parcel_of(network, parcel["code"])
    assert seen["status"] == "pending" and len(seen["events"]) == 1
    assert (await send(of(event))).status_code == 200


async def test_a_manual_carrier_takes_the_merchants_waybill_and_gets_no_webhooks(
    network: Network, make_user: MakeUser
) -> None:
    client, merchant = network.market.client, network.market.merchant
    buyer = await make_user("buyer")
    order = await network.paid_order(buyer)
    url = f"/api/v1/orders/{order['id']}/ship"
    for body, field in (
        ({"carrier": "顺丰"}, "tracking_number"),  # we cannot book with it: its waybill, please
        ({"tracking_number": "SF1234567"}, None),  # a waybill of no carrier
    ):
        refused = await client.post(url, json=body, headers=merchant.headers)
        assert refused.status_code == 422, refused.text
        if field:
            assert refused.json()["errors"][0]["field"] == field
    assert await order_status(network, order, buyer) == "paid"
    (parcel,) = await network.ship(order, carrier="中国邮政", tracking_number="9876543210")
    assert (parcel["carrier"], parcel["carrier_tracking"]) == ("中国邮政", "9876543210")
    assert await deliver(network.app) == 0
    seen = await parcel_of(network, parcel["code"])
    assert seen["status"] == "pending" and len(seen["events"]) == 1


async def test_the_courier_posts_again_until_acknowledged_and_stops_on_a_refusal(
    network: Network, make_user: MakeUser
) -> None:
    buyer = await make_user("buyer")
    (parcel,) = await network.ship(await network.paid_order(buyer), carrier="sandbox")
    plan = schedule(parcel)
    later = plan[-1].at + STEP

    # Nobody listens where it posts: nothing is acknowledged, and the first event waits its
    # turn to be posted again (the waybill's later ones wait behind it).
    retries = carriers.Retries()
    nowhere = f"http://127.0.0.1:{free_port()}{WEBHOOK}"
    async with httpx.AsyncClient(timeout=5) as direct:
        assert (
            await deliver(network.app, at=later, url=nowhere, retries=retries, client=direct) == 0
        )
    assert list(retries.waiting) == [plan[0].event_id]
    attempts, next_at = retries.waiting[plan[0].event_id]
    assert attempts == 1 and next_at == later + STEP
    assert await deliver(network.app, at=later, retries=retries) == 0  # not yet its turn
    assert len((await parcel_of(network, parcel["code"]))["events"]) == 1

    # Its turn come, everything goes, in order.
    assert await deliver(network.app, at=next_at, retries=retries) == len(plan)
    assert retries.waiting == {}
    assert (await parcel_of(network, parcel["code"]))["status"] == "delivered"

    # A 4xx is the platform's no: the carrier gives the event up rather than post it forever.
    (other,) = await network.ship(await network.paid_order(buyer), carrier="sandbox")
    refusing = carriers.Retries()
    wrong = "/api/v1/carriers/nowhere/webhook"
    assert await deliver(network.app, url=wrong, retries=refusing) == 0
    assert refusing.abandoned == {p.event_id for p in schedule(other)}
    assert await deliver(network.app, retries=refusing) == 0
    assert (await parcel_of(network, other["code"]))["status"] == "pending"
    assert await deliver(network.app) == len(schedule(other))  # a courier that forgot


async def test_the_sandbox_never_issues_a_waybill_that_fails() -> None:
    """Only a merchant's own waybill ending in 9 finds nobody home: what the sandbox issues
    always goes straight through, so that what a test or a demo sees is known."""
    sandbox = carriers.carrier_for("sandbox")
    booking = carriers.Booking(order_id=1, region_code="610431", weight_grams=None, waybill=None)
    issued = {await sandbox.book(booking) for _ in range(300)}
    assert all(re.fullmatch(r"SBX[0-9]{10}", w) and not carriers.fails_once(w) for w in issued)
    mine = carriers.Booking(order_id=1, region_code="610431", weight_grams=None, waybill="SBX9")
    assert carriers.fails_once(await sandbox.book(mine))
