"""originlive.routing.Router: a feature's router declines other features' paths at once, and
what matches is what FastAPI matched before."""

import httpx
from starlette.routing import Match

from originlive.catalog import api as catalog_api
from originlive.catalog import pages as catalog_pages
from originlive.routing import Router
from originlive.web import pages as web_pages


def _scope(path: str, method: str = "GET") -> dict[str, object]:
    return {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}


def test_a_router_declines_paths_none_of_its_routes_could_match() -> None:
    assert catalog_pages.router.could_match("/products/1")
    assert catalog_pages.router.could_match("/search")
    assert not catalog_pages.router.could_match("/api/v1/products")
    assert not catalog_pages.router.could_match("/searching")
    assert catalog_api.router.could_match("/api/v1/products")
    assert not catalog_api.router.could_match("/live/1")
    assert web_pages.router.could_match("/")
    assert not web_pages.router.could_match("/healthz")
    match, _ = catalog_pages.router.matches(_scope("/api/v1/products"))
    assert match is Match.NONE


def test_a_router_sees_routes_added_after_its_first_match() -> None:
    router = Router()
    assert not router.could_match("/late/1")

    @router.get("/late/{n}")
    async def late(n: int) -> dict[str, int]:
        return {"n": n}

    assert router.could_match("/late/1")


async def test_the_app_routes_as_before(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    missing = await client.get("/api/v1/no-such-thing")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    wrong_method = await client.delete("/api/v1/products")
    assert wrong_method.status_code == 405
    assert (await client.get("/api/v1/products")).status_code == 200
    assert (await client.get("/search?q=tea")).status_code == 200
