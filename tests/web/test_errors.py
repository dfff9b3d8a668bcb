"""Browsers get error pages; API clients keep problem JSON."""

from typing import Any

import httpx
from sqlalchemy.exc import TimeoutError as PoolTimeout

from originlive.accounts.deps import CurrentUser
from originlive.db import POOL_TIMEOUT_SECONDS

HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8", "Accept-Language": "en"}


async def test_pages_that_need_a_user_send_browsers_to_sign_in(
    app: Any, client: httpx.AsyncClient
) -> None:
    async def orders(user: CurrentUser) -> str:
        return user.display_name

    app.add_api_route("/my-orders", orders)

    browser = await client.get("/my-orders", params={"page": "2"}, headers=HTML)
    assert browser.status_code == 303
    assert browser.headers["location"] == "/login?next=%2Fmy-orders%3Fpage%3D2"

    script = await client.get("/my-orders")
    assert script.status_code == 401
    assert script.json()["type"] == "/problems/not-authenticated"


async def test_unexpected_errors_get_a_page_without_details(app: Any) -> None:
    async def broken() -> None:
        raise RuntimeError("secret database detail")

    app.add_api_route("/broken", broken)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        page = await client.get("/broken", headers=HTML)
        api = await client.get("/broken")

    assert page.status_code == 500
    assert page.headers["content-type"].startswith("text/html")
    assert "Something went wrong" in page.text
    assert "secret database detail" not in page.text
    assert api.status_code == 500 and api.json()["type"] == "/problems/internal-error"


async def test_missing_static_files_and_methods(client: httpx.AsyncClient) -> None:
    missing = await client.get("/static/nothing.css", headers=HTML)
    assert missing.status_code == 404 and "Page not found" in missing.text
    wrong_method = await client.put("/login", headers=HTML)
    assert wrong_method.status_code == 405 and "<h1>Not allowed</h1>" in wrong_method.text
    assert (await client.get("/static/site.css")).headers["content-type"].startswith("text/css")


async def test_no_connection_free_in_time_is_a_quick_503_to_try_again(app, client) -> None:
    """Under a surge a request that finds every database connection taken is told to come
    back in a second, after at most POOL_TIMEOUT_SECONDS: not a 500 after half a minute."""
    assert app.state.engine.pool.timeout() == POOL_TIMEOUT_SECONDS  # not SQLAlchemy's 30 s
    held = []
    try:
        while True:  # take every connection the pool has
            try:
                held.append(await app.state.engine.connect())
            except PoolTimeout:
                break
        api = await client.get("/api/v1/shops")
        assert api.status_code == 503, api.text
        assert api.headers["retry-after"] == "1" and api.json()["type"] == "/problems/busy"
        page = await client.get("/", headers={"Accept": "text/html", "Accept-Language": "zh-CN"})
        assert page.status_code == 503 and "现在人太多了" in page.text
        assert page.headers["retry-after"] == "1"
        # Background work has a pool of its own: the rooms still read the database.
        assert await app.state.hub.room(999_999) is None
    finally:
        for connection in held:
            await connection.close()
    assert (await client.get("/api/v1/shops")).status_code == 200  # and then it serves again
