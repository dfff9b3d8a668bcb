"""The operators' delivery console, in-process: the network as a tree, opening, editing,
closing, re-linking and staffing nodes through its forms (a refused form is a 422 beside its
field with nothing written), what the notifier sent, the flagged scans; nobody else gets in."""

import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.accounts.models import AuditEntry
from originlive.logistics.models import DeliveryNode
from tests.accounts.test_pages import HTML, csrf_of, login
from tests.conftest import Actor
from tests.logistics.conftest import OTHER_VILLAGE, TOWNSHIP, VILLAGE, Network, now

MakeActor = Callable[..., Awaitable[Actor]]
CONSOLE = "/operator/delivery"


async def _nodes(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    listed = await client.get("/api/v1/delivery-nodes")
    return {n["name"]: n for n in listed.json()}


async def _node_count(db: AsyncSession) -> int:
    return int(await db.scalar(select(func.count()).select_from(DeliveryNode)) or 0)


def _opened(response: httpx.Response) -> int:
    """The new node's id, from the redirect to its page."""
    assert response.status_code == 303, response.text
    found = re.fullmatch(
        r"/operator/delivery/nodes/(\d+)\?done=opened", response.headers["location"]
    )
    assert found, response.headers["location"]
    return int(found.group(1))


async def test_an_operator_sees_the_tree_and_shapes_the_network_with_the_forms(
    network: Network, make_user: MakeActor, db: AsyncSession
) -> None:
    client = network.market.client
    await login(client, network.operator.email)
    hub, station, point = network.hub, network.station, network.point

    page = await client.get(CONSOLE)
    assert page.status_code == 200, page.text
    assert 'href="/operator/delivery" aria-current="page">Delivery network<' in page.text
    text = page.text
    # The point inside the station inside the hub, each with its region and staff.
    assert text.index(f'id="node-{hub["id"]}"') < text.index(f'id="node-{station["id"]}"')
    assert text.index(f'id="node-{station["id"]}"') < text.index(f'id="node-{point["id"]}"')
    assert "3 nodes in the network." in text and "Not linked to any node" not in text
    assert "武功县 (610431)" in text and "武塔村委会 (610431102200)" in text
    assert "1 staff account" in text and "Delivers home" in text and "60 min from upstream" in text

    # A township's part: the station and its point, the hub named as what serves it.
    part = await client.get(CONSOLE, params={"region": TOWNSHIP})
    assert "2 nodes at 武功镇 and below it." in part.text
    assert "served by 武功县物流中心" in part.text and f'id="node-{hub["id"]}"' not in part.text

    token = csrf_of(page)
    opened = await client.post(
        f"{CONSOLE}/nodes",
        data={
            "csrf_token": token,
            "kind": "village_point",
            "region_code": OTHER_VILLAGE,
            "name": "积山村服务点",
            "address": "积山村 村委会旁",
            "opening_hours": "每天 8:00-20:00",
            "phone": "029-8888 1234",
            "home_delivery": "1",
            "upstream_id": str(station["id"]),
            "transit_minutes": "45",
        },
    )
    new_point = _opened(opened)
    shown = await client.get(opened.headers["location"])
    assert "The node is open." in shown.text and "积山村 村委会旁" in shown.text
    made = (await _nodes(client))["积山村服务点"]
    assert (made["upstream_id"], made["transit_minutes"], made["home_delivery"]) == (
        station["id"],
        45,
        True,
    )

    url = f"{CONSOLE}/nodes/{new_point}"
    edited = await client.post(
        url,
        data={
            "csrf_token": token,
            "name": "积山村综合服务点",
            "address": "积山村 小学对面",
            "opening_hours": "周一至周六 9:00-18:00",
            "phone": "029-8888 1234",
        },  # no home_delivery: the box unticked
    )
    assert edited.status_code == 303 and edited.headers["location"].endswith("done=saved")
    made = (await _nodes(client))["积山村综合服务点"]
    assert made["opening_hours"] == "周一至周六 9:00-18:00" and made["home_delivery"] is False

    closed = await client.post(f"{url}/active", data={"csrf_token": token, "active": "0"})
    assert closed.headers["location"].endswith("done=closed")
    page = await client.get(closed.headers["location"])
    assert 'id="node-state">Closed<' in page.text and "no new parcels" in page.text
    assert (await _nodes(client))["积山村综合服务点"]["active"] is False
    reopened = await client.post(f"{url}/active", data={"csrf_token": token, "active": "1"})
    assert reopened.headers["location"].endswith("done=reopened")
    assert (await _nodes(client))["积山村综合服务点"]["active"] is True

    # A second station opened unlinked is listed apart until it is linked to the hub.
    station_form = {"kind": "township_station", "region_code": TOWNSHIP, "name": "武功镇二号站"}
    second = _opened(
        await client.post(f"{CONSOLE}/nodes", data={"csrf_token": token} | station_form)
    )
    tree = await client.get(CONSOLE)
    assert "Not linked to any node" in tree.text
    assert tree.text.index("Not linked to any node") < tree.text.index(f'id="node-{second}"')
    linked = await client.post(
        f"{CONSOLE}/nodes/{second}/upstream",
        data={"csrf_token": token, "upstream_id": str(hub["id"]), "transit_minutes": "90"},
    )
    assert linked.status_code == 303 and linked.headers["location"].endswith("done=linked")
    relinked = await client.post(
        f"{url}/upstream",
        data={"csrf_token": token, "upstream_id": str(second), "transit_minutes": "30"},
    )
    assert relinked.status_code == 303
    made = (await _nodes(client))["积山村综合服务点"]
    assert (made["upstream_id"], made["transit_minutes"]) == (second, 30)
    assert "Not linked to any node" not in (await client.get(CONSOLE)).text

    clerk = await make_user("clerk")
    staffed = await client.post(f"{url}/staff", data={"csrf_token": token, "email": clerk.email})
    assert staffed.status_code == 303
    page = await client.get(staffed.headers["location"])
    assert f"{clerk.email} now works at this node." in page.text
    assert f'<span class="meta">{clerk.email}</span>' in page.text
    theirs = await client.get("/api/v1/station/parcels", headers=clerk.headers)
    assert theirs.status_code == 200  # the station role, at this node
    removed = await client.post(f"{url}/staff/{clerk.id}/remove", data={"csrf_token": token})
    assert removed.status_code == 303
    page = await client.get(removed.headers["location"])
    assert f"{clerk.email} no longer works at this node." in page.text
    assert f'<span class="meta">{clerk.email}</span>' not in page.text
    gone = await client.get("/api/v1/station/parcels", headers=clerk.headers)
    assert gone.status_code == 403  # neither the role nor the node
    again = await client.post(f"{url}/staff/{clerk.id}/remove", data={"csrf_token": token})
    assert again.status_code == 404

    audit = await db.scalars(
        select(AuditEntry.action)
        .where(AuditEntry.target_type == "delivery_node")
        .order_by(AuditEntry.id)
    )
    assert list(audit) == [
        "delivery_node.open",
        "delivery_node.update",
        "delivery_node.close",
        "delivery_node.reopen",
        "delivery_node.open",
        "delivery_node.link",
        "delivery_node.link",
        "delivery_node.add_staff",
        "delivery_node.remove_staff",
    ]


async def test_a_refused_form_is_shown_again_beside_its_field_and_nothing_is_written(
    network: Network, db: AsyncSession
) -> None:
    client = network.market.client
    headers = network.operator.headers
    before = await _node_count(db)

    async def open_node(**fields: str) -> httpx.Response:
        return await client.post(f"{CONSOLE}/nodes", data=fields, headers=headers)

    bad = await open_node(kind="", region_code="12", name=" ", phone="电话", transit_minutes="１２")
    assert bad.status_code == 422
    for message in (
        "Choose a county hub, a township station or a village point.",
        "Enter the code of its region, 6 to 12 digits.",
        "Enter a name on one line, at most 80 characters.",
        "Enter a phone number",
        "Enter the usual minutes from the upstream node, 0 to 43200.",
    ):
        assert message in bad.text, message
    assert 'value="电话"' in bad.text  # what was typed stays

    unknown = await open_node(kind="county_hub", region_code="999999", name="无处")
    assert unknown.status_code == 422 and "No place has this code." in unknown.text
    level = await open_node(kind="township_station", region_code=VILLAGE, name="错级")
    assert level.status_code == 422 and "A township station is at a township." in level.text
    # The node is made before its link is refused: the refusal takes it back too.
    upstream = await open_node(
        kind="village_point",
        region_code=OTHER_VILLAGE,
        name="越级点",
        upstream_id=str(network.hub["id"]),
    )
    assert upstream.status_code == 422
    assert "a station serves a point" in upstream.text and 'value="越级点"' in upstream.text
    assert await _node_count(db) == before

    point_url = f"{CONSOLE}/nodes/{network.point['id']}"
    blank = await client.post(point_url, data={"name": "", "address": "x"}, headers=headers)
    assert blank.status_code == 422 and "Enter a name on one line" in blank.text
    hub_url = f"{CONSOLE}/nodes/{network.hub['id']}"
    await client.post(hub_url, data={"name": "武功县物流中心", "address": "县城"}, headers=headers)
    emptied = await client.post(hub_url, data={"name": "新名字", "address": ""}, headers=headers)
    assert emptied.status_code == 422 and "This cannot be emptied once given" in emptied.text
    assert (await _nodes(client))["武功县物流中心"]["address"] == "县城"  # nor the name changed

    wrong_link = await client.post(
        f"{point_url}/upstream",
        data={"upstream_id": str(network.hub["id"]), "transit_minutes": "10"},
        headers=headers,
    )
    assert wrong_link.status_code == 422 and "a station serves a point" in wrong_link.text
    no_minutes = await client.post(
        f"{point_url}/upstream",
        data={"upstream_id": str(network.station["id"]), "transit_minutes": "²"},
        headers=headers,
    )
    assert no_minutes.status_code == 422 and "0 to 43200" in no_minutes.text
    assert (await _nodes(client))["武塔村服务点"]["transit_minutes"] == 60

    nobody = await client.post(
        f"{point_url}/staff", data={"email": "nobody@example.com"}, headers=headers
    )
    assert nobody.status_code == 422 and "No account has this e-mail address." in nobody.text
    assert 'value="nobody@example.com"' in nobody.text

    nowhere = await client.get(CONSOLE, params={"region": "999999"}, headers=headers)
    assert nowhere.status_code == 422 and "No place has this code." in nowhere.text
    assert (await client.get(f"{CONSOLE}/nodes/999999", headers=headers | HTML)).status_code == 404
    audit = await db.scalar(
        select(func.count()).where(
            AuditEntry.target_type == "delivery_node", AuditEntry.action != "delivery_node.update"
        )
    )
    assert audit == 0


async def test_only_operators_get_in(network: Network, make_user: MakeActor) -> None:
    client = network.market.client
    anonymous = await client.get(CONSOLE, headers=HTML)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/login?next=%2Foperator%2Fdelivery"
    buyer = await make_user("buyer")
    node = f"{CONSOLE}/nodes/{network.point['id']}"
    for who in (buyer, network.market.merchant, network.point_staff):
        for path in (CONSOLE, node, f"{CONSOLE}/notifications", f"{CONSOLE}/flagged"):
            seen = await client.get(path, headers=who.headers | HTML)
            assert seen.status_code == 403, (who.email, path)
        posted = await client.post(f"{node}/active", data={"active": "0"}, headers=who.headers)
        assert posted.status_code == 403
    assert (await _nodes(client))["武塔村服务点"]["active"] is True

    # An operator's cookie without the form's token (a forged cross-site form) does nothing.
    await login(client, network.operator.email)
    forged = await client.post(f"{node}/active", data={"active": "0"}, headers=HTML)
    assert forged.status_code == 403
    assert (await _nodes(client))["武塔村服务点"]["active"] is True


async def test_operators_read_the_messages_sent_and_the_flagged_scans(
    network: Network, make_user: MakeActor
) -> None:
    client = network.market.client
    headers = network.operator.headers
    empty = await client.get(f"{CONSOLE}/notifications", headers=headers)
    assert "No message has been sent yet." in empty.text

    buyer = await make_user("buyer")
    (parcel,) = await network.ship(await network.paid_order(buyer))
    code = parcel["code"]
    for who, status in ((network.hub_staff, "picked_up"), (network.point_staff, "at_node")):
        assert (await network.scan(who, code, status)).status_code == 201
    shelved = await network.scan(network.point_staff, code, "ready_for_pickup", shelf=3, layer=1)
    pickup = (await client.get(f"/api/v1/parcels/{code}", headers=buyer.headers)).json()
    assert shelved.status_code == 201 and pickup["pickup_code"].startswith("3-1-")

    sent = await client.get(f"{CONSOLE}/notifications", headers=headers)
    assert sent.status_code == 200 and "1 message in all." in sent.text
    assert f"<td>{code}</td>" in sent.text and f"取件码 {pickup['pickup_code']}" in sent.text

    # Off route: a parcel for the village without a point, scanned at the point; then a
    # phone three hours ahead.
    (other,) = await network.ship(await network.paid_order(buyer, region_code=OTHER_VILLAGE))
    assert (await network.scan(network.point_staff, other["code"], "at_node")).status_code == 201
    ahead = await network.scan(network.hub_staff, other["code"], "in_transit", happened_at=now(180))
    assert ahead.json()["recorded"][0]["clock_off"] is True

    flagged = await client.get(f"{CONSOLE}/flagged", headers=headers)
    assert flagged.status_code == 200 and "2 flagged scans in all." in flagged.text
    text = flagged.text
    assert text.count(f"<td>{other['code']}</td>") == 2 and code not in text
    assert text.index("Clock off") < text.index("Off route")  # newest first
    assert "武塔村服务点" in text and "the phone said" in text
