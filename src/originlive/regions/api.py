"""JSON routes of regions."""

from typing import Annotated

from fastapi import Query, status

from originlive.accounts import service as accounts
from originlive.accounts.deps import Operator
from originlive.db import SessionDep
from originlive.regions import schemas, service
from originlive.routing import Router

router = Router(prefix="/api/v1/regions", tags=["regions"])


@router.get("", response_model=list[schemas.Region])
async def list_regions(
    session: SessionDep,
    parent: Annotated[
        str | None, Query(description="Code of the parent; none lists provinces.")
    ] = None,
    q: Annotated[
        str | None, Query(min_length=1, max_length=40, description="Search by name.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> list[schemas.Region]:
    """Children of a region (provinces without ``parent``), or a search by name with ``q``."""
    if q is not None:
        rows = await service.search(session, q=q, limit=limit)
    else:
        rows = await service.children(session, parent_code=parent)
    return [schemas.Region.model_validate(r) for r in rows]


@router.get("/{code}", response_model=schemas.Region)
async def get_region(code: str, session: SessionDep) -> schemas.Region:
    """One region by its code."""
    return schemas.Region.model_validate(await service.get_or_404(session, code=code))


@router.post("", status_code=status.HTTP_201_CREATED, response_model=schemas.Region)
async def create_region(
    body: schemas.RegionCreate, session: SessionDep, operator: Operator
) -> schemas.Region:
    """Add a township or village node (operators only)."""
    region = await service.create(
        session, code=body.code, name=body.name, parent_code=body.parent_code
    )
    await accounts.record_audit(
        session,
        actor=operator,
        action="region.create",
        target_type="region",
        target_id=region.code,
        detail={"name": region.name, "parent_code": region.parent_code},
    )
    return schemas.Region.model_validate(region)
