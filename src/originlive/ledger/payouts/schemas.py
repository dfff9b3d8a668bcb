"""API shapes of payouts and earnings."""

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from originlive.ledger.accounts import MAX_LENGTH
from originlive.ledger.models import EntryKind
from originlive.ledger.payouts.models import PayoutStatus

AccountName = Annotated[
    str, StringConstraints(min_length=3, max_length=MAX_LENGTH, pattern=r"^[a-z0-9_:]+$")
]


class PayoutCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account: AccountName = Field(description="The account paid from: shop:12:available.")
    amount_fen: Annotated[int, Field(strict=True, ge=1, le=10**15)]


class Payout(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    account: str
    amount_fen: int
    currency: str
    provider: str
    status: PayoutStatus
    provider_ref: str | None
    created_at: dt.datetime
    settled_at: dt.datetime | None


class Line(BaseModel):
    """One posting of the holder's accounts."""

    model_config = ConfigDict(from_attributes=True)

    entry_id: int
    at: dt.datetime
    kind: EntryKind
    ref: str
    account: str
    amount_fen: int


class Earnings(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    pending_fen: int = Field(description="Earned, not yet released (after-sales open).")
    available_fen: int = Field(description="Released; below zero after a late refund.")
    under_way_fen: int = Field(description="In payouts the provider has not answered yet.")
    paid_out_fen: int
    recent: list[Line]
