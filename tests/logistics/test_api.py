"""The parcel's whole path over the API: shipped through the network, scanned at each node,
shelved with a pick-up code, collected; and who may see and do what."""

from collections.abc import Awaitable, Callable
from typing import Any

from tests.conftest import Actor
from tests.logistics.conftest import OTHER_VILLAGE, Network, now, scan_id


async def test_a_parcel_travels_from_the_hub_to_the_village_and_is_collected(
    network: Network, make_user: Callable[..., Awaitable[Actor]]
) -> None:
    client = network.market.client
    buyer = await make_user("buyer")
    order = await network.paid_order(buyer)
    (parcel,) = await network.ship(order)
    assert parcel["route"] == [network.hub["id"], network.station["id"], network.point["id"]]
    assert parcel["status"] == "pending" and parcel["destination_id"] == network.point["id"]
    code = parcel["code"]

    for who, status in (
        (network.hub_staff, "picked_up"),
        (network.hub_staff, "in_transit"),
        (network.station_staff, "at_node"),
        (network.station_staff, "in_transit"),
        (network.point_staff, "at_node"),
    ):
        scanned = await network.scan(who, code, status)
        assert scanned.status_code == 201, scanned.text
        assert scanned.json()["recorded"][0]["status"] == status
    shelved = await network.scan(network.point_staff, code, "ready_for_pickup", shelf=2, layer=5)
    assert shelved.status_code == 201, shelved.text

    seen = (await client.get(f"/api/v1/parcels/{code}", headers=buyer.headers)).json()
    pickup_code = seen["pickup_code"]
    assert seen["status"] == "ready_for_pickup" and pickup_code.startswith("2-5-")
    assert [e["status"] for e in seen["events"]] == [
        "pending",
        "picked_up",
        "in_transit",
        "at_node",
        "in_transit",
        "at_node",
        "ready_for_pickup",
    ]
    assert seen["events"][-1]["node_name"] == "武塔村服务点"
    # The code is the buyer's: nobody else is shown it, the point's staff included.
    for other in (network.market.merchant, network.point_staff, network.operator):
        shown = await client.get(f"/api/v1/parcels/{code}", headers=other.headers)
        assert shown.status_code == 200 and shown.json()["pickup_code"] is None
    sent = await client.get("/api/v1/notifications", headers=network.operator.headers)
    assert pickup_code in sent.json()["items"][0]["body"]

    url = f"/api/v1/parcels/{code}/pickup"
    wrong = await client.post(
        url,
        json={"scan_id": scan_id(), "pickup_code": "9-9-0000"},
        headers=network.point_staff.headers,
    )
    assert wrong.status_code == 422 and "4 tries left" in wrong.json()["detail"]
    body = {"scan_id": scan_id(), "pickup_code": pickup_code, "collected_by": "王大满"}
    collected = await client.post(url, json=body, headers=network.point_staff.headers)
    assert collected.status_code == 200, collected.text
    assert collected.json()["status"] == "delivered"
    again = await client.post(url, json=body, headers=network.point_staff.headers)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    fresh = await client.get(f"/api/v1/orders/{order['id']}", headers=buyer.headers)
    assert fresh.json()["status"] == "delivered"


async def test_a_scan_sent_twice_is_one_event_and_a_reused_id_is_refused(
    network: Network, make_user: Callable[..., Awaitable[Actor]]
) -> None:
    buyer = await make_user("buyer")
    (parcel,) = await network.ship(await network.paid_order(buyer))
    body = {
        "scan_id": scan_id(),
        "parcel_code": parcel["code"],
        "status": "picked_up",
        "happened_at": now(),
    }
    headers = network.hub_staff.headers
    first = await network.market.client.post("/api/v1/scans", json=body, headers=headers)
    second = await network.market.client.post("/api/v1/scans", json=body, headers=headers)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["recorded"][0]["event_id"] == second.json()["recorded"][0]["event_id"]
    assert second.json()["recorded"][0]["duplicate"] is True
    reused = await network.market.client.post(
        "/api/v1/scans", json=body | {"status": "in_transit"}, headers=headers
    )
    assert reused.status_code == 409
    seen = await network.market.client.get(f"/api/v1/parcels/{parcel['code']}", headers=headers)
    assert [e["status"] for e in seen.json()["events"]] == ["pending", "picked_up"]


