"""API shapes of the delivery network, shipments, parcels, scans, bags and pick-ups."""

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from originlive.catalog.schemas import ContactName, ContactPhone, RegionCode
from originlive.inputs import Id, Moment
from originlive.logistics.models import NodeKind, ParcelStatus
from originlive.text import one_line

ParcelCode = Annotated[str, StringConstraints(pattern=r"^OL[0-9]{10}$")]
Seal = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9-]{4,24}$")]
# The phone's own name for a scan (a UUID, say): the same scan sent twice is one event.
ScanId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{8,64}$")]
PickupCode = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9-]{1,16}$")]
Minutes = Annotated[int, Field(strict=True, ge=0, le=60 * 24 * 30)]
Units = Annotated[int, Field(strict=True, ge=1, le=999)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


# The network


class NodeUpdate(_Input):
    name: Annotated[str, one_line(80)] | None = None
    address: Annotated[str, one_line(200)] | None = None
    opening_hours: Annotated[str, one_line(80)] | None = Field(
        default=None, description="As people say it, e.g. 每天 8:00-20:00."
    )
    phone: ContactPhone | None = None
    home_delivery: bool | None = Field(default=None, description="Whether it brings parcels home.")
    active: bool | None = Field(default=None, description="Closed nodes get no new parcels.")


class NodeCreate(_Input):
    kind: NodeKind
    region_code: RegionCode
    name: Annotated[str, one_line(80)]
    address: Annotated[str, one_line(200)] = ""
    opening_hours: Annotated[str, one_line(80)] = ""
    phone: ContactPhone | Annotated[str, StringConstraints(max_length=0)] = ""
    home_delivery: bool = False
    upstream_id: Id | None = Field(
        default=None, description="The node that serves it: a station's hub, a point's station."
    )
    transit_minutes: Minutes = Field(default=240, description="Usual time from the upstream node.")


class NodeLinkSet(_Input):
    upstream_id: Id
    transit_minutes: Minutes = 240


class Node(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: NodeKind
    region_code: str
    name: str
    address: str
    opening_hours: str
    phone: str
    home_delivery: bool
    active: bool
    upstream_id: int | None = None
    transit_minutes: int | None = None


class StaffAdd(_Input):
    email: Annotated[str, StringConstraints(strip_whitespace=True, max_length=254)]


# Shipping


class ParcelLine(BaseModel):
    model_config = ConfigDict(from_attributes=True, extra="forbid")

    order_item_id: Id
    quantity: Units


class ParcelPlan(_Input):
    items: list[ParcelLine] = Field(min_length=1, max_length=20)
    weight_grams: Annotated[int, Field(strict=True, ge=1, le=10**6)] | None = None


class ShipmentCreate(_Input):
    """Ship through our network (no carrier), or hand it to a carrier with its waybill."""

    carrier: Annotated[str, one_line(40)] | None = Field(
        default=None, description="An outside carrier, e.g. 中国邮政; none: our network."
    )
    tracking_number: (
        Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9-]{4,40}$")]
        | None
    ) = Field(default=None, description="The carrier's waybill number.")
    parcels: list[ParcelPlan] | None = Field(
        default=None,
        max_length=20,
        description="How the order is split into parcels; none: one parcel with everything.",
    )

    @model_validator(mode="after")
    def _carrier_with_waybill(self) -> "ShipmentCreate":
        # A carrier without a waybill is for the carrier to book (``carriers.carrier_for``):
        # the sandbox issues one, a carrier we cannot book with refuses.
        if self.carrier is None and self.tracking_number is not None:
            raise ValueError("a tracking_number needs its carrier")
        return self


# Parcels and their events


class TrackingEvent(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    status: ParcelStatus
    node_id: int | None
    node_name: str | None = None
    reason: str | None
    happened_at: dt.datetime
    recorded_at: dt.datetime
    source: str
    off_route: bool
    claimed_at: dt.datetime | None = Field(
        default=None, description="The phone's own time, when it was not believed."
    )


class Parcel(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    code: str
    order_id: int
    shop_id: int
    region_code: str
    status: ParcelStatus
    status_at: dt.datetime
    node_id: int | None
    destination_id: int | None
    carrier: str | None
    carrier_tracking: str | None
    weight_grams: int | None
    pickup_code: str | None = Field(default=None, description="Shown to its buyer only.")
    locked_until: dt.datetime | None
    items: list[ParcelLine] = []
    route: list[int] = []
    events: list[TrackingEvent] = []
    proof_photo_url: str | None = Field(
        default=None, description="The photo taken when it was delivered, if one was."
    )


# Scans, bags, pick-up


class ScanCreate(_Input):
    """One scan by a station's phone: of a parcel's label or of a bag's seal."""

    scan_id: ScanId
    parcel_code: ParcelCode | None = None
    bag_seal: Seal | None = None
    status: ParcelStatus
    happened_at: Moment = Field(description="When it was scanned, by the phone's clock.")
    reason: Annotated[str, one_line(200)] | None = None
    shelf: Annotated[int, Field(strict=True, ge=1, le=99)] = 1
    layer: Annotated[int, Field(strict=True, ge=1, le=99)] = 1

    @model_validator(mode="after")
    def _one_label(self) -> "ScanCreate":
        if (self.parcel_code is None) == (self.bag_seal is None):
            raise ValueError("scan either a parcel_code or a bag_seal")
        return self


class ScanRecorded(BaseModel):
    event_id: int
    parcel_code: str
    status: ParcelStatus = Field(description="The parcel's, after the scan.")
    duplicate: bool = Field(description="Sent before: this is the event recorded then.")
    off_route: bool
    clock_off: bool = Field(description="The phone's time was not believed; ours was used.")
    pickup_code: str | None = None


class ScanResult(BaseModel):
    recorded: list[ScanRecorded]


class BagCreate(_Input):
    seal: Seal
    destination_id: Id = Field(description="The station the bag goes to.")
    parcels: list[ParcelCode] = Field(min_length=1, max_length=500)


class Bag(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    seal: str
    origin_id: int
    destination_id: int
    opened_at: dt.datetime | None
    parcels: list[str] = []


class TakeOut(_Input):
    parcel_code: ParcelCode


class PickupCreate(_Input):
    scan_id: ScanId
    pickup_code: PickupCode
    collected_by: ContactName | None = Field(
        default=None, description="Who collected it, when not the buyer."
    )


class Notification(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    user_id: int | None
    parcel_id: int | None
    channel: str
    address: str
    body: str
    created_at: dt.datetime


class Proof(BaseModel):
    parcel_code: str
    photo_url: str
    recorded_at: dt.datetime
