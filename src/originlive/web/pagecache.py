"""Pages rendered once for everyone who sees the same thing, and sent before FastAPI's stack.

When a room goes live its whole audience opens the same page in the same minute. Rendered for
each of them (routing, a database session, three or four queries, Jinja) one process served
a few dozen pages a second. But what a room, a product or the home page shows is the same
for every anonymous viewer in a language until something on it changes, and the same for
every signed-in viewer but for who they are. So:

- A page route that may be shared says so: ``render(..., shared=Shared(tags, only_if))``
  (``web.templating``). ``tags`` name what the page shows (``"product:7"``, ``"shop:3"``,
  ``"session:1"``, ``"listing"``); ``only_if`` says which signed-in viewers may have the
  shared page (a shop's owner sees its product page with the owner's links, say).
- The anonymous render is kept as it is. The signed-in render is made once with stand-ins for
  the viewer's name, e-mail and form token (``PLACEHOLDERS``), and each signed-in viewer gets
  it with their own filled in. The page's template sees no other viewer, so no viewer can be
  shown another's name.
- ``PageRoute``, in front of the framework, answers a plain ``GET`` from what is kept, by the
  path, the query, the language and anonymous or signed in; on a miss it lets one request
  through to render while the others for the same page wait for it.
- A page is kept until what it shows changes and at most ``max_age`` seconds. Each commit of
  the app's sessions tells the cache which rows it changed (``db.create_sessionmaker``'s
  ``on_commit``); the features say which tags a changed row touches (:func:`watch`), and the
  pages with those tags are forgotten at once. What that does not see (plain SQL writes such
  as stock taken by orders, another process's commits) shows within ``max_age``: one second
  by default (``ORIGINLIVE_PAGE_CACHE_SECONDS``; 0 turns the cache off).
"""

import asyncio
import contextlib
import html
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger(__name__)

ANONYMOUS, SIGNED_IN = "anonymous", "signed-in"
Key = tuple[str, str, str, bytes]  # (anonymous or signed in, language, path, query string)

# Stand-ins in the signed-in render: private-use characters, which escaping leaves alone and
# no template writes. The fill is one pass, so a name that holds a stand-in stays as it is.
PLACEHOLDERS = {
    "name": "\ue000name\ue001",
    "email": "\ue000email\ue001",
    "csrf": "\ue000csrf\ue001",
}
_PLACEHOLDER = re.compile("\ue000(name|email|csrf)\ue001".encode())
# Paths that are never pages; their own routes in front answer them, or FastAPI does.
_NOT_PAGES = ("/api/", "/media/", "/static/", "/ws/", "/docs", "/openapi.json", "/redoc")
WAIT_FOR_RENDER_SECONDS = 10.0
_HIT = (b"x-page-cache", b"hit")  # what was sent from the cache says so (tests, operators)
# A page whose route does not share it is let through, without waiting for another request's
# render of it, for this long after one of its renders.
UNSHARED_SECONDS = 10.0
# ``render`` marks the request's scope with this when its route shares the page.
SHARED_ROUTE = "originlive.shared_route"


class Viewer(Protocol):
    """A signed-in viewer, as far as a shared page cares (``web.deps.SignedIn``)."""

    @property
    def id(self) -> int: ...

    @property
    def email(self) -> str: ...

    @property
    def display_name(self) -> str: ...

    @property
    def is_operator(self) -> bool: ...


@dataclass(frozen=True)
class Shared:
    """How a page may be shared: what it shows, and which signed-in viewers may have it."""

    tags: tuple[str, ...]
    only_if: Callable[[Any], bool] | None = None

    def allows(self, viewer: Viewer) -> bool:
        """Whether this signed-in viewer sees what every other signed-in viewer sees. Never
        an operator: the layout shows them the way to the operator's pages."""
        return not viewer.is_operator and (self.only_if is None or self.only_if(viewer))


