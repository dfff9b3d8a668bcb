"""Which collection run a request may reach: the co-operative's, its hub's staff's, the
staff's of a point where its growers bring produce, operators'; anyone else gets a 404."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from originlive.accounts.deps import CurrentUser
from originlive.catalog.deps import RowId
from originlive.db import SessionDep
from originlive.errors import Forbidden, NotFound
from originlive.logistics.collection import service
from originlive.logistics.collection.models import CollectionRun


@dataclass(frozen=True, slots=True)
class Seen:
    """A run and what the caller is to it."""

    run: CollectionRun
    access: service.Access


async def get_visible_run(run_id: RowId, session: SessionDep, user: CurrentUser) -> Seen:
    """The run if it is the caller's to see; else 404 (a run's existence is nobody else's
    business)."""
    run = await service.get_run(session, run_id=run_id)
    if run is not None:
        access = await service.access(session, run=run, user=user)
        if access.sees:
            return Seen(run, access)
    raise NotFound(f"No collection run {run_id}.")


async def get_managed_run(seen: Annotated[Seen, Depends(get_visible_run)]) -> CollectionRun:
    """The run if the caller acts for its co-operative; the staff who see it get a 403."""
    if not seen.access.manages:
        raise Forbidden("Only the co-operative's managers do this.")
    return seen.run


VisibleRun = Annotated[Seen, Depends(get_visible_run)]
ManagedRun = Annotated[CollectionRun, Depends(get_managed_run)]
