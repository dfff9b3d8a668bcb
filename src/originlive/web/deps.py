"""Dependencies shared by every feature's pages."""

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse

from originlive.accounts.deps import OptionalUser
from originlive.accounts.models import Role, User


@dataclass(frozen=True)
class SignedIn:
    """The signed-in user as pages show them."""

    id: int
    email: str
    display_name: str
    is_operator: bool = False


async def get_viewer(request: Request, user: OptionalUser) -> User | None:
    """The signed-in user or None, kept on the request so that the layout can greet them.

    Being ``get_optional_user`` underneath, it also refuses a cookie-authenticated write
    without its CSRF token; page routers list it in ``dependencies`` so no page forgets it.
    """
    # What the layout shows, copied now: a page that fails rolls its transaction back, which
    # expires every loaded row, and its error page must still greet the user.
    request.state.user = (
        None
        if user is None
        else SignedIn(
            id=user.id,
            email=user.email,
            display_name=user.display_name,
            is_operator=user.has_role(Role.OPERATOR),
        )
    )
    return user


Viewer = Annotated[User | None, Depends(get_viewer)]


def sign_in_first(target: str) -> RedirectResponse:
    """To the sign-in page, which comes back to ``target`` (a path on this site) after."""
    return RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)
