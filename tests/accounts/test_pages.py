"""The register, sign-in and sign-out pages: cookie session, CSRF, redirects, errors."""

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.accounts.deps import SESSION_COOKIE
from originlive.accounts.models import AccessToken, TokenKind
from originlive.accounts.pages import safe_next
from originlive.app import create_app
from originlive.settings import Settings
from tests.conftest import PASSWORD, empty_database

HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(page: httpx.Response) -> str:
    """The CSRF token a page's form carries."""
    match = _TOKEN.search(page.text)
    assert match, page.text
    return match.group(1)


def set_cookie(response: httpx.Response, name: str) -> str | None:
    """The raw Set-Cookie header for the cookie, if the response sets it."""
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(f"{name}="):
            return header
    return None


async def register(
    client: httpx.AsyncClient, email: str, name: str = "李梅", next_path: str = "/"
) -> httpx.Response:
    form = await client.get("/register", params={"next": next_path})
    assert form.status_code == 200
    return await client.post(
        "/register",
        data={
            "csrf_token": csrf_of(form),
            "email": email,
            "password": PASSWORD,
            "display_name": name,
            "next": next_path,
        },
    )


async def login(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD, next_path: str = "/"
) -> httpx.Response:
    form = await client.get("/login", params={"next": next_path})
    assert form.status_code == 200
    return await client.post(
        "/login",
        data={
            "csrf_token": csrf_of(form),
            "email": email,
            "password": password,
            "next": next_path,
        },
        headers=HTML,
    )


async def session_count(db: AsyncSession) -> int:
    query = select(func.count()).where(AccessToken.kind == TokenKind.SESSION)
    return int(await db.scalar(query) or 0)


async def test_register_sign_in_and_out(
    client: httpx.AsyncClient, db: AsyncSession, settings: Settings
) -> None:
    registered = await register(client, "li.mei@example.com", name="李梅")
    assert registered.status_code == 303
    assert registered.headers["location"] == "/login?next=%2F&registered=1"

    signed_in = await login(client, "LI.MEI@example.com ")
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == "/"
    cookie = set_cookie(signed_in, SESSION_COOKIE)
    assert cookie is not None
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=lax", "path=/"} <= flags
    assert f"max-age={settings.session_ttl_seconds}" in flags
    assert "secure" not in flags  # cookie_secure is off for plain-HTTP tests

    home = await client.get("/")
    assert home.status_code == 200
    assert "李梅" in home.text
    assert home.headers["cache-control"] == "no-store"
    assert await session_count(db) == 1

    # No token: the cookie alone must not sign anyone out (a cross-site form could send it).
    refused = await client.post("/logout", headers=HTML)
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("text/html")
    assert await session_count(db) == 1

    signed_out = await client.post("/logout", data={"csrf_token": csrf_of(home)})
    assert signed_out.status_code == 303
    deleted = set_cookie(signed_out, SESSION_COOKIE)
    assert deleted is not None and "max-age=0" in deleted.lower()
    assert await session_count(db) == 0
    assert "李梅" not in (await client.get("/")).text


async def test_revoked_session_cookie_is_worthless(client: httpx.AsyncClient) -> None:
    await register(client, "wang@example.com", name="王强")
    await login(client, "wang@example.com")
    stolen = client.cookies[SESSION_COOKIE]
    home = await client.get("/")
    await client.post("/logout", data={"csrf_token": csrf_of(home)})

    client.cookies.set(SESSION_COOKIE, stolen)
    assert "王强" not in (await client.get("/")).text


async def test_json_write_needs_the_csrf_header_with_a_cookie(client: httpx.AsyncClient) -> None:
    await register(client, "zhao@example.com")
    await login(client, "zhao@example.com")
    home = await client.get("/")

    refused = await client.post("/api/v1/auth/logout")
    assert refused.status_code == 403
    assert refused.json()["type"] == "/problems/forbidden"
    wrong = await client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": "0" * 64})
    assert wrong.status_code == 403

    allowed = await client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf_of(home)})
    assert allowed.status_code == 204


