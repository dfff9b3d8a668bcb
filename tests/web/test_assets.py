"""Static files from memory in front of the framework (web/assets.StaticRoute): their bytes and
types as StaticFiles sends them, gzip where it is asked for and smaller, ETags and 304s, a
year's cache only for the URL with the content's hash; everything else, traversal attempts
included, goes on to StaticFiles. And a live room's first load within its 300 KB."""

import asyncio
import gzip
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from originlive.web.assets import STATIC_DIR, StaticRoute, digest, static_url
from tests.accounts.test_pages import login
from tests.catalog.conftest import Catalog
from tests.conftest import Actor
from tests.live.test_api import on_air
from tests.orders.conftest import Market

HLS_JS = "vendor/hls.js-1.7.4/hls.light.min.js"
FILES = ["site.css", "room.js", "regions.js", "vendor/htmx.org-2.0.11/htmx.min.js", HLS_JS]
GZIP = {"Accept-Encoding": "gzip, deflate, br"}  # as a browser asks
PLAIN = {"Accept-Encoding": "identity"}
BUDGET = 300 * 1024  # a live room's first load, video excluded
ETAG = re.compile(r'"[0-9a-f]{16}(-gzip)?"')


@dataclass
class Front:
    """StaticRoute in front of a Starlette app with StaticFiles at /static, and the paths that
    reached that app (whatever StaticRoute did not answer itself)."""

    route: StaticRoute
    client: httpx.AsyncClient  # through StaticRoute
    files: httpx.AsyncClient  # StaticFiles alone
    inner: ASGIApp  # StaticFiles alone
    passed_on: list[str]


async def _front(directory: Path) -> AsyncIterator[Front]:
    passed_on: list[str] = []
    inner = Starlette(routes=[Mount("/static", StaticFiles(directory=directory))])

    async def files(scope: Scope, receive: Receive, send: Send) -> None:
        passed_on.append(scope["path"])
        await inner(scope, receive, send)

    route = StaticRoute(files, directory=directory)
    base = "http://testserver"
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=route), base_url=base) as client,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=inner), base_url=base) as alone,
    ):
        yield Front(route, client, alone, inner, passed_on)


@pytest.fixture
async def site() -> AsyncIterator[Front]:
    """In front of the platform's own static files."""
    async for front in _front(STATIC_DIR):
        yield front


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Front]:
    """In front of a directory of the test's own, beside a file that must never be served."""
    directory = tmp_path / "static"
    (directory / "css").mkdir(parents=True)
    (directory / "css" / "big.css").write_text("body { margin: 0 }\n" * 200)
    (directory / "tiny.txt").write_bytes(b"hi")  # gzip would make it bigger
    (tmp_path / "app.py").write_text("SECRET = 'not for the web'\n")
    (directory / "outside.py").symlink_to(tmp_path / "app.py")
    async for front in _front(directory):
        yield front