async def test_off_route_scans_and_wrong_clocks_are_recorded_and_flagged(
    network: Network, make_user: Callable[..., Awaitable[Actor]], make_operator: Any
) -> None:
    buyer = await make_user("buyer")
    # To a village with no point: its township's station is the end of the route.
    (parcel,) = await network.ship(await network.paid_order(buyer, region_code=OTHER_VILLAGE))
    assert parcel["route"] == [network.hub["id"], network.station["id"]]
    code = parcel["code"]
    off = await network.scan(network.point_staff, code, "at_node")
    assert off.status_code == 201 and off.json()["recorded"][0]["off_route"] is True
    ahead = await network.scan(network.hub_staff, code, "in_transit", happened_at=now(minutes=180))
    recorded = ahead.json()["recorded"][0]
    assert recorded["clock_off"] is True and recorded["status"] == "in_transit"
    seen = await network.market.client.get(
        f"/api/v1/parcels/{code}", headers=network.operator.headers
    )
    last = seen.json()["events"][-1]
    assert last["claimed_at"] is not None and last["happened_at"] < last["claimed_at"]


async def test_bad_scans_get_clear_answers_and_change_nothing(
    network: Network, make_user: Callable[..., Awaitable[Actor]]
) -> None:
    client = network.market.client
    buyer = await make_user("buyer")
    (parcel,) = await network.ship(await network.paid_order(buyer))
    code = parcel["code"]
    assert (await network.scan(network.hub_staff, "OL0000000000", "at_node")).status_code == 404
    assert (await network.scan(network.hub_staff, code, "pending")).status_code == 422
    assert (await network.scan(network.hub_staff, code, "delivered")).status_code == 409
    # Shelved only at its own point.
    assert (await network.scan(network.station_staff, code, "ready_for_pickup")).status_code == 409
    assert (await network.scan(buyer, code, "at_node")).status_code == 403
    bad_time = await network.scan(network.hub_staff, code, "at_node", happened_at="yesterday")
    assert bad_time.status_code == 422
    seen = await client.get(f"/api/v1/parcels/{code}", headers=buyer.headers)
    assert [e["status"] for e in seen.json()["events"]] == ["pending"]


async def test_five_wrong_codes_lock_the_parcel(
    network: Network, make_user: Callable[..., Awaitable[Actor]]
) -> None:
    client = network.market.client
    buyer = await make_user("buyer")
    (parcel,) = await network.ship(await network.paid_order(buyer))
    code = parcel["code"]
    assert (await network.scan(network.point_staff, code, "ready_for_pickup")).status_code == 201
    right = (await client.get(f"/api/v1/parcels/{code}", headers=buyer.headers)).json()[
        "pickup_code"
    ]
    url, headers = f"/api/v1/parcels/{code}/pickup", network.point_staff.headers
    answers = [
        (
            await client.post(
                url, json={"scan_id": scan_id(), "pickup_code": "1-1-0000"}, headers=headers
            )
        )
        for _ in range(5)
    ]
    assert [a.status_code for a in answers] == [422, 422, 422, 422, 423]
    assert int(answers[-1].headers["Retry-After"]) > 800
    locked = await client.post(
        url, json={"scan_id": scan_id(), "pickup_code": right}, headers=headers
    )
    assert locked.status_code == 423  # the right code too, until the lock ends
    # Only at its own point.
    elsewhere = await client.post(
        url,
        json={"scan_id": scan_id(), "pickup_code": right},
        headers=network.station_staff.headers,
    )
    assert elsewhere.status_code == 404