@dataclass
class Page:
    """A kept page: its body (with stand-ins, if signed in) and headers but the length."""

    body: bytes
    headers: list[tuple[bytes, bytes]]
    shared: Shared
    born: float = field(default_factory=time.monotonic)


_WATCHED: dict[type, Callable[[Any], Iterable[str]]] = {}
T = TypeVar("T")


def watch(model: type[T], tags: Callable[[T], Iterable[str]]) -> None:
    """Say which pages' tags a committed change of a ``model`` row touches."""
    _WATCHED[model] = tags


def fill(template: bytes, values: dict[str, str]) -> bytes:
    """The signed-in render with one viewer's own values (escaped) for the stand-ins."""
    escaped = {k.encode(): html.escape(v).encode() for k, v in values.items()}
    return _PLACEHOLDER.sub(lambda m: escaped[m[1]], template)


class PageCache:
    """Rendered pages by key, each forgotten when a tag of its changes or when it is old."""

    def __init__(self, *, max_age: float, max_pages: int = 2000) -> None:
        self.max_age = max_age
        self.max_pages = max_pages
        self._pages: OrderedDict[Key, Page] = OrderedDict()
        self._by_tag: dict[str, set[Key]] = {}
        self._renders: dict[Key, asyncio.Event] = {}
        self._unshared: OrderedDict[Key, float] = OrderedDict()
        self.on_forget: list[Callable[[set[str]], None]] = []
        # Commits of the app's sessions that changed rows through the ORM, counted: what
        # others keep for ``max_age`` compares it (``catalog.service.kept``).
        self.commits = 0

    @property
    def enabled(self) -> bool:
        """Whether pages are kept at all."""
        return self.max_age > 0

    def get(self, key: Key) -> tuple[Page | None, bool]:
        """The kept page and whether it is still fresh (an old one may serve while one
        request renders it anew)."""
        page = self._pages.get(key)
        if page is None:
            return None, False
        return page, time.monotonic() - page.born < self.max_age

    def put(self, key: Key, page: Page) -> None:
        """Keep a page."""
        self._drop(key)
        self._pages[key] = page
        for tag in page.shared.tags:
            self._by_tag.setdefault(tag, set()).add(key)
        while len(self._pages) > self.max_pages:
            self._drop(next(iter(self._pages)))

    def forget(self, tags: Iterable[str]) -> None:
        """Forget every page showing any of these tags."""
        tags = set(tags)
        for tag in tags:
            for key in self._by_tag.pop(tag, ()):
                self._drop(key)
        for listener in self.on_forget:
            listener(tags)

    def clear(self) -> None:
        """Forget every page."""
        self._pages.clear()
        self._by_tag.clear()

    def committed(self, objects: set[object]) -> None:
        """``db.create_sessionmaker``'s ``on_commit``: forget the pages these rows are on."""
        self.commits += 1
        tags: set[str] = set()
        for obj in objects:
            tags_of = _WATCHED.get(type(obj))
            if tags_of is None:
                continue
            try:
                tags.update(tags_of(obj))
            except Exception:  # a deleted row whose fields were never loaded, say
                log.warning("page cache: no tags for %r; forgetting every page", obj)
                self.clear()
                return
        if tags:
            self.forget(tags)

    def _drop(self, key: Key) -> None:
        page = self._pages.pop(key, None)
        if page is not None:
            for tag in page.shared.tags:
                keys = self._by_tag.get(tag)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del self._by_tag[tag]

    def unshared(self, key: Key) -> bool:
        """Whether the page's route was seen not to share it a short while ago."""
        seen = self._unshared.get(key)
        return seen is not None and time.monotonic() - seen < UNSHARED_SECONDS

    def mark_unshared(self, key: Key) -> None:
        """Remember that the page's route does not share it."""
        self._unshared[key] = time.monotonic()
        self._unshared.move_to_end(key)
        while len(self._unshared) > self.max_pages:
            self._unshared.popitem(last=False)

    def rendering(self, key: Key) -> asyncio.Event | None:
        """The render of this page under way, if any."""
        return self._renders.get(key)

    def start_render(self, key: Key) -> asyncio.Event:
        """Mark this page as being rendered; ``end_render`` wakes whoever waits for it."""
        event = self._renders[key] = asyncio.Event()
        return event

    def end_render(self, key: Key) -> None:
        """The render is over, kept or not."""
        event = self._renders.pop(key, None)
        if event is not None:
            event.set()


