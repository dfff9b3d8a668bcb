"""The one Jinja2 environment every feature's pages render with, and its helpers.

Templates live beside their feature: ``web/templates`` holds the layout and shared pages
(``base.html``), and each feature's ``templates/`` folder is reached under its package name
(``accounts/login.html`` is ``accounts/templates/login.html``). Every user-visible string
goes through ``_()`` (``jinja2.ext.i18n``) or :func:`gettext`, so Babel extracts them
(``make messages``); ``web/locale/zh_CN/LC_MESSAGES/messages.po`` has the Chinese. The page's
language is the ``lang`` cookie's (set by ``/lang/{code}``), else the browser's first choice
we have, else Chinese; it is kept in a context variable for the request
(:class:`LanguageMiddleware`).
"""

import dataclasses
import datetime as dt
import gettext as gettext_module
import io
from collections.abc import Callable
from contextvars import ContextVar
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from originlive.accounts import security
from originlive.accounts.deps import CSRF_FIELD
from originlive.web.assets import STATIC_DIR as STATIC_DIR  # app.py mounts it from here
from originlive.web.assets import static_url
from originlive.web.csrf import FormToken
from originlive.web.pagecache import (
    ANONYMOUS,
    PLACEHOLDERS,
    SHARED_ROUTE,
    SIGNED_IN,
    Page,
    PageCache,
    Shared,
    fill,
    key_of,
)

WEB_DIR = Path(__file__).parent
PACKAGE_DIR = WEB_DIR.parent
LOCALE_DIR = WEB_DIR / "locale"
CURRENCY_SYMBOLS = {"CNY": "¥"}
# Language code (as in the cookie and the catalogue's folder) -> its name and HTML lang.
LANGUAGES = {"zh_CN": ("中文", "zh-CN"), "en": ("English", "en")}
DEFAULT_LANGUAGE = "zh_CN"  # the platform's buyers and merchants are in China
LANG_COOKIE = "lang"
# The pages' clock: China Standard Time, which keeps no daylight saving, so a fixed offset is
# exact. Times are stored in UTC; pages show and read them in this zone.
PLATFORM_TZ = dt.timezone(dt.timedelta(hours=8), "CST")

_language: ContextVar[str] = ContextVar("language", default=DEFAULT_LANGUAGE)


@cache
def translations(language: str) -> gettext_module.NullTranslations:
    """The catalogue of a language, compiled from its .po file once (no .mo files to keep
    in step); English is the source text itself."""
    po = LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"
    if not po.exists():
        return gettext_module.NullTranslations()
    with po.open("rb") as source:
        catalog = read_po(source, locale=language)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return gettext_module.GNUTranslations(compiled)


def current_language() -> str:
    """The request's language code."""
    return _language.get()


def pick_language(cookie: str | None, accept_language: str | None) -> str:
    """The cookie's choice, else the browser's first language we have, else the default."""
    if cookie in LANGUAGES:
        return cookie
    for part in (accept_language or "").split(","):
        tag = part.split(";", 1)[0].strip().lower()
        if tag.startswith("zh"):
            return "zh_CN"
        if tag.startswith("en"):
            return "en"
    return DEFAULT_LANGUAGE


def use_language(cookie: str | None, accept_language: str | None) -> None:
    """Set the language of what is rendered from here on in this context."""
    _language.set(pick_language(cookie, accept_language))


class LanguageMiddleware:
    """Sets the request's language (for pages; the JSON API speaks English)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["path"].startswith(("/api/", "/media/")):
            cookie = accept = None
            for name, value in scope["headers"]:
                if name == b"cookie":
                    cookie = cookie_parser(value.decode("latin-1")).get(LANG_COOKIE)
                elif name == b"accept-language":
                    accept = value.decode("latin-1")
            token = _language.set(pick_language(cookie, accept))
            try:
                await self.app(scope, receive, send)
            finally:
                _language.reset(token)
            return
        await self.app(scope, receive, send)


def _gettext(message: str) -> str:
    return translations(_language.get()).gettext(message)


def _ngettext(singular: str, plural: str, n: int) -> str:
    return translations(_language.get()).ngettext(singular, plural, n)


def gettext(message: str, **variables: Any) -> str:
    """The message in the page's language, with its ``%(name)s`` placeholders filled."""
    text = _gettext(message)
    return text % variables if variables else text


def N_(message: str) -> str:  # noqa: N802 - gettext's name for "mark for extraction only"
    """Mark a message for extraction where it is defined; it is translated where it is shown."""
    return message


def money(cents: int, currency: str = "CNY") -> str:
    """Integer minor units as a price: 1250 → ¥12.50 (invariant 4: money is never a float)."""
    if not isinstance(cents, int) or isinstance(cents, bool):
        raise TypeError(f"money takes integer cents, not {cents!r}")
    yuan, fen = divmod(abs(cents), 100)
    symbol = CURRENCY_SYMBOLS.get(currency, f"{currency} ")
    return f"{'-' if cents < 0 else ''}{symbol}{yuan:,}.{fen:02d}"


