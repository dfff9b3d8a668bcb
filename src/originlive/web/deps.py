"""Dependencies shared by every feature's pages."""

import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse
from sqlalchemy import Connection

from originlive import rawsql
from originlive.accounts import security
from originlive.accounts.deps import OptionalUser
from originlive.accounts.models import Role, TokenKind, User, UserRole
from originlive.batching import Runner
from originlive.catalog.models import ShopFollow
from originlive.db import utcnow
from originlive.web.pagecache import watch


@dataclass(frozen=True)
class SignedIn:
    """The signed-in user as pages show them."""

    id: int
    email: str
    display_name: str
    is_operator: bool = False
    # The shops they follow: only the page cache's viewers carry them (``SessionViewers``).
    follows: frozenset[int] = frozenset()

    def has_role(self, role: Role) -> bool:
        """Whether they hold the role (of those pages care about: operator)."""
        return role is Role.OPERATOR and self.is_operator


def signed_in(user: User, follows: frozenset[int] = frozenset()) -> SignedIn:
    """What pages show of a user."""
    return SignedIn(
        id=user.id,
        email=user.email,
        display_name=user.display_name,
        is_operator=user.has_role(Role.OPERATOR),
        follows=follows,
    )


class SessionViewers:
    """Session cookie -> the signed-in viewer, remembered for a short while.

    The page cache's front (``web.pagecache.PageRoute``) asks on every signed-in page request;
    the database is asked once per cookie per ``ttl_seconds``. A change of the user (their
    name, roles or follows, committed through the ORM in this process) or signing out forgets
    them here at once; other processes notice within the TTL, as with ``TokenCache``.
    """

    def __init__(
        self,
        reader: Runner,
        *,
        ttl_seconds: float = 10.0,
        max_entries: int = 100_000,
    ) -> None:
        self._reader = reader
        self._ttl = ttl_seconds
        self._max = max_entries
        self._entries: OrderedDict[str, tuple[SignedIn | None, float]] = OrderedDict()

    async def __call__(self, token: str) -> SignedIn | None:
        digest = security.token_digest(token)
        entry = self._entries.get(digest)
        now = time.monotonic()
        if entry is not None and entry[1] > now:
            return entry[0]
        # Two plain statements on the app's reader, one trip to its thread: a surge's new
        # viewers, each with a cookie of their own, queued behind each other through the ORM.
        viewer = await self._reader.run(_viewer_of, digest=digest, now=utcnow())
        self._entries[digest] = (viewer, now + self._ttl)
        self._entries.move_to_end(digest)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return viewer

    def forget(self, token: str) -> None:
        """Forget a cookie (its session ended here)."""
        self._entries.pop(security.token_digest(token), None)

    def forget_users(self, tags: set[str]) -> None:
        """``PageCache.on_forget``: forget the viewers whose ``user:<id>`` changed."""
        ids = {int(tag[5:]) for tag in tags if tag.startswith("user:")}
        if ids:
            for digest in [d for d, (v, _) in self._entries.items() if v and v.id in ids]:
                del self._entries[digest]


def _viewer_of(conn: Connection, *, digest: str, now: datetime) -> SignedIn | None:
    """The active user behind an unexpired session token (as ``user_for_token`` finds them),
    with whether they are an operator and the shops they follow."""
    row = rawsql.execute(
        conn,
        "SELECT users.id, users.email, users.display_name,"
        " EXISTS (SELECT 1 FROM user_roles WHERE user_roles.user_id = users.id"
        " AND user_roles.role = :operator)"
        " FROM access_tokens JOIN users ON users.id = access_tokens.user_id"
        " WHERE access_tokens.token_hash = :digest AND access_tokens.kind = :kind"
        " AND access_tokens.expires_at > :now AND users.is_active",
        digest=digest,
        kind=TokenKind.SESSION.value,
        operator=Role.OPERATOR.value,
        now=rawsql.db_time(conn, now),
    ).fetchone()
    if row is None:
        return None
    follows = rawsql.execute(
        conn, "SELECT shop_id FROM shop_follows WHERE user_id = :user_id", user_id=row[0]
    ).fetchall()
    return SignedIn(
        id=int(row[0]),
        email=row[1],
        display_name=row[2],
        is_operator=bool(row[3]),
        follows=frozenset(int(r[0]) for r in follows),
    )


watch(User, lambda user: (f"user:{user.id}",))
watch(UserRole, lambda role: (f"user:{role.user_id}",))
watch(ShopFollow, lambda follow: (f"user:{follow.user_id}",))


async def get_viewer(request: Request, user: OptionalUser) -> User | None:
    """The signed-in user or None, kept on the request so that the layout can greet them.

    Being ``get_optional_user`` underneath, it also refuses a cookie-authenticated write
    without its CSRF token; page routers list it in ``dependencies`` so no page forgets it.
    """
    # What the layout shows, copied now: a page that fails rolls its transaction back, which
    # expires every loaded row, and its error page must still greet the user.
    request.state.user = None if user is None else signed_in(user)
    return user


Viewer = Annotated[User | None, Depends(get_viewer)]


def sign_in_first(target: str) -> RedirectResponse:
    """To the sign-in page, which comes back to ``target`` (a path on this site) after."""
    return RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)
