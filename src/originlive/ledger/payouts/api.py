"""JSON routes of payouts: operators make and list them, providers answer by webhook, shops
and anchors read their earnings."""

import uuid
from typing import Annotated

from fastapi import Header, Query, Request, status

from originlive.accounts import service as accounts
from originlive.accounts.deps import Operator
from originlive.catalog.deps import OwnedShop
from originlive.db import SessionDep, utcnow
from originlive.errors import NotFound
from originlive.ledger.accounts import Holder
from originlive.ledger.payouts import sandbox, schemas, service
from originlive.ledger.payouts.deps import Anchor, Provider
from originlive.ledger.payouts.models import PayoutStatus
from originlive.orders.deps import Writer
from originlive.routing import Router

router = Router(prefix="/api/v1", tags=["payouts"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=100,
        pattern=r"^[\x21-\x7e]+$",
        description="A retry with the same key and body returns the first payout; with "
        "another body it is a 422.",
    ),
]


@router.post("/payouts", status_code=status.HTTP_201_CREATED, response_model=schemas.Payout)
async def make_payout(
    body: schemas.PayoutCreate,
    session: SessionDep,
    writer: Writer,
    provider: Provider,
    user: Operator,
    key: IdempotencyKey = None,
) -> schemas.Payout:
    """Pay part or all of an account's available money (at most what it holds: else 422;
    while one of its payouts is under way: 409)."""
    made = await service.make(
        writer,
        provider,
        account=body.account,
        amount_fen=body.amount_fen,
        key=f"operator:{user.id}:{key or uuid.uuid4().hex}",
        actor_id=user.id,
    )
    await accounts.record_operator_act(
        session, actor=user, action="payout.make", target_type="ledger_account",
        target_id=body.account, detail={"payout_id": made.payout_id, "amount_fen": body.amount_fen},
    )  # fmt: skip
    conn = await session.connection()
    (row,) = await conn.run_sync(lambda c: service.list_payouts(c, payout_id=made.payout_id))
    return schemas.Payout.model_validate(row)


@router.get("/payouts", response_model=list[schemas.Payout])
async def list_payouts(
    session: SessionDep,
    _user: Operator,
    account: Annotated[str | None, Query(max_length=64)] = None,
    state: Annotated[PayoutStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=10**6)] = 0,
) -> list[schemas.Payout]:
    """Payouts, newest first; of one account, or in one state."""
    conn = await session.connection()
    rows = await conn.run_sync(
        lambda c: service.list_payouts(c, account=account, status=state, limit=limit, offset=offset)
    )
    return [schemas.Payout.model_validate(row) for row in rows]


@router.post("/payouts/{provider}/webhook")
async def webhook(provider: str, request: Request, writer: Writer) -> dict[str, str]:
    """Where a payout provider says what became of a payout; signed, and safe to repeat."""
    if provider != sandbox.NAME:
        raise NotFound(f"No payout provider {provider!r}.")
    secret = request.app.state.payout_secret
    event = sandbox.verify(secret, request.headers, await request.body())
    result = await writer.run(
        service.apply,
        provider=provider,
        event_id=event.id,
        payout_id=event.payout_id,
        paid=event.type == sandbox.PAID,
        amount_fen=event.amount_fen,
        currency=event.currency,
        now=utcnow(),
        note=event.reason,
    )
    return {"result": result}


async def _earnings(session: SessionDep, holder: Holder, holder_id: int) -> schemas.Earnings:
    conn = await session.connection()
    found = await conn.run_sync(lambda c: service.earnings(c, holder=holder, holder_id=holder_id))
    return schemas.Earnings.model_validate(found)


@router.get("/shops/{shop_id}/earnings", response_model=schemas.Earnings)
async def shop_earnings(shop: OwnedShop, session: SessionDep) -> schemas.Earnings:
    """The shop's money (its managers): pending, available, under way, paid out, recent."""
    return await _earnings(session, Holder.SHOP, shop.id)


@router.get("/anchors/me/earnings", response_model=schemas.Earnings)
async def anchor_earnings(anchor: Anchor, session: SessionDep) -> schemas.Earnings:
    """The signed-in anchor's commission: pending, available, under way, paid out, recent."""
    return await _earnings(session, Holder.ANCHOR, anchor.id)