def local(moment: dt.datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A stored (UTC) time as the pages show it, on the platform's clock."""
    return "" if moment is None else moment.astimezone(PLATFORM_TZ).strftime(fmt)


def query(params: dict[str, Any], **more: Any) -> str:
    """A query string from the non-empty parameters (page 1 is the default, so left out)."""
    pairs = {
        k: v for k, v in (params | more).items() if v not in (None, "") and (k, v) != ("page", 1)
    }
    return "?" + urlencode(pairs) if pairs else "?"


def _loader() -> jinja2.BaseLoader:
    # Found by looking, not by importing: web sits below the features and must not import them.
    features = {
        path.name: jinja2.FileSystemLoader(path / "templates")
        for path in sorted(PACKAGE_DIR.iterdir())
        if path.name != "web" and (path / "templates").is_dir()
    }
    return jinja2.ChoiceLoader(
        [jinja2.FileSystemLoader(WEB_DIR / "templates"), jinja2.PrefixLoader(features)]
    )


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=_loader(),
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,  # a misspelt variable fails the test, not the reader
    )
    # newstyle: _("Hi %(name)s", name=x) escapes x and formats like gettext() above.
    env.install_gettext_callables(_gettext, _ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.filters["money"] = money
    env.filters["local"] = local
    env.globals["query"] = query
    env.globals["static"] = static_url  # /static/site.css?v=<hash>: cached for a year
    env.globals["languages"] = LANGUAGES
    env.globals["csrf_field_name"] = CSRF_FIELD
    return env


templates = Jinja2Templates(env=_environment())


def compile_templates() -> int:
    """Compile every page's template and language catalogue now (the app's start-up calls
    it): compiled on first use, the room's first render took 180 ms instead of 16, which the
    first viewers of a surge on a fresh process waited for. Returns how many templates."""
    for language in LANGUAGES:
        translations(language)
    names = templates.env.list_templates(extensions=["html"])
    for name in names:
        templates.env.get_template(name)
    return len(names)


def render(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    *,
    shared: Shared | None = None,
    personal: bool = False,
) -> HTMLResponse:
    """Render a page with the signed-in ``user`` (see ``web.deps.Viewer``) and ``csrf_token()``.

    ``shared``: the page is the same for every anonymous viewer, and for every signed-in one
    it allows but for who they are; it is kept for them (``web.pagecache``). Its context must
    then depend on the viewer only as ``shared.only_if`` says. ``personal``: this viewer's page
    is their own this time (``only_if`` would refuse them), so it is not kept.
    """
    user = getattr(request.state, "user", None)
    if shared is not None:
        request.scope[SHARED_ROUTE] = True
        cache: PageCache | None = getattr(request.app.state, "page_cache", None)
        if (
            cache is not None
            and cache.enabled
            and status_code == 200
            and request.method in ("GET", "HEAD")
            and not personal
            and (user is None or shared.allows(user))
        ):
            return _render_shared(request, cache, name, context or {}, shared, headers)
    token = FormToken(request)
    response = _render(request, name, context, user, token, status_code, headers)
    token.set_cookie(response)
    if user is not None or token.used:
        # The page shows who is signed in or carries a form token: no shared cache may keep it.
        response.headers["Cache-Control"] = "no-store"
    return response


def _render(
    request: Request,
    name: str,
    context: dict[str, Any] | None,
    user: Any,
    token: Callable[[], str],
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    language = _language.get()
    page = {
        "user": user,
        "csrf_token": token,
        "language": language,
        "lang": LANGUAGES[language][1],
        **(context or {}),
    }
    response = templates.TemplateResponse(
        request, name, page, status_code=status_code, headers=headers
    )
    response.headers["Vary"] = "Accept-Language, Cookie"  # the page is in the reader's language
    return response


def _render_shared(
    request: Request,
    cache: PageCache,
    name: str,
    context: dict[str, Any],
    shared: Shared,
    headers: dict[str, str] | None,
) -> HTMLResponse:
    """The page as every viewer like this one sees it, kept; for a signed-in viewer, with
    stand-ins for who they are, filled in for this one."""
    user = getattr(request.state, "user", None)
    if user is None:
        stand_in = None
        variant = ANONYMOUS
    else:
        stand_in = dataclasses.replace(
            user,
            id=0,
            email=PLACEHOLDERS["email"],
            display_name=PLACEHOLDERS["name"],
            is_operator=False,  # as ``Shared.allows`` admits them
            follows=frozenset(),
        )
        variant = SIGNED_IN
    token = _SharedToken("" if user is None else PLACEHOLDERS["csrf"])
    response = _render(request, name, context, stand_in, token, headers=headers)
    if user is None and token.used:  # not to be shared after all
        return render(request, name, context, headers=headers)
    if user is not None:
        response.headers["Cache-Control"] = "no-store"
    kept = [(k, v) for k, v in response.raw_headers if k != b"content-length"]
    body = bytes(response.body)
    cache.put(key_of(variant, _language.get(), request.scope), Page(body, kept, shared))
    if user is None:
        return response
    session_token = getattr(request.state, "session_token", "")
    secret = request.app.state.settings.resolved_secret_key
    values = {
        "name": user.display_name,
        "email": user.email,
        "csrf": security.csrf_token(secret, session_token),
    }
    filled = fill(body, values)
    response.body = filled
    response.raw_headers = [*kept, (b"content-length", str(len(filled)).encode())]
    return response


class _SharedToken:
    """A shared render's form token: for a signed-in viewer the stand-in, filled per viewer.
    An anonymous viewer's shared page may carry none (the form would need a cookie of its
    own), so there its use is only noted."""

    def __init__(self, value: str) -> None:
        self.value = value
        self.used = False

    def __call__(self) -> str:
        self.used = True
        return self.value