async def test_bags_move_their_parcels_and_a_seal_is_used_once(
    network: Network, make_user: Callable[..., Awaitable[Actor]]
) -> None:
    client = network.market.client
    buyer = await make_user("buyer")
    codes = [(await network.ship(await network.paid_order(buyer)))[0]["code"] for _ in range(3)]
    headers = network.hub_staff.headers
    bag = {"seal": "SEAL-0001", "destination_id": network.station["id"], "parcels": codes}
    made = await client.post("/api/v1/bags", json=bag, headers=headers)
    assert made.status_code == 201 and made.json()["parcels"] == codes
    assert (await client.post("/api/v1/bags", json=bag, headers=headers)).status_code == 409
    alone = await network.scan(network.hub_staff, codes[0], "in_transit")
    assert alone.status_code == 409  # in a bag, it moves with the bag
    out = await client.post(
        "/api/v1/bags/SEAL-0001/take-out", json={"parcel_code": codes[2]}, headers=headers
    )
    assert out.status_code == 200 and out.json()["parcels"] == codes[:2]
    body = {
        "scan_id": scan_id(),
        "bag_seal": "SEAL-0001",
        "status": "in_transit",
        "happened_at": now(),
    }
    moved = await client.post("/api/v1/scans", json=body, headers=headers)
    assert moved.status_code == 201
    assert [r["parcel_code"] for r in moved.json()["recorded"]] == codes[:2]
    arrived = body | {"scan_id": scan_id(), "status": "at_node"}
    opened = await client.post("/api/v1/scans", json=arrived, headers=network.station_staff.headers)
    assert opened.status_code == 201 and len(opened.json()["recorded"]) == 2
    for code, status in zip(codes, ("at_node", "at_node", "pending"), strict=True):
        seen = await client.get(f"/api/v1/parcels/{code}", headers=buyer.headers)
        assert seen.json()["status"] == status
    # Opened at its station: the parcels are on their own again.
    assert (await network.scan(network.station_staff, codes[0], "in_transit")).status_code == 201


async def test_who_sees_a_parcel(
    network: Network, make_user: Callable[..., Awaitable[Actor]], make_operator: Any
) -> None:
    client = network.market.client
    buyer, stranger = await make_user("buyer"), await make_user("stranger")
    order = await network.paid_order(buyer)
    (parcel,) = await network.ship(order)
    url = f"/api/v1/parcels/{parcel['code']}"
    # Staff of a node off its route (a second county's hub).
    elsewhere = await client.post(
        "/api/v1/delivery-nodes",
        json={"kind": "county_hub", "region_code": "530102", "name": "五华区中心"},
        headers=network.operator.headers,
    )
    far_staff = await make_user("far")
    await client.post(
        f"/api/v1/delivery-nodes/{elsewhere.json()['id']}/staff",
        json={"email": far_staff.email},
        headers=network.operator.headers,
    )
    for who, expected in (
        (buyer, 200),
        (network.market.merchant, 200),
        (network.operator, 200),
        (network.hub_staff, 200),
        (network.point_staff, 200),
        (stranger, 404),
        (far_staff, 404),
    ):
        assert (await client.get(url, headers=who.headers)).status_code == expected, who
    assert (await client.get(url)).status_code == 401
    listed = await client.get("/api/v1/station/parcels", headers=network.station_staff.headers)
    assert [p["code"] for p in listed.json()["items"]] == [parcel["code"]]
    none = await client.get("/api/v1/station/parcels", headers=far_staff.headers)
    assert none.json()["items"] == []
    assert (await client.get("/api/v1/station/parcels", headers=buyer.headers)).status_code == 403
    # Only operators shape the network; only the shop ships.
    node = {"kind": "county_hub", "region_code": "610431", "name": "x"}
    for who in (buyer, network.market.merchant, network.hub_staff):
        made = await client.post("/api/v1/delivery-nodes", json=node, headers=who.headers)
        assert made.status_code == 403
    order2 = await network.paid_order(buyer)
    for who in (buyer, network.hub_staff, stranger):
        shipped = await client.post(
            f"/api/v1/orders/{order2['id']}/ship", json={}, headers=who.headers
        )
        assert shipped.status_code == 404


