"""API shapes of flash offers, orders and shipping rates."""

import datetime as dt
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from originlive.catalog.schemas import ContactPhone, PriceCents, RegionCode
from originlive.inputs import Id, Moment
from originlive.orders.models import OfferStatus, OrderStatus
from originlive.text import one_line

MAX_LINES = 20
Quantity = Annotated[int, Field(strict=True, ge=1, le=999)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OfferCreate(_Input):
    sku_id: Id
    price_cents: PriceCents
    quantity: Annotated[int, Field(strict=True, ge=1, le=10**7)] = Field(
        description="Units taken from the SKU's stock and put on sale."
    )
    per_buyer_limit: Annotated[int, Field(strict=True, ge=1, le=999)] = 1
    ends_at: Moment | None = Field(
        default=None, description="When the offer closes; unsold units go back to the SKU."
    )

    @model_validator(mode="after")
    def _future_end(self) -> "OfferCreate":
        if self.ends_at is not None and self.ends_at <= dt.datetime.now(dt.UTC):
            raise ValueError("ends_at must be in the future")
        return self


class Offer(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    shop_id: int
    sku_id: int
    live_session_id: int | None
    anchor_id: int | None = None
    plan_id: int | None = None
    commission_bp: int | None = None
    title: str
    price_cents: int
    currency: str
    quantity: int
    remaining: int
    per_buyer_limit: int
    status: OfferStatus
    ends_at: dt.datetime | None
    created_at: dt.datetime


class OrderLineCreate(_Input):
    offer_id: Id | None = None
    sku_id: Id | None = None
    quantity: Quantity = 1

    @model_validator(mode="after")
    def _one_of(self) -> "OrderLineCreate":
        if (self.offer_id is None) == (self.sku_id is None):
            raise ValueError("give either offer_id or sku_id")
        return self


class AddressCreate(_Input):
    name: Annotated[str, one_line(40)]
    phone: ContactPhone
    region_code: RegionCode = Field(description="Any level; usually a village or township.")
    detail: Annotated[str, one_line(200)]


class OrderCreate(_Input):
    items: list[OrderLineCreate] = Field(min_length=1, max_length=MAX_LINES)
    address: AddressCreate

    @model_validator(mode="after")
    def _distinct(self) -> "OrderCreate":
        keys = [(i.offer_id, i.sku_id) for i in self.items]
        if len(set(keys)) != len(keys):
            raise ValueError("each offer or SKU appears once; raise its quantity instead")
        return self


class Address(BaseModel):
    name: str
    phone: str
    region_code: str
    detail: str


class OrderItem(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    sku_id: int
    offer_id: int | None
    title: str
    unit_price_cents: int
    quantity: int
    live_session_id: int | None = Field(
        default=None, description="The live session the line was sold in, if any."
    )
    anchor_id: int | None = Field(default=None, description="The anchor who sold it, if any.")
    plan_id: int | None = Field(
        default=None, description="The commission plan it was sold under, if any."
    )
    commission_bp: int | None = Field(
        default=None, description="The plan's commission rate when it was sold (basis points)."
    )


class OrderEvent(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    from_status: OrderStatus | None
    to_status: OrderStatus
    actor_id: int | None
    note: str | None
    created_at: dt.datetime


class Order(BaseModel):
    """An order; built from an ``Order`` row loaded with its items and events, or a dict."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    status: OrderStatus
    buyer_id: int
    shop_id: int
    currency: str
    items_cents: int
    shipping_cents: int
    total_cents: int
    refunded_cents: int
    address: Address
    items: list[OrderItem]
    events: list[OrderEvent]
    created_at: dt.datetime
    expires_at: dt.datetime
    updated_at: dt.datetime

    @model_validator(mode="before")
    @classmethod
    def _address_from_row(cls, value: Any) -> Any:
        if not hasattr(value, "ship_name"):
            return value
        fields = {name: getattr(value, name) for name in cls.model_fields if name != "address"}
        address = Address(
            name=value.ship_name,
            phone=value.ship_phone,
            region_code=value.ship_region_code,
            detail=value.ship_detail,
        )
        return fields | {"address": address}


class OrderCancel(_Input):
    reason: Annotated[str, one_line(500)] | None = None


class ShipmentCreate(_Input):
    carrier: Annotated[str, one_line(40)] = Field(description="Who carries it, e.g. 中国邮政.")
    tracking_number: Annotated[
        str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9-]{4,40}$")
    ] = Field(description="The carrier's waybill number.")


class ShippingRate(BaseModel):
    model_config = ConfigDict(from_attributes=True, extra="forbid")

    region_code: RegionCode | None = Field(
        default=None, description="Destination region and all below it; null: everywhere else."
    )
    fee_cents: PriceCents


class ShippingRates(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rates: list[ShippingRate] = Field(max_length=500)

    @model_validator(mode="after")
    def _distinct(self) -> "ShippingRates":
        codes = [r.region_code for r in self.rates]
        if len(set(codes)) != len(codes):
            raise ValueError("each region (and the default) appears once")
        return self
