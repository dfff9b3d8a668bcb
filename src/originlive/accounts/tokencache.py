"""Bearer tokens remembered for a short while, so a hot path need not ask the database.

A token found valid is trusted for ``ttl_seconds`` (and never past its own expiry). Logging out
evicts it from this process at once; other processes notice within the TTL. That is the price
of answering thousands of orders a second: a revoked token or a deactivated user may still
place orders for up to ``ttl_seconds`` on another process.
"""

import time
from collections import OrderedDict
from datetime import datetime

from sqlalchemy import Connection

from originlive import rawsql
from originlive.accounts import security
from originlive.accounts.models import TokenKind
from originlive.batching import Runner
from originlive.db import utcnow


class TokenCache:
    """Token digest -> user id, bounded in size and age."""

    def __init__(
        self,
        reader: Runner,
        *,
        ttl_seconds: float = 30.0,
        max_entries: int = 100_000,
    ) -> None:
        self._reader = reader
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
        # A miss is every buyer's first press: one raw statement on the reader.
        row = await self._reader.run(_lookup, digest=digest, now=utcnow())
        if row is None:
            self._entries.pop(digest, None)
            return None
        user_id, expires_in = row
        self._entries[digest] = (user_id, now + min(self._ttl, expires_in))
        self._entries.move_to_end(digest)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return user_id

    def evict(self, token: str) -> None:
        """Forget the token (it was revoked here)."""
        self._entries.pop(security.token_digest(token), None)


def _lookup(conn: Connection, *, digest: str, now: datetime) -> tuple[int, float] | None:
    """The user id and seconds left of a valid API token of an active user, or None."""
    row = rawsql.execute(
        conn,
        "SELECT access_tokens.user_id, access_tokens.expires_at FROM access_tokens"
        " JOIN users ON users.id = access_tokens.user_id"
        " WHERE access_tokens.token_hash = :digest AND access_tokens.kind = :kind"
        " AND access_tokens.expires_at > :now AND users.is_active",
        digest=digest,
        kind=TokenKind.API.value,
        now=rawsql.db_time(conn, now),
    ).fetchone()
    if row is None:
        return None
    return int(row[0]), (rawsql.from_db_time(row[1]) - now).total_seconds()