async def asgi_get(
    app: ASGIApp, path: str, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """A GET of a path exactly as a server hands it on (not cleaned up as httpx would clean
    ``/static/../app.py``): the status and the body."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 50000),
    }
    sent: list[Message] = []
    done = asyncio.Event()
    asked = False

    async def receive() -> Message:
        nonlocal asked
        if not asked:
            asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()  # the client stays until the whole answer is sent
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            done.set()

    await app(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


async def test_files_are_sent_from_memory_with_the_types_staticfiles_gives(site: Front) -> None:
    for name in [*FILES, "vendor/hls.js-1.7.4/LICENSE"]:
        content = (STATIC_DIR / name).read_bytes()
        got = await site.client.get(f"/static/{name}", headers=PLAIN)
        assert got.status_code == 200, name
        assert got.content == content and got.headers["content-length"] == str(len(content))
        assert "content-encoding" not in got.headers
        reference = await site.files.get(f"/static/{name}", headers=PLAIN)
        assert got.headers["content-type"] == reference.headers["content-type"], name
        assert got.headers["etag"] == f'"{digest(content)}"'
        assert got.headers["cache-control"] == "no-cache"  # revalidated: the URL has no ?v=
    assert (await site.client.get("/static/site.css")).headers["content-type"] == (
        "text/css; charset=utf-8"
    )
    assert site.passed_on == []  # none of them reached StaticFiles


async def test_gzip_when_the_client_accepts_it_and_it_is_smaller(
    site: Front, sandbox: Front
) -> None:
    for name in FILES:
        content = (STATIC_DIR / name).read_bytes()
        packed = await site.client.get(f"/static/{name}", headers=GZIP)
        assert packed.headers["content-encoding"] == "gzip", name
        assert packed.content == content  # httpx has unpacked it
        assert packed.num_bytes_downloaded == len(gzip.compress(content, 9, mtime=0))
        assert packed.num_bytes_downloaded < len(content) / 2
        assert packed.headers["content-length"] == str(packed.num_bytes_downloaded)
        assert packed.headers["vary"] == "accept-encoding"
        assert packed.headers["etag"] == f'"{digest(content)}-gzip"'  # another representation
        plain = await site.client.get(f"/static/{name}", headers=PLAIN)
        assert (
            "content-encoding" not in plain.headers and plain.headers["vary"] == "accept-encoding"
        )
    hls = len((STATIC_DIR / HLS_JS).read_bytes())
    refusals = ["identity", "br, deflate", "gzip;q=0, br", "*;q=0", "gzip;q=0, *"]
    for accept in ["gzip", "GZIP;q=0.5", "x-gzip", "*", "br;q=1, *;q=0.1", *refusals]:
        got = await site.client.get(f"/static/{HLS_JS}", headers={"Accept-Encoding": accept})
        assert got.headers.get("content-encoding") == (None if accept in refusals else "gzip")
        assert (got.num_bytes_downloaded == hls) == (accept in refusals), accept
    nothing_said = await asgi_get(site.route, "/static/site.css")  # no Accept-Encoding at all
    assert nothing_said == (200, (STATIC_DIR / "site.css").read_bytes())

    # Where gzip would be bigger, the file goes as it is, and nothing varies.
    tiny = await sandbox.client.get("/static/tiny.txt", headers=GZIP)
    assert tiny.content == b"hi" and "content-encoding" not in tiny.headers
    assert (
        "vary" not in tiny.headers and tiny.headers["content-type"] == "text/plain; charset=utf-8"
    )
    big = await sandbox.client.get("/static/css/big.css", headers=GZIP)
    assert big.headers["content-encoding"] == "gzip" and big.num_bytes_downloaded < 200
    assert sandbox.passed_on == []


async def test_an_etag_the_client_has_is_a_304(site: Front) -> None:
    plain = await site.client.get("/static/room.js", headers=PLAIN)
    packed = await site.client.get("/static/room.js", headers=GZIP)
    cases = [
        (plain.headers["etag"], PLAIN, plain.headers["etag"]),
        (packed.headers["etag"], GZIP, packed.headers["etag"]),
        (plain.headers["etag"], GZIP, plain.headers["etag"]),  # its plain copy still holds
        ("W/" + packed.headers["etag"], GZIP, packed.headers["etag"]),  # compared weakly
        (f'"0123456789abcdef", {packed.headers["etag"]}', GZIP, packed.headers["etag"]),
        ("*", GZIP, packed.headers["etag"]),
    ]
    for held, accept, etag in cases:
        got = await site.client.get("/static/room.js", headers=accept | {"If-None-Match": held})
        assert got.status_code == 304, held
        assert got.content == b"" and "content-length" not in got.headers
        assert got.headers["etag"] == etag and got.headers["cache-control"] == "no-cache"
        assert got.headers["vary"] == "accept-encoding"
    for stale in ['"0123456789abcdef"', '"0123456789abcdef-gzip"', plain.headers["etag"][:-2]]:
        got = await site.client.get("/static/room.js", headers=GZIP | {"If-None-Match": stale})
        assert got.status_code == 200 and got.content == (STATIC_DIR / "room.js").read_bytes()
    assert site.passed_on == []


async def test_a_year_of_cache_only_for_the_url_with_the_contents_hash(site: Front) -> None:
    content = (STATIC_DIR / "site.css").read_bytes()
    url = static_url("site.css")
    assert url == f"/static/site.css?v={digest(content)}"
    assert static_url(HLS_JS) == f"/static/{HLS_JS}?v={digest((STATIC_DIR / HLS_JS).read_bytes())}"
    year = "public, max-age=31536000, immutable"
    for asked in [url, url + "&lang=en", f"/static/site.css?lang=en&v={digest(content)}"]:
        got = await site.client.get(asked, headers=GZIP)
        assert got.status_code == 200 and got.headers["cache-control"] == year, asked
        again = await site.client.get(asked, headers=GZIP | {"If-None-Match": got.headers["etag"]})
        assert again.status_code == 304 and again.headers["cache-control"] == year
    # No hash, another file's, an old one, two of them: the current file, revalidated each time.
    stale = digest(b"body { color: red }")
    for asked in ["", f"?v={stale}", f"?v={static_url('room.js').split('=')[1]}", "?v=", "?x=1",
                  f"?v={digest(content)}&v={stale}", f"?V={digest(content)}"]:  # fmt: skip
        got = await site.client.get(f"/static/site.css{asked}", headers=GZIP)
        assert got.status_code == 200 and got.content == content, asked
        assert got.headers["cache-control"] == "no-cache", asked
    with pytest.raises(FileNotFoundError):
        static_url("no-such.css")  # a misspelt name fails the page's test
    assert site.passed_on == []


async def test_head_is_the_gets_headers_without_a_body(site: Front) -> None:
    for accept in (GZIP, PLAIN):
        get = await site.client.get(static_url(HLS_JS), headers=accept)
        head = await site.client.head(static_url(HLS_JS), headers=accept)
        assert head.status_code == 200 and head.content == b"" and head.num_bytes_downloaded == 0
        assert head.headers == get.headers  # Content-Length the GET's body's
    assert site.passed_on == []


async def test_what_it_does_not_answer_goes_on_to_staticfiles_untouched(
    site: Front, sandbox: Front
) -> None:
    secret = b"not for the web"
    # Traversal, plain and encoded: not among the files read, so StaticFiles decides (404).
    for path in ["/static/../app.py", "/static/css/../../app.py", "/static/outside.py",
                 "/static/css", "/static/css/", "/static/", "/static/nothing.css",
                 "/static/TINY.TXT"]:  # fmt: skip
        sandbox.passed_on.clear()
        status, body = await asgi_get(sandbox.route, path, GZIP)
        assert sandbox.passed_on == [path] and status == 404 and secret not in body, path
    # Odd names for a file it has: StaticFiles' answer, whatever that is.
    for path in ["/static/./tiny.txt", "/static/tiny.txt/", "/static//tiny.txt"]:
        sandbox.passed_on.clear()
        answer = await asgi_get(sandbox.route, path, GZIP)
        assert sandbox.passed_on == [path] and answer == await asgi_get(sandbox.inner, path), path
    for raw in ["/static/%2e%2e/app.py", "/static/css/..%2f..%2fapp.py", "/static/%2E%2E%2Fapp.py",
                "/static/..%5capp.py", "/static/css%2f..%2f..%2fapp.py"]:  # fmt: skip
        sandbox.passed_on.clear()
        got = await sandbox.client.get(raw, headers=GZIP)
        assert got.status_code == 404 and secret.decode() not in got.text, raw
        assert len(sandbox.passed_on) == 1, raw

    # Other methods, ranges and preconditions but If-None-Match: StaticFiles' to answer.
    site.passed_on.clear()
    assert (await site.client.post("/static/site.css")).status_code == 405
    ranged = await site.client.get("/static/site.css", headers=GZIP | {"Range": "bytes=0-9"})
    assert (
        ranged.status_code == 206 and ranged.content == (STATIC_DIR / "site.css").read_bytes()[:10]
    )
    theirs = (await site.files.get("/static/site.css")).headers["etag"]  # StaticFiles' own
    assert not ETAG.fullmatch(theirs)
    for header in (
        {"If-Match": '"nope"'},
        {"If-Unmodified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"},
    ):
        got = await site.client.get("/static/site.css", headers=header)
        assert got.headers["etag"] == theirs, header
    assert site.passed_on == ["/static/site.css"] * 4
    # StaticFiles' ETag (a browser's copy from before) is not ours: the file again, from memory.
    again = await site.client.get("/static/site.css", headers={"If-None-Match": theirs})
    assert again.status_code == 200 and ETAG.fullmatch(again.headers["etag"])
    assert site.passed_on == ["/static/site.css"] * 4


async def test_a_live_rooms_first_load_is_within_300_kb(
    app: Any,
    client: httpx.AsyncClient,
    make_user: Callable[..., Awaitable[Actor]],
    make_operator: Callable[[], Awaitable[Actor]],
) -> None:
    """Every byte a browser fetches for the room page, compressed where it may be: the page,
    its style sheet and scripts, hls.js included (browsers that cannot play HLS themselves
    fetch it), as StaticRoute sends them in front of the whole app."""
    catalog = Catalog(client, make_operator)
    merchant = await make_user("merchant")
    shop = await catalog.shop(merchant)
    product = await catalog.product(merchant, shop["id"])
    market = Market(client, merchant, shop["id"], product["id"], product["skus"][0]["id"])
    live = await on_air(market, title="猕猴桃开园直播 · 徐杨村", price_cents=2990)
    buyer = await make_user("buyer")

    transport = httpx.ASGITransport(app=StaticRoute(app, directory=STATIC_DIR))
    browser = {"Accept-Language": "zh-CN,zh;q=0.9", "Accept-Encoding": "gzip, deflate, br"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers=browser
    ) as phone:
        await login(phone, buyer.email)  # signed in: the page with the chat form
        page = await phone.get(f"/live/{live['id']}")
        assert page.status_code == 200 and 'id="say"' in page.text
        assets = sorted(set(re.findall(r'"(/static/[^"]+)"', page.text)))
        names = {asset.split("?")[0] for asset in assets}
        assert names == {f"/static/{name}" for name in ("site.css", "room.js", HLS_JS)}, assets
        fetched = {"page": wire_bytes(page)}
        for asset in assets:
            got = await phone.get(asset)
            assert got.status_code == 200 and got.headers["content-encoding"] == "gzip", asset
            fetched[asset] = wire_bytes(got)

    total = sum(fetched.values())
    print(f"first load of the live room: {total:,} bytes: {fetched}")
    assert total <= BUDGET, fetched
    hls = next(size for asset, size in fetched.items() if asset.startswith(f"/static/{HLS_JS}"))
    assert hls < 125_000  # 389 KB as it is


def wire_bytes(response: httpx.Response) -> int:
    """The body as it came (compressed or not) and the status line and headers, roughly."""
    head = sum(len(name) + len(value) + 4 for name, value in response.headers.raw)
    return response.num_bytes_downloaded + head + len("HTTP/1.1 200 OK\r\n\r\n")
