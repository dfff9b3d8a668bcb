"""API shapes of payments and refunds."""

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from originlive.catalog.schemas import PriceCents
from originlive.payments.models import PaymentStatus
from originlive.text import one_line

Reason = Annotated[str, one_line(500)]


class PaymentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: Literal["sandbox"] = "sandbox"


class Payment(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    order_id: int
    provider: str
    status: PaymentStatus
    amount_cents: int
    currency: str
    refunded_cents: int
    checkout_url: str | None = Field(
        default=None, description="Where the buyer pays, while the payment is pending."
    )
    created_at: dt.datetime
    updated_at: dt.datetime


class RefundCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount_cents: Annotated[PriceCents, Field(gt=0)]
    reason: Reason


class Refund(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    payment_id: int
    order_id: int
    amount_cents: int
    reason: str
    provider_ref: str
    created_at: dt.datetime


class RefundRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason
