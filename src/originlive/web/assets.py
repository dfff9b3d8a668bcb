"""Static files (``/static/...``: styles, scripts, vendored hls.js and htmx), answered from
memory in front of FastAPI, compressed and cached by the browser.

Through Starlette's ``StaticFiles`` behind FastAPI's stack (a thread and a ``stat`` per file)
one process served about 290 of them a second, and sent them as they are: hls.js alone is
389 KB, where a live room's first load must stay under 300 KB. So the app hands every request
to :class:`StaticRoute` first: the whole directory (under 1 MB) is read once at start-up, and
a plain ``GET`` or ``HEAD`` of a file in it is answered with its bytes, gzip-compressed once
(level 9) when the client accepts gzip and that is smaller, with a strong ``ETag`` (a hash of
the content; ``If-None-Match`` is a 304). Anything else passes through untouched to
``StaticFiles``, which stays the one place of refusals: other methods, ranges, preconditions
other than ``If-None-Match``, unknown files and every odd or hostile path (``..``, doubled
slashes), which simply are not among the files read.

Pages name their files with :func:`static_url` (the ``static`` function in templates):
``/static/site.css?v=<hash>``. With the hash of the current content, the answer is cached for
a year (``immutable``), so a returning buyer fetches nothing; a new version of the file has a
new URL. Without it (or with an old one) the answer is ``no-cache``: revalidated each time,
a 304 when unchanged. Files are read once: a change to them takes a restart, as code does.
"""

import gzip
import hashlib
import mimetypes
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from urllib.parse import parse_qs, quote

from starlette.types import ASGIApp, Receive, Scope, Send

STATIC_DIR = Path(__file__).parent / "static"
PREFIX = "/static/"
MAX_FILE_BYTES = 4 * 1024 * 1024  # bigger files (none today) go on to StaticFiles
IMMUTABLE = b"public, max-age=31536000, immutable"
REVALIDATE = b"no-cache"
# Requests with these are StaticFiles' to answer (or to refuse): a range, or a precondition
# other than If-None-Match.
_PASS_ON = frozenset({b"range", b"if-match", b"if-unmodified-since"})
_HeaderList = list[tuple[bytes, bytes]]


def digest(content: bytes) -> str:
    """The short hash of a file's content: its ``?v=`` and its ``ETag``."""
    return hashlib.sha256(content).hexdigest()[:16]


@cache
def static_url(path: str) -> str:
    """The URL of a static file (``path`` under ``web/static``), versioned by its content:
    ``/static/site.css?v=<hash>``. Read and hashed once per file; a missing file raises
    (``FileNotFoundError``), so a misspelt name fails the page's test, not the reader."""
    return f"{PREFIX}{quote(path)}?v={digest((STATIC_DIR / path).read_bytes())}"


def content_type(name: str) -> str:
    """The ``Content-Type`` StaticFiles sends for a file's name."""
    media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return media_type + "; charset=utf-8" if media_type.startswith("text/") else media_type


@dataclass(frozen=True, slots=True)
class _Variant:
    """One representation of a file (as it is, or gzip-compressed) and its ETag."""

    body: bytes
    etag: bytes
    # The response's headers, made once: [0] revalidated, [1] immutable (the right ?v=).
    headers: tuple[_HeaderList, _HeaderList]
    not_modified: tuple[_HeaderList, _HeaderList]


@dataclass(frozen=True, slots=True)
class Asset:
    """A static file, read: its version (``?v=``) and its representations."""

    version: str
    plain: _Variant
    packed: _Variant | None  # gzip, if that is smaller

    @classmethod
    def of(cls, name: str, content: bytes) -> "Asset":
        version = digest(content)
        compressed = gzip.compress(content, compresslevel=9, mtime=0)
        vary = [(b"vary", b"accept-encoding")]
        if len(compressed) >= len(content):
            return cls(version, _variant(name, content, f'"{version}"', []), None)
        return cls(
            version,
            _variant(name, content, f'"{version}"', vary),
            _variant(name, compressed, f'"{version}-gzip"', [*vary, _GZIP]),
        )


_GZIP = (b"content-encoding", b"gzip")


def _variant(name: str, body: bytes, etag: str, extra: _HeaderList) -> _Variant:
    tag = etag.encode()

    def answer(cache_control: bytes, *, whole: bool) -> _HeaderList:
        head = [(b"etag", tag), (b"cache-control", cache_control)]
        if not whole:  # a 304 says only what a cache needs to update its copy
            return [*head, *(h for h in extra if h[0] == b"vary")]
        length = str(len(body)).encode()
        kind = content_type(name).encode()
        return [(b"content-type", kind), (b"content-length", length), *head, *extra]

    return _Variant(
        body=body,
        etag=tag,
        headers=(answer(REVALIDATE, whole=True), answer(IMMUTABLE, whole=True)),
        not_modified=(answer(REVALIDATE, whole=False), answer(IMMUTABLE, whole=False)),
    )


def read_directory(directory: Path) -> dict[str, Asset]:
    """Every regular file under ``directory`` (none reached through a link that leads out of
    it, none over ``MAX_FILE_BYTES``), by its path under it as a URL has it."""
    root = directory.resolve()
    files: dict[str, Asset] = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or not path.resolve().is_relative_to(root):
            continue
        if path.stat().st_size > MAX_FILE_BYTES:
            continue
        name = path.relative_to(root).as_posix()
        files[name] = Asset.of(name, path.read_bytes())
    return files


class StaticRoute:
    """Answers plain ``GET`` and ``HEAD`` of ``/static/<file>`` from memory; passes everything
    else on to ``app`` (where ``StaticFiles`` serves or refuses it)."""

    def __init__(self, app: ASGIApp, *, directory: Path) -> None:
        self.app = app
        self.files = read_directory(directory)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        asset = (
            self.files.get(scope["path"][len(PREFIX) :])
            if scope["type"] == "http"
            and scope["method"] in ("GET", "HEAD")
            and scope["path"].startswith(PREFIX)
            else None
        )
        if asset is None:
            await self.app(scope, receive, send)
            return
        accept = if_none_match = b""
        for name, value in scope["headers"]:
            if name == b"accept-encoding":
                accept += b"," + value
            elif name == b"if-none-match":
                if_none_match += b"," + value
            elif name in _PASS_ON:
                await self.app(scope, receive, send)
                return
        variant = asset.packed if asset.packed and _accepts_gzip(accept) else asset.plain
        immutable = int(_versioned(scope.get("query_string", b""), asset.version))
        if if_none_match:
            matched = _matching(if_none_match, asset, variant)
            if matched is not None:
                headers = matched.not_modified[immutable]
                await send({"type": "http.response.start", "status": 304, "headers": [*headers]})
                await send({"type": "http.response.body", "body": b""})
                return
        body = variant.body if scope["method"] == "GET" else b""
        headers = variant.headers[immutable]
        await send({"type": "http.response.start", "status": 200, "headers": [*headers]})
        await send({"type": "http.response.body", "body": body})


def _versioned(query: bytes, version: str) -> bool:
    """Whether the URL carries ``?v=`` with the current content's hash."""
    if not query:
        return False
    if query == b"v=" + version.encode():
        return True
    return parse_qs(query.decode("latin-1")).get("v") == [version]


def _matching(if_none_match: bytes, asset: Asset, selected: _Variant) -> _Variant | None:
    """The representation one of the client's ETags names (compared weakly, as RFC 9110 says
    for ``If-None-Match``), the selected one for ``*``; None if none does."""
    for candidate in if_none_match.split(b","):
        tag = candidate.strip().removeprefix(b"W/")
        if tag == b"*":
            return selected
        for variant in (asset.plain, asset.packed):
            if variant is not None and tag == variant.etag:
                return variant
    return None


@lru_cache(maxsize=256)
def _accepts_gzip(accept_encoding: bytes) -> bool:
    """Whether ``Accept-Encoding`` allows gzip: named (or as ``x-gzip``) with a q above 0, or
    else ``*`` with a q above 0."""
    named: float | None = None
    anything = 0.0
    for part in accept_encoding.decode("latin-1").split(","):
        coding, *parameters = (piece.strip().lower() for piece in part.split(";"))
        quality = 1.0
        for parameter in parameters:
            key, _, value = parameter.partition("=")
            if key.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if coding in ("gzip", "x-gzip"):
            named = max(named or 0.0, quality)
        elif coding == "*":
            anything = quality
    return (named if named is not None else anything) > 0
