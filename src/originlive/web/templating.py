"""The one Jinja2 environment every feature's pages render with, and its helpers.

Templates live beside their feature: ``web/templates`` holds the layout and shared pages
(``base.html``), and each feature's ``templates/`` folder is reached under its package name
(``accounts/login.html`` is ``accounts/templates/login.html``). Every user-visible string
goes through ``_()`` (``jinja2.ext.i18n``) or :func:`gettext`, so Babel can extract them once
there are translations; until then NullTranslations serve the English text.
"""

import gettext as gettext_module
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from originlive.accounts.deps import CSRF_FIELD
from originlive.web.csrf import FormToken

WEB_DIR = Path(__file__).parent
STATIC_DIR = WEB_DIR / "static"
PACKAGE_DIR = WEB_DIR.parent
LANG = "en"
CURRENCY_SYMBOLS = {"CNY": "¥"}

_translations = gettext_module.NullTranslations()


def gettext(message: str, **variables: Any) -> str:
    """The message in the page's language, with its ``%(name)s`` placeholders filled."""
    text = _translations.gettext(message)
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
    env.install_gettext_translations(_translations, newstyle=True)  # type: ignore[attr-defined]
    env.filters["money"] = money
    env.globals["query"] = query
    env.globals["lang"] = LANG
    env.globals["csrf_field_name"] = CSRF_FIELD
    return env


templates = Jinja2Templates(env=_environment())


def render(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """Render a page with the signed-in ``user`` (see ``web.deps.Viewer``) and ``csrf_token()``."""
    user = getattr(request.state, "user", None)
    token = FormToken(request)
    page = {"user": user, "csrf_token": token, **(context or {})}
    response = templates.TemplateResponse(
        request, name, page, status_code=status_code, headers=headers
    )
    token.set_cookie(response)
    if user is not None or token.used:
        # The page shows who is signed in or carries a form token: no shared cache may keep it.
        response.headers["Cache-Control"] = "no-store"
    return response
