"""The room socket under another ASGI server than uvicorn (Starlette's test client), where
frames go through ASGI ``send``; and rooms of shops not yet approved."""

import json
from typing import Any

from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.testclient import TestClient, WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from originlive.accounts import service as accounts
from originlive.accounts.models import Role, TokenKind
from originlive.app import create_app
from originlive.settings import Settings
from tests.conftest import PASSWORD, empty_database


def _token(client: TestClient, email: str) -> str:
    body = {"email": email, "password": PASSWORD, "display_name": email.split("@")[0]}
    assert client.post("/api/v1/auth/register", json=body).status_code == 201
    response = client.post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})
    return str(response.json()["access_token"])


def test_the_room_through_asgi_send_and_a_pending_shops_room(settings: Settings) -> None:
    settings.auto_approve_shops = False
    with TestClient(create_app(settings)) as client:
        merchant = {"Authorization": f"Bearer {_token(client, 'grower@example.com')}"}
        shop, live = _shop_and_session(client, merchant, "待审果园")
        room = f"/ws/live/{live['id']}"
        with client.websocket_connect(room) as socket:  # not approved: not there
            assert socket.receive_json()["code"] == "not_found"
            assert _close_code(socket) == 4404

        assert client.portal is not None  # an operator approves the shop
        operator = client.portal.call(_make_operator, client.app)
        client.post(f"/api/v1/shops/{shop['id']}/approve", headers=operator)
        buyer = _token(client, "buyer@example.com")
        with (
            client.websocket_connect(room) as viewer,
            client.websocket_connect(f"{room}?token={buyer}") as talker,
        ):
            assert viewer.receive_json()["type"] == "state"
            assert talker.receive_json()["session"]["status"] == "scheduled"
            talker.send_text(json.dumps({"type": "comment", "text": "开播了吗"}))
            said = viewer.receive_json()
            assert (said["type"], said["text"], said["user"]["name"]) == (
                "comment",
                "开播了吗",
                "buyer",
            )
            assert talker.receive_json()["seq"] == said["seq"]


def _shop_and_session(
    client: TestClient, merchant: dict[str, str], name: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A new shop of the merchant's in Wugong, and a session of it scheduled."""
    shop = client.post(
        "/api/v1/shops", json={"name": name, "region_code": "610431"}, headers=merchant
    ).json()
    live = client.post(
        "/api/v1/live-sessions", json={"shop_id": shop["id"], "title": "开播"}, headers=merchant
    ).json()
    return shop, live


def _close_code(socket: WebSocketTestSession) -> int:
    """The code the server closes the socket with; it may send nothing more before."""
    try:
        socket.receive_json()
    except WebSocketDisconnect as closed:
        return closed.code
    raise AssertionError("the socket stays open")


async def _make_operator(app: Any, email: str = "operator@example.com") -> dict[str, str]:
    async with app.state.sessionmaker() as session:
        user = await accounts.create(
            session,
            email=email,
            password=PASSWORD,
            display_name="运营",
            roles=(Role.OPERATOR,),
        )
        token = await accounts.issue_token(session, user=user, kind=TokenKind.API, ttl_seconds=60)
        await session.commit()
    return {"Authorization": f"Bearer {token}"}


def test_a_rejected_shops_room_closes_and_its_offer_ends(settings: Settings) -> None:
    settings.auto_approve_shops = True
    with TestClient(create_app(settings)) as client:
        assert client.portal is not None
        try:
            _rejected_shops_room(client)
        finally:
            client.portal.call(empty_database, client.app.state.sessionmaker)  # type: ignore[attr-defined]


def _next_event(socket: Any) -> dict[str, Any]:
    """The next event but the counts the room's second publishes whenever they change (two
    sockets joining make one, which may come before or after what a test waits for)."""
    while True:
        event: dict[str, Any] = socket.receive_json()
        if event.get("type") not in ("viewers", "likes"):
            return event


def _rejected_shops_room(client: TestClient) -> None:
    assert client.portal is not None
    merchant = {"Authorization": f"Bearer {_token(client, 'orchard@example.com')}"}
    shop, live = _shop_and_session(client, merchant, "将被叫停的果园")
    product = client.post(
        f"/api/v1/shops/{shop['id']}/products",
        json={"title": "猕猴桃", "origin_region_code": "610431",
              "skus": [{"name": "一箱", "price_cents": 3990, "stock": 50}]},
        headers=merchant,
    ).json()  # fmt: skip
    sku_id = product["skus"][0]["id"]
    assert client.post(f"/api/v1/live-sessions/{live['id']}/start", headers=merchant).is_success
    offer = client.post(
        f"/api/v1/live-sessions/{live['id']}/offers",
        json={"sku_id": sku_id, "price_cents": 990, "quantity": 10, "per_buyer_limit": 2,
              "pin": True},
        headers=merchant,
    ).json()  # fmt: skip
    buyer = _token(client, "watcher@example.com")
    room = f"/ws/live/{live['id']}"
    with (
        client.websocket_connect(room) as viewer,
        client.websocket_connect(f"{room}?token={buyer}") as talker,
    ):
        assert viewer.receive_json()["pinned"]["id"] == offer["id"]
        assert talker.receive_json()["session"]["status"] == "live"
        operator = client.portal.call(_make_operator, client.app, "stopper@example.com")
        rejected = client.post(
            f"/api/v1/shops/{shop['id']}/reject", json={"reason": "冒用产地"}, headers=operator
        )
        assert rejected.status_code == 200, rejected.text
        for socket in (viewer, talker):
            assert _next_event(socket)["offer"] is None  # the pin comes down
            closing = _next_event(socket)
            assert (closing["type"], closing["status"], closing["closed"]) == (
                "status",
                "ended",
                True,
            )
            assert _close_code(socket) == 4404
    with client.websocket_connect(room) as late:  # and no one gets in again
        assert late.receive_json()["code"] == "not_found"
        assert _close_code(late) == 4404
    seen = client.get(f"/api/v1/offers/{offer['id']}", headers=operator).json()
    assert (seen["status"], seen["remaining"]) == ("ended", 0)
    sku = client.get(f"/api/v1/products/{product['id']}", headers=merchant).json()["skus"][0]
    assert sku["stock"] == 50  # the offer's ten units are back
    session = client.get(f"/api/v1/live-sessions/{live['id']}", headers=operator).json()
    assert session["status"] == "ended"


def test_a_viewer_who_cannot_be_read_in_time_is_told_busy(settings: Settings) -> None:
    """Every connection of the requests' pool taken: a signed-in viewer, whom the socket must
    look up, is told to come back (4503), at once; the room itself is read by the rooms' own
    pool."""
    settings.auto_approve_shops = True
    with TestClient(create_app(settings)) as client:
        assert client.portal is not None
        token = _token(client, "busy-viewer@example.com")
        _shop, live = _shop_and_session(client, {"Authorization": f"Bearer {token}"}, "忙碌的果园")
        engine = client.app.state.engine  # type: ignore[attr-defined]
        held = []
        try:
            while True:
                try:
                    held.append(client.portal.call(engine.connect))
                except PoolTimeout:
                    break
            with client.websocket_connect(f"/ws/live/{live['id']}?token={token}") as socket:
                assert socket.receive_json()["code"] == "busy"
                assert _close_code(socket) == 4503
        finally:
            for connection in held:
                client.portal.call(connection.close)
            client.portal.call(empty_database, client.app.state.sessionmaker)  # type: ignore[attr-defined]
