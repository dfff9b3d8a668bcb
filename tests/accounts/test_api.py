"""Accounts over HTTP: registration, tokens, logout, rate limits and problem bodies."""

import asyncio

import httpx
from sqlalchemy import func, select

from originlive.accounts.models import AccessToken, User
from tests.conftest import PASSWORD, Actor


async def test_register_returns_buyer(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/register",
        json={"email": " Grower@Example.com ", "password": PASSWORD, "display_name": "李阿姨"},
    )
    assert response.status_code == 201
    body = response.json()
    assert body["email"] == "grower@example.com"
    assert body["display_name"] == "李阿姨"
    assert body["roles"] == ["buyer"]
    assert "password" not in response.text and "hash" not in response.text


async def test_register_twice_is_conflict_and_writes_nothing(client: httpx.AsyncClient, db) -> None:
    payload = {"email": "a@example.com", "password": PASSWORD, "display_name": "A"}
    assert (await client.post("/api/v1/auth/register", json=payload)).status_code == 201
    again = await client.post("/api/v1/auth/register", json={**payload, "email": "A@EXAMPLE.COM"})
    assert again.status_code == 409
    assert again.json()["type"] == "/problems/conflict"
    assert await db.scalar(select(func.count()).select_from(User)) == 1


async def test_registering_one_email_at_once_from_many_places_is_one_account(
    client: httpx.AsyncClient, db
) -> None:
    """Every request passes the check for the email before any has written it (hashing the
    password takes a fifth of a second): the unique index decides, and the losers get 409."""
    body = {"email": "race@example.com", "password": PASSWORD, "display_name": "race"}
    answers = await asyncio.gather(
        *(client.post("/api/v1/auth/register", json=body) for _ in range(4))
    )
    assert sorted(a.status_code for a in answers) == [201, 409, 409, 409]
    assert await db.scalar(select(func.count()).select_from(User)) == 1


async def test_register_bad_input_is_422_with_field_errors(client: httpx.AsyncClient, db) -> None:
    response = await client.post(
        "/api/v1/auth/register",
        json={"email": "not-an-email", "password": "short", "display_name": "  "},
    )
    assert response.status_code == 422
    body = response.json()
    assert body["status"] == 422 and body["title"] and body["detail"]
    fields = {e["field"] for e in body["errors"]}
    assert {"email", "password", "display_name"} <= fields
    assert await db.scalar(select(func.count()).select_from(User)) == 0


async def test_a_display_name_with_what_cannot_be_seen_is_refused(
    client: httpx.AsyncClient, db
) -> None:
    """The name shown beside every comment: no overrides, zero-width or control characters."""
    for name in ["运营\u202e", "客服\u200b", "\u2066官方\u2069", "\ufeff店主", "\u3164"]:
        response = await client.post(
            "/api/v1/auth/register",
            json={"email": "a@example.com", "password": PASSWORD, "display_name": name},
        )
        assert response.status_code == 422, (name, response.text)
        assert [e["field"] for e in response.json()["errors"]] == ["display_name"]
    assert await db.scalar(select(func.count()).select_from(User)) == 0


async def test_malformed_json_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/register",
        content=b'{"email": "a@example.com", ',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"] == "/problems/malformed-json"


async def test_oversize_body_is_413(client: httpx.AsyncClient) -> None:
    big = b'{"email": "' + b"a" * (2 << 20) + b'"}'
    response = await client.post(
        "/api/v1/auth/register", content=big, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["status"] == 413


async def test_token_me_and_logout(client: httpx.AsyncClient, make_user) -> None:
    user: Actor = await make_user("buyer")
    me = await client.get("/api/v1/auth/me", headers=user.headers)
    assert me.status_code == 200 and me.json()["email"] == user.email
    assert (await client.post("/api/v1/auth/logout", headers=user.headers)).status_code == 204
    after = await client.get("/api/v1/auth/me", headers=user.headers)
    assert after.status_code == 401
    assert after.headers["www-authenticate"] == "Bearer"


async def test_token_answer_shape(client: httpx.AsyncClient, make_user, db) -> None:
    user = await make_user("buyer")
    response = await client.post(
        "/api/v1/auth/token", data={"username": user.email, "password": PASSWORD}
    )
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] > 0
    # Only digests are stored, never the token itself.
    stored = (await db.scalars(select(AccessToken.token_hash))).all()
    assert body["access_token"] not in stored and len(stored) == 2


async def test_wrong_password_is_401(client: httpx.AsyncClient, make_user) -> None:
    user = await make_user("buyer")
    response = await client.post(
        "/api/v1/auth/token", data={"username": user.email, "password": "wrong password"}
    )
    assert response.status_code == 401
    unknown = await client.post(
        "/api/v1/auth/token", data={"username": "nobody@example.com", "password": PASSWORD}
    )
    assert unknown.status_code == 401


async def test_login_attempts_are_rate_limited(client: httpx.AsyncClient, make_user) -> None:
    user = await make_user("buyer")
    codes = []
    for _ in range(7):  # the test settings allow 5 attempts per window
        r = await client.post(
            "/api/v1/auth/token", data={"username": user.email, "password": "wrong password"}
        )
        codes.append(r.status_code)
    assert codes == [401] * 5 + [429] * 2  # only failures count
    # Even the right password is refused while the window lasts.
    right = await client.post(
        "/api/v1/auth/token", data={"username": user.email, "password": PASSWORD}
    )
    assert right.status_code == 429 and int(right.headers["retry-after"]) > 0


async def test_many_good_logins_from_one_address_pass(
    client: httpx.AsyncClient, make_user, settings
) -> None:
    # Buyers behind one NAT address all sign in when a session starts; none is refused.
    user = await make_user("buyer")
    for _ in range(settings.login_attempts * 5 + 1):
        r = await client.post(
            "/api/v1/auth/token", data={"username": user.email, "password": PASSWORD}
        )
        assert r.status_code == 200


async def test_failures_across_accounts_block_the_address(
    client: httpx.AsyncClient, settings
) -> None:
    codes = set()
    for i in range(settings.login_attempts * 5 + 1):
        r = await client.post(
            "/api/v1/auth/token", data={"username": f"guess{i}@example.com", "password": "x"}
        )
        codes.add(r.status_code)
    assert codes == {401, 429}


async def test_invalid_bearer_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/auth/me", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert (await client.get("/api/v1/auth/me")).status_code == 401