def key_of(variant: str, language: str, scope: Scope) -> Key:
    """The key of a page: anonymous or signed in, its language, path and query string."""
    return (variant, language, scope["path"], scope.get("query_string", b""))


@dataclass(frozen=True)
class Visit:
    """What of a request decides which kept page answers it."""

    language: str
    session_token: str | None


class PageRoute:
    """Answers plain GETs of pages from the cache; passes everything else on to ``app``.

    ``language(cookie, accept_language)`` picks the page's language as the pages do;
    ``viewer(session_token)`` is the signed-in viewer behind a session cookie or None;
    ``csrf(session_token)`` their form token.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        cache: PageCache,
        session_cookie: str,
        lang_cookie: str,
        language: Callable[[str | None, str | None], str],
        viewer: Callable[[str], Awaitable[Viewer | None]],
        csrf: Callable[[str], str],
    ) -> None:
        self.app = app
        self.cache = cache
        self.session_cookie = session_cookie
        self.lang_cookie = lang_cookie
        self.language = language
        self.viewer = viewer
        self.csrf = csrf

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        visit = self._visit(scope) if self.cache.enabled else None
        if visit is None:
            await self.app(scope, receive, send)
            return
        viewer = None
        if visit.session_token:
            try:
                viewer = await self.viewer(visit.session_token)
            except Exception:  # the database is busy or gone: FastAPI's way words the answer
                await self.app(scope, receive, send)
                return
        key = key_of(ANONYMOUS if viewer is None else SIGNED_IN, visit.language, scope)
        page, fresh = self.cache.get(key)
        if not fresh:
            if self.cache.unshared(key):
                await self.app(scope, receive, send)
                return
            render = self.cache.rendering(key)
            if render is None:  # this request renders it; the page route keeps it
                self.cache.start_render(key)
                try:
                    await self.app(scope, receive, send)
                finally:
                    self.cache.end_render(key)
                    if not scope.get(SHARED_ROUTE):
                        self.cache.mark_unshared(key)
                return
            if page is None:  # nothing to show meanwhile: wait for the render
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(render.wait(), WAIT_FOR_RENDER_SECONDS)
                page, _ = self.cache.get(key)
        if page is None or (viewer is not None and not page.shared.allows(viewer)):
            await self.app(scope, receive, send)
            return
        body = page.body
        if viewer is not None:
            assert visit.session_token is not None
            values = {
                "name": viewer.display_name,
                "email": viewer.email,
                "csrf": self.csrf(visit.session_token),
            }
            body = fill(body, values)
        headers = [*page.headers, (b"content-length", str(len(body)).encode()), _HIT]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )

    def _visit(self, scope: Scope) -> Visit | None:
        if (
            scope["type"] != "http"
            or scope["method"] not in ("GET", "HEAD")
            or scope["path"].startswith(_NOT_PAGES)
        ):
            return None
        cookie = accept = None
        for name, value in scope["headers"]:
            if name == b"cookie":
                cookie = value
            elif name == b"accept-language":
                accept = value.decode("latin-1")
            elif name in (b"authorization", b"hx-request"):
                return None  # a bearer's page, or htmx asking for a piece of one
        cookies = cookie_parser(cookie.decode("latin-1")) if cookie else {}
        return Visit(
            language=self.language(cookies.get(self.lang_cookie), accept),
            session_token=cookies.get(self.session_cookie) or None,
        )
