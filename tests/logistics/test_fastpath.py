"""The scans' fast path (``logistics.fastpath``) answers as the FastAPI route does: the same
requests sent through it and through FastAPI's stack alone get the same statuses, types and
bodies; what it does not take itself (errors of the request, cookie sessions) reaches the
route untouched; a change of staff is seen at once."""

import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from originlive.accounts import security
from originlive.accounts.deps import CSRF_HEADER, SESSION_COOKIE
from originlive.logistics import service
from originlive.logistics.fastpath import ScanRoute
from tests.conftest import Actor
from tests.logistics.conftest import Network, now
from tests.logistics.test_station import signed_in

MakeUser = Callable[..., Awaitable[Actor]]


def _client(asgi: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi), base_url="http://testserver")


def _shown(response: httpx.Response, code: str) -> tuple[int, str, Any]:
    """What the caller sees, with the parcel's code and the events' ids made neutral."""
    text = response.text.replace(code, "OL_THE_PARCEL")
    body = json.loads(text)
    for recorded in body.get("recorded", []) if isinstance(body, dict) else []:
        assert isinstance(recorded["event_id"], int)
        recorded["event_id"] = "an event"
    return response.status_code, response.headers["content-type"], body


async def test_the_fast_path_answers_as_the_fastapi_route(
    network: Network, make_user: MakeUser
) -> None:
    app = network.app

    async def fastapi_only(scope: Scope, receive: Receive, send: Send) -> None:
        await FastAPI.__call__(app, scope, receive, send)  # its whole stack, no fast path

    passed: list[str] = []

    async def behind(scope: Scope, receive: Receive, send: Send) -> None:
        passed.append(scope["path"])
        await fastapi_only(scope, receive, send)

    buyer = await make_user("buyer")
    codes = [(await network.ship(await network.paid_order(buyer)))[0]["code"] for _ in range(2)]
    async with signed_in(app, network.hub_staff) as browser:
        cookie = browser.cookies[SESSION_COOKIE]
    csrf = security.csrf_token(app.state.settings.resolved_secret_key, cookie)
    hub, station, nobody = network.hub_staff.headers, network.station_staff.headers, {}

    def scan(scan_id: str, code: str, status: str, **fields: Any) -> bytes:
        body = {"scan_id": scan_id, "parcel_code": code, "status": status, "happened_at": now()}
        return json.dumps(body | fields).encode()

    # (who, the body for a parcel's code, extra headers, whether the fast path answers)
    cases: list[tuple[dict[str, str], Callable[[str], bytes], dict[str, str], bool]] = [
        (hub, lambda c: scan("scan-fast-0001", c, "picked_up"), {}, True),  # 201
        (hub, lambda c: scan("scan-fast-0001", c, "picked_up"), {}, True),  # 200, sent again
        (hub, lambda c: scan("scan-fast-0001", c, "in_transit"), {}, True),  # 409, id reused
        (hub, lambda c: scan("scan-fast-0002", "OL0000000000", "at_node"), {}, True),  # 404
        (hub, lambda c: scan("scan-fast-0003", c, "pending"), {}, True),  # 422, the rule's
        (hub, lambda c: scan("scan-fast-0004", c, "delivered"), {}, True),  # 409
        (station, lambda c: scan("scan-fast-0005", c, "ready_for_pickup"), {}, True),  # 409
        (hub, lambda c: scan("scan-fast-0006", c, "in_transit", happened_at=now(180)), {}, True),
        (station, lambda c: scan("scan-fast-0007", c, "at_node", reason="到站"), {}, True),
        (
            hub,
            lambda c: json.dumps(
                {
                    "scan_id": "scan-fast-0008",
                    "bag_seal": "NO-SUCH-BAG",
                    "status": "at_node",
                    "happened_at": now(),
                }
            ).encode(),
            {},
            True,
        ),
        (hub, lambda c: b'{"scan_id": "scan-fast-0009", "parcel_code"', {}, False),  # 400
        (hub, lambda c: scan("scan-fast-0010", c, "at_node", happened_at="yesterday"), {}, False),
        (hub, lambda c: scan("scan-fast-0011", c, "at_node", shelf=0), {}, False),  # 422
        (hub, lambda c: scan("scan-fast-0012", c, "at_node", bag_seal="SEAL-1"), {}, False),
        (nobody, lambda c: scan("scan-fast-0013", c, "at_node"), {}, False),  # 401
        (buyer.headers, lambda c: scan("scan-fast-0014", c, "at_node"), {}, False),  # 403
        (
            {"Authorization": "Bearer nope"},
            lambda c: scan("scan-fast-0015", c, "at_node"),
            {},
            False,
        ),  # 401
        (
            hub,
            lambda c: scan("scan-fast-0016", c, "at_node"),
            {"Content-Type": "text/plain"},
            False,
        ),
        (
            nobody,
            lambda c: scan("scan-fast-0017", c, "at_node"),
            {"Cookie": f"{SESSION_COOKIE}={cookie}"},
            False,
        ),  # 403, no CSRF token
        (
            nobody,
            lambda c: scan("scan-fast-0018", c, "at_node"),
            {"Cookie": f"{SESSION_COOKIE}={cookie}", CSRF_HEADER: csrf},
            False,
        ),
    ]
    answers: list[list[tuple[int, str, Any]]] = []
    async with _client(ScanRoute(behind, state=app.state)) as fast, _client(fastapi_only) as slow:
        for client, code, fast_path in ((fast, codes[0], True), (slow, codes[1], False)):
            shown = []
            for who, body, extra, taken in cases:
                passed.clear()
                headers = {"Content-Type": "application/json"} | who | extra
                response = await client.post("/api/v1/scans", content=body(code), headers=headers)
                if fast_path:
                    assert passed == ([] if taken else ["/api/v1/scans"]), (body(code), response)
                shown.append(_shown(response, code))
            answers.append(shown)
    assert answers[0] == answers[1]
    statuses = [status for status, _, _ in answers[0]]
    assert statuses == [
        201, 200, 409, 404, 422, 409, 409, 201, 201, 404, 400, 422, 422, 422, 401, 403, 401, 422,
        403, 201,
    ]  # fmt: skip
    clock_off = answers[0][7][2]["recorded"][0]
    assert clock_off["clock_off"] is True and clock_off["status"] == "in_transit"
    assert answers[0][8][2]["recorded"][0]["status"] == "at_node"
    # Both parcels' events are the same: the fast path wrote what the route would have.
    seen = [
        (await network.market.client.get(f"/api/v1/parcels/{c}", headers=hub)).json() for c in codes
    ]
    events = [
        [(e["status"], e["node_id"], e["reason"], e["off_route"]) for e in p["events"]]
        for p in seen
    ]
    assert events[0] == events[1]
    assert seen[0]["status"] == seen[1]["status"] == "at_node"


