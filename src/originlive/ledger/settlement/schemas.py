"""API shapes of settlement: a shop's split rule."""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from originlive.inputs import MAX_ID

BasisPoints = Annotated[int, Field(strict=True, ge=0, le=10_000)]


class SplitRuleUpdate(BaseModel):
    """A shop's own split; a figure left out (null) keeps the deployment's."""

    model_config = ConfigDict(extra="forbid")

    platform_fee_bp: BasisPoints | None = Field(
        default=None, description="The platform's fee on the items, in basis points."
    )
    station_fee_fen: Annotated[int, Field(strict=True, ge=0, le=100_000)] | None = Field(
        default=None, description="Paid per parcel to the nodes that handled it."
    )
    coop_share_bp: BasisPoints | None = Field(
        default=None, description="The co-operative's share of the items, in basis points."
    )
    coop_shop_id: Annotated[int, Field(strict=True, ge=1, le=MAX_ID)] | None = Field(
        default=None, description="The co-operative the shop sells through (a shop)."
    )

    @model_validator(mode="after")
    def _a_share_needs_a_co_operative(self) -> "SplitRuleUpdate":
        if self.coop_share_bp and self.coop_shop_id is None:
            raise ValueError("a co-operative's share needs coop_shop_id")
        return self


class SplitRule(BaseModel):
    """The split that applies to a shop's orders: its own figures over the deployment's."""

    shop_id: int
    platform_fee_bp: int
    station_fee_fen: int
    coop_share_bp: int
    coop_shop_id: int | None
    own: bool = Field(description="Whether the shop has a rule of its own.")
