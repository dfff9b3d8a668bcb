"""Password hashing (argon2) and opaque tokens; only token hashes reach the database."""

import hashlib
import hmac
import secrets

from anyio import to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()

# Verified when the email is unknown, so that a miss costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash("originlive-timing-equaliser")


async def hash_password(password: str) -> str:
    """Argon2id hash, computed off the event loop (it takes tens of milliseconds)."""
    return await to_thread.run_sync(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether the password matches; constant work whether or not the user exists."""

    def verify() -> bool:
        try:
            return (
                _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
            )
        except (VerificationError, InvalidHashError):
            return False

    return await to_thread.run_sync(verify)


def new_token() -> str:
    """A fresh 256-bit URL-safe secret."""
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """The SHA-256 hex digest under which a token is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token(secret_key: str, session_token: str) -> str:
    """The CSRF token bound to a cookie session: an HMAC of the session, never stored."""
    return hmac.new(
        secret_key.encode(), b"csrf:" + session_token.encode(), hashlib.sha256
    ).hexdigest()


def csrf_valid(secret_key: str, session_token: str, candidate: str) -> bool:
    """Constant-time check of a submitted CSRF token."""
    return hmac.compare_digest(csrf_token(secret_key, session_token), candidate)
