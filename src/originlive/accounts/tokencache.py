"""Bearer tokens remembered for a short while, so a hot path need not ask the database.

A token found valid is trusted for ``ttl_seconds`` (and never past its own expiry). Logging out
evicts it from this process at once; other processes notice within the TTL. That is the price
of answering thousands of orders a second: a revoked token or a deactivated user may still
place orders for up to ``ttl_seconds`` on another process.
"""

import time
from collections import OrderedDict

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from originlive.accounts import security
from originlive.accounts.models import AccessToken, TokenKind, User
from originlive.db import utcnow


class TokenCache:
    """Token digest -> user id, bounded in size and age."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        ttl_seconds: float = 30.0,
        max_entries: int = 100_000,
    ) -> None:
        self._engine = engine
        self._ttl = ttl_seconds
        self._max = max_entries
        self._entries: OrderedDict[str, tuple[int, float]] = OrderedDict()

    async def user_id(self, token: str) -> int | None:
        """The id of the active user behind a valid API token, or None."""
        digest = security.token_digest(token)
        entry = self._entries.get(digest)
        now = time.monotonic()
        if entry is not None and entry[1] > now:
            return entry[0]
        # One plain query on a bare connection: a miss is every buyer's first press.
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(AccessToken.user_id, AccessToken.expires_at)
                    .join(User, User.id == AccessToken.user_id)
                    .where(
                        AccessToken.token_hash == digest,
                        AccessToken.kind == TokenKind.API,
                        AccessToken.expires_at > utcnow(),
                        User.is_active.is_(True),
                    )
                )
            ).first()
        if row is None:
            self._entries.pop(digest, None)
            return None
        expires_in = (row.expires_at - utcnow()).total_seconds()
        self._entries[digest] = (row.user_id, now + min(self._ttl, expires_in))
        self._entries.move_to_end(digest)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return int(row.user_id)

    def evict(self, token: str) -> None:
        """Forget the token (it was revoked here)."""
        self._entries.pop(security.token_digest(token), None)
