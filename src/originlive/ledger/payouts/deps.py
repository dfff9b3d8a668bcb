"""Who may read a holder's money, and the deployment's payout provider."""

from typing import Annotated

from fastapi import Depends, Request

from originlive.accounts.deps import CurrentUser
from originlive.accounts.models import Role, User
from originlive.errors import Forbidden
from originlive.ledger.payouts.service import PayoutProvider


def get_provider(request: Request) -> PayoutProvider:
    """The deployment's payout provider."""
    provider: PayoutProvider = request.app.state.payout_provider
    return provider


# affiliates.deps has the same rule for its pages; the ledger sits beside affiliates, not above
# it (CONVENTIONS, habit 2), so it asks the role itself rather than import it.
async def get_anchor(user: CurrentUser) -> User:
    """The signed-in anchor, who sees their own earnings only; 403 for everyone else."""
    if not user.has_role(Role.ANCHOR):
        raise Forbidden("Only anchors have earnings of their own.")
    return user


Provider = Annotated[PayoutProvider, Depends(get_provider)]
Anchor = Annotated[User, Depends(get_anchor)]
