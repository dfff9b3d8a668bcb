"""Error pages for browsers, in front of the problem-JSON handlers of ``originlive.errors``.

A request gets HTML when its path is not under ``/api/`` and its Accept header prefers
``text/html`` to JSON (a browser's navigation does; curl's ``*/*`` and API clients do not).
Everything else keeps the JSON problem body, so API callers never see a page.
"""

import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from originlive.errors import OriginliveError, domain_error
from originlive.web.deps import sign_in_first
from originlive.web.templating import LANG_COOKIE, N_, gettext, render, use_language

log = logging.getLogger(__name__)

Handler = Callable[[Request, Any], Response | Awaitable[Response]]


_PAGES = {
    401: (N_("Sign in first"), N_("Sign in to see this page.")),
    403: (
        N_("Not allowed"),
        N_(
            "You may not do this. If you were sending a form, it may have expired: "
            "go back, reload the page and try again."
        ),
    ),
    404: (N_("Page not found"), N_("We could not find that page.")),
    405: (N_("Not allowed"), N_("This page cannot be used that way.")),
    413: (N_("Too large"), N_("What you sent is too large.")),
    422: (N_("Invalid request"), N_("Some of what was sent is not valid.")),
    429: (N_("Too many attempts"), N_("Wait a little and try again.")),
    500: (N_("Something went wrong"), N_("Something went wrong on our side. Try again later.")),
    503: (N_("Busy right now"), N_("Many people are here at once. Try again in a moment.")),
}
_OTHER = (N_("Request failed"), N_("The request could not be completed."))


def _quality(accept: str, media_type: str) -> float:
    """The q-value Accept gives the type, taken from its most specific matching range."""
    kind = media_type.split("/")[0]
    best = (-1, 0.0)  # (specificity, q)
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        specificity = {media_type: 2, f"{kind}/*": 1, "*/*": 0}.get(media.lower())
        if specificity is None or specificity <= best[0]:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        best = (specificity, q)
    return best[1]


def wants_html(request: Request) -> bool:
    """Whether the error should be a page rather than a problem-JSON body."""
    path = request.url.path
    if path == "/api" or path.startswith("/api/"):
        return False
    accept = request.headers.get("accept", "")
    return _quality(accept, "text/html") > _quality(accept, "application/json")


def _page(request: Request, status: int, headers: dict[str, str] | None = None) -> Response:
    # A 500 is rendered outside the middleware that set the request's language: set it again.
    use_language(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))
    title, message = _PAGES.get(status, _OTHER)
    context = {"status": status, "title": gettext(title), "message": gettext(message)}
    return render(request, "error.html", context, status_code=status, headers=headers)


def _login_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return sign_in_first(target)


def _status_of(exc: Exception) -> tuple[int, Mapping[str, str] | None]:
    if (error := domain_error(exc)) is not None:
        return error.status, error.headers
    if isinstance(exc, StarletteHTTPException):
        return exc.status_code, exc.headers
    if isinstance(exc, RequestValidationError):
        # /products/abc names no product: for a reader that is a missing page, not bad input.
        in_path = any(e.get("loc", ("",))[0] == "path" for e in exc.errors())
        return (404 if in_path else 422), None
    return 500, None


def _html_or(json_handler: Handler) -> Handler:
    async def handle(request: Request, exc: Exception) -> Response:
        if not wants_html(request):
            answer = json_handler(request, exc)
            return await answer if inspect.isawaitable(answer) else answer
        status, headers = _status_of(exc)
        if status == 500:
            log.exception("unhandled error", exc_info=exc)
        if status == 401 and request.method in {"GET", "HEAD"}:
            return _login_redirect(request)
        # Bearer challenges mean nothing to a browser; Retry-After and the like still do.
        kept = {k: v for k, v in (headers or {}).items() if k.lower() != "www-authenticate"}
        return _page(request, status, kept)

    return handle


def install_html_error_pages(app: FastAPI) -> None:
    """Wrap the problem-JSON handlers (install those first) so browsers get error pages."""
    handled = (OriginliveError, PoolTimeout, RequestValidationError, StarletteHTTPException)
    for exc_class in (*handled, Exception):
        app.add_exception_handler(exc_class, _html_or(app.exception_handlers[exc_class]))
