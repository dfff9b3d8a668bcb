"""Domain errors carry their HTTP status; one set of handlers turns them into problem JSON."""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"


class OriginliveError(Exception):
    """Base of every error a user can cause; ``status`` is the HTTP answer."""

    status = 400
    title = "Bad request"
    slug = "bad-request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.detail = detail or self.title
        self.errors = errors or []
        self.headers = headers
        super().__init__(self.detail)


class NotFound(OriginliveError):
    status = 404
    title = "Not found"
    slug = "not-found"


class NotAuthenticated(OriginliveError):
    status = 401
    title = "Not authenticated"
    slug = "not-authenticated"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(OriginliveError):
    status = 403
    title = "Forbidden"
    slug = "forbidden"


class Conflict(OriginliveError):
    status = 409
    title = "Conflict"
    slug = "conflict"


class InvalidInput(OriginliveError):
    """Input that is well-formed but breaks a rule; ``field`` names the culprit."""

    status = 422
    title = "Invalid input"
    slug = "invalid-input"

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        errors = [{"field": field, "message": detail}] if field else []
        super().__init__(detail, errors=errors)


class PayloadTooLarge(OriginliveError):
    status = 413
    title = "Payload too large"
    slug = "payload-too-large"


class Busy(OriginliveError):
    """More requests at once than the database's connections serve: try again in a moment."""

    status = 503
    title = "Busy"
    slug = "busy"

    def __init__(self, detail: str = "Too many requests at once; try again in a moment.") -> None:
        super().__init__(detail, headers={"Retry-After": "1"})


class RateLimited(OriginliveError):
    status = 429
    title = "Too many requests"
    slug = "rate-limited"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


def problem_body(
    status: int, title: str, detail: str, *, slug: str, errors: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The JSON of an RFC 9457 problem."""
    return {
        "type": f"/problems/{slug}",
        "title": title,
        "status": status,
        "detail": detail,
        "errors": errors or [],
    }


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    slug: str,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """An RFC 9457 problem response."""
    body = problem_body(status, title, detail, slug=slug, errors=errors)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    # FastAPI prefixes the location with where it came from (body, query, path); keep the rest.
    parts = [str(p) for p in loc]
    if (
        parts
        and parts[0] in {"body", "query", "path", "header", "cookie", "form"}
        and len(parts) > 1
    ):
        parts = parts[1:]
    return ".".join(parts)


def _slug_title(status: int) -> tuple[str, str]:
    known = {
        400: ("bad-request", "Bad request"),
        401: ("not-authenticated", "Not authenticated"),
        403: ("forbidden", "Forbidden"),
        404: ("not-found", "Not found"),
        405: ("method-not-allowed", "Method not allowed"),
        409: ("conflict", "Conflict"),
        413: ("payload-too-large", "Payload too large"),
        415: ("unsupported-media-type", "Unsupported media type"),
        422: ("invalid-input", "Invalid input"),
        429: ("rate-limited", "Too many requests"),
    }
    return known.get(status, ("http-error", "HTTP error"))


async def _domain_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OriginliveError)
    return problem(
        exc.status, exc.title, exc.detail, slug=exc.slug, errors=exc.errors, headers=exc.headers
    )


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    raw = exc.errors()
    if any(e.get("type") == "json_invalid" for e in raw):
        return problem(
            400, "Malformed JSON", "The request body is not valid JSON.", slug="malformed-json"
        )
    errors = [{"field": _field(e.get("loc", ())), "message": e.get("msg", "invalid")} for e in raw]
    return problem(
        422,
        "Invalid input",
        "Some fields are missing or invalid.",
        slug="invalid-input",
        errors=errors,
    )


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    slug, title = _slug_title(exc.status_code)
    detail = exc.detail if isinstance(exc.detail, str) else title
    return problem(exc.status_code, title, detail, slug=slug, headers=getattr(exc, "headers", None))


def domain_error(exc: Exception) -> OriginliveError | None:
    """What an error means to the caller: our own errors as they are, and a database pool
    with no connection free in time (``db.POOL_TIMEOUT_SECONDS``) as ``Busy``; else None."""
    if isinstance(exc, OriginliveError):
        return exc
    if isinstance(exc, PoolTimeout):
        return Busy()
    return None


async def _busy(request: Request, exc: Exception) -> JSONResponse:
    error = domain_error(exc)
    assert error is not None
    return await _domain_error(request, error)


async def _unexpected_error(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return internal_error()


def internal_error() -> JSONResponse:
    """The answer to an error of ours: the details go to the log, not to the caller."""
    return problem(
        500, "Internal error", "Something went wrong on our side.", slug="internal-error"
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the problem-JSON handlers on the app."""
    app.add_exception_handler(OriginliveError, _domain_error)
    # Not under ``Exception``: Starlette logs and raises that again after answering, and a
    # surge would fill the log with tracebacks of a busy pool.
    app.add_exception_handler(PoolTimeout, _busy)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