async def test_the_console_ships_through_the_network_when_no_carrier_is_given(
    network: Network, make_user: Callable[..., Awaitable[Actor]]
) -> None:
    from tests.accounts.test_pages import HTML

    client, merchant = network.market.client, network.market.merchant
    buyer = await make_user("buyer")
    order = await network.paid_order(buyer)
    sent = await client.post(
        f"/console/orders/{order['id']}/ship",
        data={"carrier": "", "tracking_number": ""},
        headers=merchant.headers | HTML,
    )
    assert sent.status_code == 303, sent.text
    parcels = await client.get(f"/api/v1/orders/{order['id']}/parcels", headers=buyer.headers)
    (parcel,) = parcels.json()
    assert parcel["carrier"] is None and parcel["destination_id"] == network.point["id"]
    half = await client.post(
        f"/console/orders/{(await network.paid_order(buyer))['id']}/ship",
        data={"carrier": "中国邮政", "tracking_number": ""},
        headers=merchant.headers | HTML,
    )
    assert half.status_code == 422


async def test_scans_of_one_parcel_at_once_leave_it_where_its_events_say(
    network: Network, make_user: Callable[..., Awaitable[Actor]]
) -> None:
    """On PostgreSQL the writer's transactions run side by side: thirty scans of one parcel
    sent at once (ten scans, each three times) are each recorded once, none is a 500, and the
    parcel is where its events say."""
    import asyncio
    import datetime as dt

    from originlive.logistics.models import ParcelStatus
    from originlive.logistics.tracking import Event, state_of

    client = network.market.client
    buyer = await make_user("buyer")
    (parcel,) = await network.ship(await network.paid_order(buyer))
    code = parcel["code"]
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30)
    scans = [
        {
            "scan_id": scan_id(),
            "parcel_code": code,
            "status": ("at_node", "in_transit")[n % 2],
            "happened_at": (start + dt.timedelta(minutes=(n * 7) % 10)).isoformat(),
        }
        for n in range(10)
    ]
    sent = await asyncio.gather(
        *(
            client.post("/api/v1/scans", json=body, headers=network.hub_staff.headers)
            for body in scans * 3
        )
    )
    assert sorted({r.status_code for r in sent}) == [200, 201], [r.text for r in sent]
    seen = (await client.get(f"/api/v1/parcels/{code}", headers=buyer.headers)).json()
    events = seen["events"]
    assert len(events) == 11  # shipped, and each scan once
    state = state_of(
        Event(ParcelStatus(e["status"]), dt.datetime.fromisoformat(e["happened_at"]), e["id"])
        for e in events
    )
    assert state is not None and seen["status"] == state.status.value
    assert dt.datetime.fromisoformat(seen["status_at"]) == state.happened_at


async def test_an_account_taken_off_a_nodes_staff_scans_no_more(
    network: Network, make_user: Callable[..., Awaitable[Actor]]
) -> None:
    client = network.market.client
    buyer = await make_user("buyer")
    (parcel,) = await network.ship(await network.paid_order(buyer))
    assert (await network.scan(network.hub_staff, parcel["code"], "picked_up")).status_code == 201
    url = f"/api/v1/delivery-nodes/{network.hub['id']}/staff/{network.hub_staff.id}"
    for who in (network.hub_staff, network.market.merchant, buyer):
        assert (await client.delete(url, headers=who.headers)).status_code == 403
    elsewhere = f"/api/v1/delivery-nodes/{network.point['id']}/staff/{network.hub_staff.id}"
    assert (await client.delete(elsewhere, headers=network.operator.headers)).status_code == 404
    assert (await client.delete(url, headers=network.operator.headers)).status_code == 204
    # The fast path's cache of nodes is told at once: the next scan is refused.
    refused = await network.scan(network.hub_staff, parcel["code"], "in_transit")
    assert refused.status_code == 403
    me = await client.get("/api/v1/auth/me", headers=network.hub_staff.headers)
    assert "station" not in me.json()["roles"]