async def test_a_change_of_staff_is_seen_at_once(network: Network, make_user: MakeUser) -> None:
    client = network.market.client
    buyer = await make_user("buyer")
    (parcel,) = await network.ship(await network.paid_order(buyer))
    code = parcel["code"]
    who = network.hub_staff
    assert (await network.scan(who, code, "picked_up")).status_code == 201  # known at the hub
    moved = await client.post(
        f"/api/v1/delivery-nodes/{network.station['id']}/staff",
        json={"email": who.email},
        headers=network.operator.headers,
    )
    assert moved.status_code == 204, moved.text
    assert (await network.scan(who, code, "at_node")).status_code == 201
    seen = (await client.get(f"/api/v1/parcels/{code}", headers=who.headers)).json()
    assert [(e["status"], e["node_id"]) for e in seen["events"]][1:] == [
        ("picked_up", network.hub["id"]),
        ("at_node", network.station["id"]),
    ]


async def test_the_app_answers_scans_in_front_of_fastapi(
    network: Network, make_user: MakeUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    buyer = await make_user("buyer")
    (parcel,) = await network.ship(await network.paid_order(buyer))

    async def no_session(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("the FastAPI route answered")

    monkeypatch.setattr(service, "staff_node", no_session)  # what the route's get_staff asks
    scanned = await network.scan(network.hub_staff, parcel["code"], "picked_up")
    assert scanned.status_code == 201 and scanned.json()["recorded"][0]["status"] == "picked_up"
