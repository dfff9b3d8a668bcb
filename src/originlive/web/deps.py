"""Dependencies shared by every feature's pages."""

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from originlive.accounts import security
from originlive.accounts import service as accounts
from originlive.accounts.deps import OptionalUser
from originlive.accounts.models import Role, TokenKind, User, UserRole
from originlive.catalog.models import ShopFollow
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
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        ttl_seconds: float = 10.0,
        max_entries: int = 100_000,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._ttl = ttl_seconds
        self._max = max_entries
        self._entries: OrderedDict[str, tuple[SignedIn | None, float]] = OrderedDict()

    async def __call__(self, token: str) -> SignedIn | None:
        digest = security.token_digest(token)
        entry = self._entries.get(digest)
        now = time.monotonic()
        if entry is not None and entry[1] > now:
            return entry[0]
        async with self._sessionmaker() as session:
            user = await accounts.user_for_token(session, token=token, kind=TokenKind.SESSION)
            viewer = None
            if user is not None:
                follows = await session.scalars(
                    select(ShopFollow.shop_id).where(ShopFollow.user_id == user.id)
                )
                viewer = signed_in(user, frozenset(follows))
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
