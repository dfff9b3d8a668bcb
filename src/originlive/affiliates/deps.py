"""Who may reach a plan or a sample request (invariant 7: a merchant only its shops' plans,
an anchor its own selections): one dependency per rule.

A shop's managers (its owner, operators) reach its plans and the samples asked of it. An
anchor sees the plans offered to them (open ones, and targeted ones naming them) and their
own sample requests; anything else is a 404, so a targeted plan's id gives nothing away.
A line-up item proposed to a shop is its managers' to decide, and a 404 to anyone else.
"""

from typing import Annotated

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.accounts.deps import CurrentUser
from originlive.accounts.models import Role, User
from originlive.affiliates import lineup, samples, service
from originlive.affiliates.models import CommissionPlan, LineupItem, SampleRequest
from originlive.catalog.deps import RowId, can_manage
from originlive.catalog.models import Shop, ShopStatus
from originlive.db import SessionDep
from originlive.errors import Forbidden, NotFound
from originlive.live import deps as live_deps


async def _shop(session: AsyncSession, shop_id: int) -> Shop:
    shop = await session.get(Shop, shop_id)
    assert shop is not None  # plans and samples keep their shop (foreign key)
    return shop


async def _manages(session: AsyncSession, user: User, shop_id: int) -> bool:
    return can_manage(user, await _shop(session, shop_id))


async def _plan(session: AsyncSession, plan_id: int) -> CommissionPlan:
    plan = await service.get_plan(session, plan_id=plan_id)
    if plan is None:
        raise NotFound(f"No plan {plan_id}.")
    return plan


async def get_visible_plan(
    plan_id: RowId, session: SessionDep, user: CurrentUser
) -> CommissionPlan:
    """The plan if the caller manages its shop, or is an anchor it is offered to (by a shop
    that sells: approved)."""
    plan = await _plan(session, plan_id)
    shop = await _shop(session, plan.shop_id)
    if can_manage(user, shop):
        return plan
    offered = shop.status == ShopStatus.APPROVED and user.has_role(Role.ANCHOR)
    if offered and await service.may_join(session, plan=plan, anchor=user):
        return plan
    raise NotFound(f"No plan {plan_id}.")


async def get_owned_plan(plan_id: RowId, session: SessionDep, user: CurrentUser) -> CommissionPlan:
    """The plan if the caller manages its shop; 403 for anyone else."""
    plan = await _plan(session, plan_id)
    if not await _manages(session, user, plan.shop_id):
        raise Forbidden(f"You do not manage the shop of plan {plan_id}.")
    return plan


async def get_shop_sample(
    sample_id: RowId, session: SessionDep, user: CurrentUser
) -> SampleRequest:
    """The sample request if the caller manages the shop it was asked of; else 404."""
    sample = await samples.get_sample(session, sample_id=sample_id)
    if sample is None or not await _manages(session, user, sample.shop_id):
        raise NotFound(f"No sample request {sample_id} to a shop you manage.")
    return sample


async def get_shop_lineup_item(
    item_id: RowId, session: SessionDep, user: CurrentUser
) -> LineupItem:
    """The line-up item if the caller manages the shop of its plan; else 404."""
    item = await lineup.get_item(session, item_id=item_id)
    plan = await service.get_plan(session, plan_id=item.plan_id) if item else None
    if item is None or plan is None or not await _manages(session, user, plan.shop_id):
        raise NotFound(f"No line-up item {item_id} proposed to a shop you manage.")
    return item


Anchor = live_deps.Anchor  # the rule is the live sessions': anchors run them
VisiblePlan = Annotated[CommissionPlan, Depends(get_visible_plan)]
OwnedPlan = Annotated[CommissionPlan, Depends(get_owned_plan)]
ShopSample = Annotated[SampleRequest, Depends(get_shop_sample)]
ShopLineupItem = Annotated[LineupItem, Depends(get_shop_lineup_item)]
