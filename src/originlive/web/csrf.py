"""CSRF tokens for forms: bound to the cookie session, or to a pre-session cookie before sign-in.

Signed-in forms carry ``security.csrf_token(secret, session_token)``, which
``accounts.deps.get_optional_user`` checks on every cookie-authenticated write.

The sign-in and registration forms are posted before there is a session, and still need a
token: a cross-site page could otherwise sign the victim into the attacker's account
("login CSRF"), and whatever the victim then buys or types lands there. SameSite=Lax on the
session cookie does not help, since that POST needs no cookie at all. An Origin check would,
but only where the browser sends the header; privacy proxies and some older browsers drop it,
and falling back to Referer is weaker still. So these forms use a signed double submit: the
first render sets a random nonce in an HttpOnly cookie and puts ``HMAC(secret, nonce)`` in the
form. Another site can neither read our cookie nor compute the HMAC, so it cannot forge the
pair. Planting a nonce of its own would need a sibling subdomain; the ``__Host-`` cookie name
used with ``cookie_secure`` forbids that.
"""

import re
import secrets

from fastapi import Request, Response

from originlive.accounts import security
from originlive.accounts.deps import CSRF_FIELD
from originlive.settings import Settings

_NONCE = re.compile(r"^[A-Za-z0-9_-]{32,64}$")
# Keeps a pre-session token from ever equalling a session's (and the reverse).
_PRE_SESSION = "pre-session:"


def pre_session_cookie(settings: Settings) -> str:
    """The nonce cookie's name: ``__Host-`` (no Domain, Secure, Path=/) when served over HTTPS."""
    return "__Host-originlive_csrf" if settings.cookie_secure else "originlive_csrf"


class FormToken:
    """The CSRF token a page's forms carry; made on first use, so formless pages set no cookie."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.settings: Settings = request.app.state.settings
        self.new_nonce: str | None = None
        self.used = False

    def __call__(self) -> str:
        self.used = True
        secret = self.settings.resolved_secret_key
        session_token: str | None = getattr(self.request.state, "session_token", None)
        if session_token:  # set by get_optional_user once the cookie session proved valid
            return security.csrf_token(secret, session_token)
        nonce = _nonce(self.request, self.settings) or self.new_nonce
        if nonce is None:
            nonce = self.new_nonce = secrets.token_urlsafe(32)
        return security.csrf_token(secret, _PRE_SESSION + nonce)

    def set_cookie(self, response: Response) -> None:
        """Send the nonce cookie if this render made one."""
        if self.new_nonce is None:
            return
        response.set_cookie(
            pre_session_cookie(self.settings),
            self.new_nonce,
            httponly=True,
            samesite="lax",
            secure=self.settings.cookie_secure,
            path="/",
        )


def _nonce(request: Request, settings: Settings) -> str | None:
    value = request.cookies.get(pre_session_cookie(settings))
    return value if value and _NONCE.match(value) else None


async def pre_session_valid(request: Request) -> bool:
    """Whether a sign-in or registration form came back with the token its page was given."""
    settings: Settings = request.app.state.settings
    nonce = _nonce(request, settings)
    submitted = (await request.form()).get(CSRF_FIELD)
    if nonce is None or not isinstance(submitted, str):
        return False
    return security.csrf_valid(settings.resolved_secret_key, _PRE_SESSION + nonce, submitted)


def forget_pre_session(request: Request, response: Response) -> None:
    """Drop the nonce cookie once a real session exists."""
    settings: Settings = request.app.state.settings
    response.delete_cookie(
        pre_session_cookie(settings),
        path="/",
        secure=settings.cookie_secure,
        httponly=True,
        samesite="lax",
    )
