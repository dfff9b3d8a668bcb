"""JSON routes of accounts: register, token, logout, me."""

from typing import Annotated

from fastapi import Depends, Request, status
from fastapi.security import OAuth2PasswordRequestForm

from originlive.accounts import schemas, service
from originlive.accounts.deps import CurrentUser, bearer_scheme
from originlive.accounts.models import TokenKind
from originlive.db import SessionDep
from originlive.errors import NotAuthenticated, RateLimited
from originlive.routing import Router
from originlive.settings import Settings

router = Router(prefix="/api/v1/auth", tags=["accounts"])


def _login_keys(request: Request, email: str) -> tuple[str, str]:
    client = request.client.host if request.client else "unknown"
    return f"login:{client}:{service.normalize_email(email)}", f"login-ip:{client}"


async def check_login_rate(request: Request, email: str) -> None:
    """Refuse with 429 once an address has failed too often, for this account or in all.

    Only failures count (``record_login_failure``): a village behind one carrier-grade NAT
    address may sign in hundreds of buyers when a live session starts.
    """
    settings: Settings = request.app.state.settings
    limiter = request.app.state.rate_limiter
    window = settings.login_window_seconds
    account_key, client_key = _login_keys(request, email)
    per_account, retry = await limiter.count(account_key, window_seconds=window)
    per_client, retry_client = await limiter.count(client_key, window_seconds=window)
    if per_account >= settings.login_attempts or per_client >= settings.login_attempts * 5:
        raise RateLimited(
            "Too many sign-in attempts; try again later.", retry_after=max(retry, retry_client)
        )


async def record_login_failure(request: Request, email: str) -> None:
    """Count a wrong password against the address and the account it was tried on."""
    window = request.app.state.settings.login_window_seconds
    for key in _login_keys(request, email):
        await request.app.state.rate_limiter.hit(key, window_seconds=window)


@router.post("/register", status_code=status.HTTP_201_CREATED, response_model=schemas.User)
async def register(body: schemas.UserCreate, session: SessionDep) -> schemas.User:
    """Create an account; every account can buy."""
    user = await service.create(
        session, email=body.email, password=body.password, display_name=body.display_name
    )
    return schemas.User.model_validate(user)


@router.post("/token", response_model=schemas.Token)
async def token(
    request: Request,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    session: SessionDep,
) -> schemas.Token:
    """Exchange email and password for a bearer token (OAuth2 password flow)."""
    await check_login_rate(request, form.username)
    user = await service.authenticate(session, email=form.username, password=form.password)
    if user is None:
        await record_login_failure(request, form.username)
        raise NotAuthenticated("Wrong email or password.")
    ttl = request.app.state.settings.api_token_ttl_seconds
    secret = await service.issue_token(session, user=user, kind=TokenKind.API, ttl_seconds=ttl)
    return schemas.Token(access_token=secret, expires_in=ttl)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(
    request: Request,
    _user: CurrentUser,
    session: SessionDep,
    bearer: Annotated[str | None, Depends(bearer_scheme)],
) -> None:
    """Revoke the bearer token used for this call."""
    if bearer:
        await service.revoke_token(session, token=bearer)
        request.app.state.token_cache.evict(bearer)


@router.get("/me", response_model=schemas.User)
async def me(user: CurrentUser) -> schemas.User:
    """The signed-in user."""
    return schemas.User.model_validate(user)
