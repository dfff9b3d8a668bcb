"""Dependencies shared by every feature's pages."""

from typing import Annotated

from fastapi import Depends, Request

from originlive.accounts.deps import OptionalUser
from originlive.accounts.models import User


async def get_viewer(request: Request, user: OptionalUser) -> User | None:
    """The signed-in user or None, kept on the request so that the layout can greet them.

    Being ``get_optional_user`` underneath, it also refuses a cookie-authenticated write
    without its CSRF token; page routers list it in ``dependencies`` so no page forgets it.
    """
    request.state.user = user
    return user


Viewer = Annotated[User | None, Depends(get_viewer)]
