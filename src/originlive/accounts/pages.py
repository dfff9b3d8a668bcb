"""HTML routes of accounts: register, sign in and sign out with a cookie session."""

import re
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

from fastapi import Form, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError

from originlive.accounts import schemas, service
from originlive.accounts.api import check_login_rate, record_login_failure
from originlive.accounts.deps import SESSION_COOKIE
from originlive.accounts.models import Role, TokenKind
from originlive.db import SessionDep
from originlive.errors import Conflict, RateLimited
from originlive.routing import Router
from originlive.settings import Settings
from originlive.web.csrf import forget_pre_session, pre_session_valid
from originlive.web.deps import Viewer
from originlive.web.templating import N_, render
from originlive.web.templating import gettext as _

router = Router(tags=["pages"], include_in_schema=False)

# Printable ASCII only: browsers drop tabs and newlines from URLs, so "/\t/evil.example"
# would become "//evil.example"; "//" and "/\" are other sites to a browser.
_SAME_SITE_PATH = re.compile(r"^/(?![/\\])[\x21-\x7e]*$")

NextParam = Annotated[str, Query(alias="next", max_length=2000)]
NextField = Annotated[str, Form(alias="next", max_length=2000)]
TextField = Annotated[str, Form(max_length=1000)]

_FIELD_MESSAGES = {
    "email": N_("Enter a valid email address."),
    "password": N_("Use 8 to 128 characters."),
    "display_name": N_("Enter a name of 1 to 80 characters."),
}


# Where a delivery node's staff land after signing in with nowhere else to go
# (``logistics.station``; accounts knows the role, not the feature).
STATION_PAGE = "/station"


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this site, else the home page (no open redirect)."""
    if target and _SAME_SITE_PATH.match(target) and "\\" not in target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return "/"


def _form(
    request: Request,
    template: str,
    *,
    next_path: str,
    status_code: int = 200,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    page = {"next": safe_next(next_path), "values": values or {}, "errors": errors or {}}
    return render(request, template, page | context, status_code=status_code, headers=headers)


def _expired(request: Request, template: str, next_path: str, values: dict[str, str]) -> Response:
    # A missing or wrong pre-session token: the cookie was lost or the form came from elsewhere.
    error = _("This form has expired. Please send it again.")
    return _form(
        request, template, next_path=next_path, status_code=403, values=values, form_error=error
    )


@router.get("/register", response_class=HTMLResponse)
async def register_form(request: Request, viewer: Viewer, next_path: NextParam = "/") -> Response:
    """The registration form; signed-in visitors go straight on."""
    if viewer is not None:
        return RedirectResponse(safe_next(next_path), status_code=303)
    return _form(request, "accounts/register.html", next_path=next_path)


@router.post("/register", response_class=HTMLResponse)
async def register(
    request: Request,
    session: SessionDep,
    email: TextField = "",
    password: TextField = "",
    display_name: TextField = "",
    next_path: NextField = "/",
) -> Response:
    """Create an account, then ask the new user to sign in."""
    template = "accounts/register.html"
    values = {"email": email, "display_name": display_name}
    if not await pre_session_valid(request):
        return _expired(request, template, next_path, values)
    try:
        data = schemas.UserCreate(email=email, password=password, display_name=display_name)
    except ValidationError as exc:
        fields = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
        errors = {f: _(m) for f, m in _FIELD_MESSAGES.items() if f in fields}
        return _form(
            request, template, next_path=next_path, status_code=422, values=values, errors=errors
        )
    try:
        await service.create(
            session, email=data.email, password=data.password, display_name=data.display_name
        )
    except Conflict:
        errors = {"email": _("An account with this email already exists.")}
        return _form(
            request, template, next_path=next_path, status_code=409, values=values, errors=errors
        )
    query = urlencode({"next": safe_next(next_path), "registered": "1"})
    return RedirectResponse(f"/login?{query}", status_code=303)


@router.get("/login", response_class=HTMLResponse)
async def login_form(
    request: Request, viewer: Viewer, next_path: NextParam = "/", registered: bool = False
) -> Response:
    """The sign-in form; signed-in visitors go straight on."""
    if viewer is not None:
        return RedirectResponse(safe_next(next_path), status_code=303)
    return _form(request, "accounts/login.html", next_path=next_path, registered=registered)


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    session: SessionDep,
    email: TextField = "",
    password: TextField = "",
    next_path: NextField = "/",
) -> Response:
    """Check the password and start a cookie session; wrong answers re-render the form."""
    template = "accounts/login.html"
    values = {"email": email}
    if not await pre_session_valid(request):
        return _expired(request, template, next_path, values)
    errors = {}
    if not email.strip():
        errors["email"] = _("Enter your email address.")
    if not password:
        errors["password"] = _("Enter your password.")
    if errors:
        return _form(
            request, template, next_path=next_path, status_code=422, values=values, errors=errors
        )
    try:
        await check_login_rate(request, email)
    except RateLimited as exc:
        error = _("Too many sign-in attempts. Wait a few minutes and try again.")
        return _form(
            request,
            template,
            next_path=next_path,
            status_code=exc.status,
            values=values,
            headers=exc.headers,
            form_error=error,
        )
    user = await service.authenticate(session, email=email, password=password)
    if user is None:
        await record_login_failure(request, email)
        error = _("Wrong email or password.")
        return _form(
            request, template, next_path=next_path, status_code=401, values=values, form_error=error
        )
    settings: Settings = request.app.state.settings
    ttl = settings.session_ttl_seconds
    token = await service.issue_token(session, user=user, kind=TokenKind.SESSION, ttl_seconds=ttl)
    target = safe_next(next_path)
    if target == "/" and user.has_role(Role.STATION):
        target = STATION_PAGE  # a station's phone opens on its scanning page
    response = RedirectResponse(target, status_code=303)
    # HttpOnly: page scripts never need it. Lax: it is not sent on cross-site POSTs.
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=ttl,
        path="/",
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
    )
    forget_pre_session(request, response)
    return response


@router.post("/logout")
async def logout(request: Request, session: SessionDep, viewer: Viewer) -> Response:
    """End the cookie session; ``Viewer`` has already refused a request without its CSRF token."""
    token: str | None = getattr(request.state, "session_token", None)
    if viewer is not None and token:
        await service.revoke_token(session, token=token)
        request.app.state.session_viewers.forget(token)  # the pages' cache of who is who
    settings: Settings = request.app.state.settings
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=settings.cookie_secure
    )
    return response
