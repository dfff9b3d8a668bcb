"""The room socket under another ASGI server than uvicorn (Starlette's test client), where
frames go through ASGI ``send``; and rooms of shops not yet approved."""

import json
from typing import Any

from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from originlive.accounts import service as accounts
from originlive.accounts.models import Role, TokenKind
from originlive.app import create_app
from originlive.settings import Settings
from tests.conftest import PASSWORD


def _token(client: TestClient, email: str) -> str:
    body = {"email": email, "password": PASSWORD, "display_name": email.split("@")[0]}
    assert client.post("/api/v1/auth/register", json=body).status_code == 201
    response = client.post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})
    return str(response.json()["access_token"])


def test_the_room_through_asgi_send_and_a_pending_shops_room(settings: Settings) -> None:
    settings.auto_approve_shops = False
    with TestClient(create_app(settings)) as client:
        merchant = {"Authorization": f"Bearer {_token(client, 'grower@example.com')}"}
        shop = client.post(
            "/api/v1/shops", json={"name": "待审果园", "region_code": "610431"}, headers=merchant
        ).json()
        live = client.post(
            "/api/v1/live-sessions", json={"shop_id": shop["id"], "title": "试播"}, headers=merchant
        ).json()
        room = f"/ws/live/{live['id']}"
        with client.websocket_connect(room) as socket:  # not approved: not there
            assert socket.receive_json()["code"] == "not_found"
            try:
                socket.receive_json()
                raise AssertionError("the socket stays open")
            except WebSocketDisconnect as closed:
                assert closed.code == 4404

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


async def _make_operator(app: Any) -> dict[str, str]:
    async with app.state.sessionmaker() as session:
        user = await accounts.create(
            session,
            email="operator@example.com",
            password=PASSWORD,
            display_name="运营",
            roles=(Role.OPERATOR,),
        )
        token = await accounts.issue_token(session, user=user, kind=TokenKind.API, ttl_seconds=60)
        await session.commit()
    return {"Authorization": f"Bearer {token}"}
