"""API shapes of the selection library: plans, the library's products, samples, line-ups."""

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from originlive.affiliates.models import (
    MAX_RATE_BP,
    LineupStatus,
    PlanKind,
    PlanScope,
    PlanStatus,
    SampleStatus,
)
from originlive.inputs import Id, Moment
from originlive.orders.models import OrderStatus
from originlive.orders.schemas import Address, AddressCreate
from originlive.text import multi_line, one_line

RateBp = Annotated[
    int,
    Field(strict=True, ge=0, le=MAX_RATE_BP, description="Basis points: 1000 is 10 %."),
]
MAX_PRODUCTS = 200  # of a group plan
MAX_ANCHORS = 100  # named by a targeted plan
Reason = Annotated[str, one_line(500)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_window(starts_at: dt.datetime | None, ends_at: dt.datetime | None) -> None:
    if starts_at is not None and ends_at is not None and ends_at <= starts_at:
        raise ValueError("ends_at must come after starts_at")


class PlanCreate(_Input):
    name: Annotated[str, one_line(80)]
    kind: PlanKind = PlanKind.OPEN
    scope: PlanScope = PlanScope.SHOP
    rate_bp: RateBp
    product_ids: list[Id] = Field(
        default=[], max_length=MAX_PRODUCTS, description="A group plan's products; one for a "
        "product plan; none for a shop plan.",
    )  # fmt: skip
    anchor_ids: list[Id] = Field(
        default=[], max_length=MAX_ANCHORS, description="The anchors a targeted plan is for."
    )
    starts_at: Moment | None = Field(default=None, description="Now if left out.")
    ends_at: Moment | None = Field(default=None, description="Open-ended if left out.")
    samples_allowed: bool = True
    sample_cost_from_commission: bool = False
    auto_approve: bool = Field(
        default=False, description="Its products join a member's line-up without the shop's say."
    )

    @model_validator(mode="after")
    def _coherent(self) -> "PlanCreate":
        if len(set(self.product_ids)) != len(self.product_ids):
            raise ValueError("product_ids must not repeat")
        if len(set(self.anchor_ids)) != len(self.anchor_ids):
            raise ValueError("anchor_ids must not repeat")
        wanted = {PlanScope.SHOP: (0, 0), PlanScope.GROUP: (1, MAX_PRODUCTS)}
        low, high = wanted.get(self.scope, (1, 1))
        if not low <= len(self.product_ids) <= high:
            raise ValueError(f"a {self.scope.value} plan takes {low} to {high} product_ids")
        if (self.kind == PlanKind.TARGETED) != bool(self.anchor_ids):
            raise ValueError("a targeted plan names its anchor_ids; an open plan names none")
        _check_window(self.starts_at, self.ends_at)
        return self


class PlanUpdate(_Input):
    """What a shop may change of a running plan; its kind, scope and anchors stay."""

    name: Annotated[str, one_line(80)] | None = None
    rate_bp: RateBp | None = None
    ends_at: Moment | None = None
    samples_allowed: bool | None = None
    sample_cost_from_commission: bool | None = None
    auto_approve: bool | None = None


class Plan(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    shop_id: int
    name: str
    kind: PlanKind
    scope: PlanScope
    rate_bp: int
    product_ids: list[int] = []
    anchor_ids: list[int] = []
    starts_at: dt.datetime
    ends_at: dt.datetime | None
    samples_allowed: bool
    sample_cost_from_commission: bool
    auto_approve: bool
    status: PlanStatus
    created_at: dt.datetime


class Membership(BaseModel):
    plan_id: int
    anchor_id: int
    joined_at: dt.datetime


class LibraryItem(BaseModel):
    """A product offered to the anchor, with the best plan they may join for it and the plan
    that pays them for it now (of those they joined), if any."""

    product_id: int
    title: str
    category: str
    origin_region_code: str
    shop_id: int
    shop_name: str
    best_plan_id: int
    best_rate_bp: int
    joined_plan_id: int | None
    joined_rate_bp: int | None


class SampleCreate(_Input):
    plan_id: Id
    sku_id: Id
    address: AddressCreate
    note: Annotated[str, multi_line(500)] = ""


class SampleReject(_Input):
    reason: Reason


class Sample(BaseModel):
    id: int
    plan_id: int
    anchor_id: int
    shop_id: int
    product_id: int
    sku_id: int
    status: SampleStatus
    address: Address
    note: str
    reject_reason: str | None
    order_id: int | None
    order_status: OrderStatus | None = None
    created_at: dt.datetime
    decided_at: dt.datetime | None


class LineupItemCreate(_Input):
    """A product for a session's line-up: the SKU, and the offer the anchor means to open."""

    sku_id: Id
    price_cents: Annotated[int, Field(strict=True, ge=1, le=10**11)] = Field(
        description="The live price in fen: above 0."
    )
    quantity: Annotated[int, Field(strict=True, ge=1, le=10**7)] = Field(
        description="Units to take from the SKU's stock once approved."
    )
    per_buyer_limit: Annotated[int, Field(strict=True, ge=1, le=999)] = 1


class LineupItem(BaseModel):
    """A product in a session's line-up; once approved, ``offer_id`` sells it in the session
    and ``rate_bp`` is the plan's rate at that moment."""

    id: int
    session_id: int
    anchor_id: int
    plan_id: int
    shop_id: int
    shop_name: str
    product_id: int
    sku_id: int
    title: str
    price_cents: int
    quantity: int
    per_buyer_limit: int
    status: LineupStatus
    offer_id: int | None
    rate_bp: int | None
    created_at: dt.datetime
    decided_at: dt.datetime | None
    decided_by: int | None


class ShopAnchor(BaseModel):
    """An anchor of a shop's plans, and what they sold of its goods under them."""

    anchor_id: int
    name: str
    plans: int = Field(description="How many of the shop's plans they joined.")
    joined_at: dt.datetime
    orders: int
    units: int
    sales_fen: int
    commission_fen: int = Field(description="At the rate each line recorded.")
