"""Who is asking: typed dependencies that authenticate and authorize in one place each."""

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from originlive.accounts import service
from originlive.accounts.models import Role, TokenKind, User
from originlive.accounts.security import csrf_valid
from originlive.db import SessionDep
from originlive.errors import Forbidden, NotAuthenticated

SESSION_COOKIE = "originlive_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

bearer_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


async def _submitted_csrf(request: Request) -> str:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        value = (await request.form()).get(CSRF_FIELD)
        return value if isinstance(value, str) else ""
    return ""


async def get_optional_user(
    request: Request, session: SessionDep, bearer: Annotated[str | None, Depends(bearer_scheme)]
) -> User | None:
    """The user behind a bearer token or a cookie session, or None for an anonymous visitor."""
    if bearer:
        user = await service.user_for_token(session, token=bearer, kind=TokenKind.API)
        if user is None:
            raise NotAuthenticated("The bearer token is invalid or has expired.")
        return user
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    user = await service.user_for_token(session, token=cookie, kind=TokenKind.SESSION)
    if user is None:
        return None
    # A cookie rides along with cross-site requests; a write must prove it came from our page.
    if request.method not in SAFE_METHODS:
        secret = request.app.state.settings.resolved_secret_key
        if not csrf_valid(secret, cookie, await _submitted_csrf(request)):
            raise Forbidden("Missing or wrong CSRF token.")
    request.state.session_token = cookie
    return user


async def get_current_user(user: Annotated[User | None, Depends(get_optional_user)]) -> User:
    """The signed-in user; 401 for anonymous visitors."""
    if user is None:
        raise NotAuthenticated("Sign in first.")
    return user


async def get_operator(user: Annotated[User, Depends(get_current_user)]) -> User:
    """The signed-in operator; 403 for everyone else."""
    if not user.has_role(Role.OPERATOR):
        raise Forbidden("Only operators may do this.")
    return user


OptionalUser = Annotated[User | None, Depends(get_optional_user)]
CurrentUser = Annotated[User, Depends(get_current_user)]
Operator = Annotated[User, Depends(get_operator)]
