"""JSON routes of settlement: the split rule that applies to a shop's orders."""

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.accounts import service as accounts
from originlive.accounts.deps import Operator
from originlive.catalog import service as catalog
from originlive.catalog.deps import OwnedShop, RowId
from originlive.catalog.models import Shop
from originlive.db import SessionDep, utcnow
from originlive.errors import InvalidInput, NotFound
from originlive.ledger.settlement import schemas, service
from originlive.ledger.settlement.models import SplitRuleRow
from originlive.routing import Router

router = Router(prefix="/api/v1", tags=["settlement"])


@router.get("/shops/{shop_id}/split-rule", response_model=schemas.SplitRule)
async def get_split_rule(
    shop: OwnedShop, session: SessionDep, request: Request
) -> schemas.SplitRule:
    """How the shop's orders are split: the platform's fee, the stations' fee per parcel and
    the co-operative's share (the shop's managers and operators)."""
    return await _view(session, request, shop)


@router.put(
    "/shops/{shop_id}/split-rule",
    response_model=schemas.SplitRule,
    responses={404: {"description": "No such shop or co-operative."}},
)
async def set_split_rule(
    shop_id: RowId,
    body: schemas.SplitRuleUpdate,
    session: SessionDep,
    request: Request,
    user: Operator,
) -> schemas.SplitRule:
    """Give the shop a split of its own (operators); figures left null keep the deployment's.
    It applies to payments captured from now on; what was captured keeps its split."""
    shop = await catalog.get_shop(session, shop_id=shop_id)
    if shop is None:
        raise NotFound(f"No shop {shop_id}.")
    coop = body.coop_shop_id
    if coop is not None and await catalog.get_shop(session, shop_id=coop) is None:
        raise InvalidInput(f"No shop {coop}.", field="coop_shop_id")
    fee = body.platform_fee_bp
    if fee is None:
        fee = request.app.state.settings.platform_fee_bp
    if fee + (body.coop_share_bp or 0) > 10_000:
        raise InvalidInput("The fee and the share together pass 100 %.", field="coop_share_bp")
    row = await session.get(SplitRuleRow, shop.id) or SplitRuleRow(shop_id=shop.id)
    row.platform_fee_bp = body.platform_fee_bp
    row.station_fee_fen = body.station_fee_fen
    row.coop_share_bp = body.coop_share_bp
    row.coop_shop_id = body.coop_shop_id
    row.updated_at = utcnow()
    session.add(row)
    await session.flush()
    await accounts.record_operator_act(
        session,
        actor=user,
        action="shop.split_rule",
        target_type="shop",
        target_id=shop.id,
        detail=body.model_dump(),
    )
    return await _view(session, request, shop)


async def _view(session: AsyncSession, request: Request, shop: Shop) -> schemas.SplitRule:
    policy = service.policy_of(request.app.state.settings)
    conn = await session.connection()
    rule = await conn.run_sync(lambda sync: service.rules_of(sync, [shop.id], policy.rule))
    own = await session.get(SplitRuleRow, shop.id) is not None
    figures = rule[shop.id]
    return schemas.SplitRule(
        shop_id=shop.id,
        platform_fee_bp=figures.platform_fee_bp,
        station_fee_fen=figures.station_fee_fen,
        coop_share_bp=figures.coop_share_bp,
        coop_shop_id=figures.coop_id,
        own=own,
    )
