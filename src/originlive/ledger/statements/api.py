"""JSON route of the month's reconciliation (operators)."""

from typing import Annotated

from fastapi import Depends, Query
from pydantic import BaseModel

from originlive.accounts.deps import Operator
from originlive.db import SessionDep, utcnow
from originlive.ledger.statements import service
from originlive.routing import Router

router = Router(prefix="/api/v1", tags=["ledger"])


def get_month(month: Annotated[str | None, Query(max_length=7)] = None) -> service.Month:
    """The month asked for (``2026-11``), else the current one on the platform's clock."""
    return service.Month.of(utcnow()) if month is None else service.Month.parse(month)


MonthParam = Annotated[service.Month, Depends(get_month)]


class Reconciliation(BaseModel):
    month: str
    opening_held_fen: int
    payments_in_fen: int
    refunds_fen: int
    payouts_fen: int
    failed_payouts_fen: int
    other_fen: int
    closing_held_fen: int
    expected_closing_fen: int
    difference_fen: int
    held_by_holder: dict[str, int]
    money_in_to_date_fen: int
    paid_out_to_date_fen: int
    adds_up: bool


def shown(found: service.Reconciliation) -> Reconciliation:
    figures = {name: getattr(found, name) for name in Reconciliation.model_fields}
    return Reconciliation.model_validate(figures | {"month": str(found.month)})


@router.get("/ledger/reconciliation", response_model=Reconciliation)
async def reconciliation(month: MonthParam, session: SessionDep, _user: Operator) -> Reconciliation:
    """The month's payments in, refunds and payouts against the balances held at its start
    and end, and whether they add up to the fen."""
    conn = await session.connection()
    found = await conn.run_sync(lambda c: service.reconciliation(c, month=month))
    return shown(found)