async def test_wrong_password_re_renders_without_a_session(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    await register(client, "chen@example.com")

    response = await login(client, "chen@example.com", password="not the password")

    assert response.status_code == 401
    assert response.headers["content-type"].startswith("text/html")
    assert "Wrong email or password." in response.text
    assert 'value="chen@example.com"' in response.text  # the typed email is kept
    assert set_cookie(response, SESSION_COOKIE) is None
    assert SESSION_COOKIE not in client.cookies
    assert await session_count(db) == 0


async def test_sign_in_is_rate_limited(client: httpx.AsyncClient, settings: Settings) -> None:
    await register(client, "liu@example.com")
    for _ in range(settings.login_attempts):
        assert (await login(client, "liu@example.com", password="wrong")).status_code == 401

    blocked = await login(client, "liu@example.com")

    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) > 0
    assert "Too many sign-in attempts" in blocked.text
    assert set_cookie(blocked, SESSION_COOKIE) is None


async def test_sign_in_form_needs_its_pre_session_token(client: httpx.AsyncClient) -> None:
    await register(client, "sun@example.com")
    form = await client.get("/login")
    token = csrf_of(form)
    data = {"email": "sun@example.com", "password": PASSWORD}

    missing = await client.post("/login", data=data)
    assert missing.status_code == 403
    assert "This form has expired" in missing.text

    # A page on another site can post the form but cannot send our cookie with a token for it.
    client.cookies.clear()
    forged = await client.post("/login", data=data | {"csrf_token": token})
    assert forged.status_code == 403
    assert set_cookie(forged, SESSION_COOKIE) is None


async def test_register_shows_errors_next_to_fields(client: httpx.AsyncClient) -> None:
    form = await client.get("/register")
    response = await client.post(
        "/register",
        data={
            "csrf_token": csrf_of(form),
            "email": "not-an-email",
            "password": "short",
            "display_name": "周",
        },
    )
    assert response.status_code == 422
    assert 'id="f-email-note">Enter a valid email address.' in response.text
    assert 'id="f-password-note">Use 8 to 128 characters.' in response.text
    assert 'value="周"' in response.text
    assert "short" not in response.text  # the password is never echoed

    await register(client, "zhou@example.com")
    taken = await register(client, "zhou@example.com")
    assert taken.status_code == 409
    assert "An account with this email already exists." in taken.text


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example",
        "//evil.example",
        "/\\evil.example",
        "/\t/evil.example",
        "javascript:alert(1)",
        "http:/evil.example",
        "",
    ],
)
async def test_next_never_leaves_the_site(client: httpx.AsyncClient, target: str) -> None:
    await register(client, "wu@example.com")
    response = await login(client, "wu@example.com", next_path=target)
    assert response.status_code == 303
    assert response.headers["location"] == "/"


async def test_next_returns_to_the_page(client: httpx.AsyncClient) -> None:
    await register(client, "he@example.com", next_path="/search?q=%E8%8C%B6")
    response = await login(client, "he@example.com", next_path="/search?q=%E8%8C%B6")
    assert response.headers["location"] == "/search?q=%E8%8C%B6"
    # Signed in already: the forms send the visitor on.
    again = await client.get("/login", params={"next": "/search"})
    assert again.status_code == 303
    assert again.headers["location"] == "/search"


def test_safe_next() -> None:
    assert safe_next("/products/1?x=1#top") == "/products/1?x=1#top"
    assert safe_next("/%2F%2Fevil.example") == "/%2F%2Fevil.example"  # a path, not a host
    assert safe_next("/登录") == "/"  # unencoded text: refused rather than guessed at
    assert safe_next(None) == "/"


@pytest.fixture
async def secure_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client over HTTPS to an app that marks its cookies Secure."""
    app: Any = create_app(settings.model_copy(update={"cookie_secure": True}))
    async with app.router.lifespan_context(app):
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as c:
                yield c
        finally:
            await empty_database(app.state.sessionmaker)


async def test_cookies_are_secure_when_configured(secure_client: httpx.AsyncClient) -> None:
    form = await secure_client.get("/register")
    pre_session = set_cookie(form, "__Host-originlive_csrf")
    assert pre_session is not None and "secure" in pre_session.lower()

    await register(secure_client, "xu@example.com")
    signed_in = await login(secure_client, "xu@example.com")

    assert signed_in.status_code == 303
    cookie = set_cookie(signed_in, SESSION_COOKIE)
    assert cookie is not None and "; secure" in cookie.lower()
