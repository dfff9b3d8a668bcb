"""API shapes of collection runs: booking growers, weighing at the point, receiving at the
hub, and the run with its differences. Every quantity is in grams."""

import datetime as dt
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from originlive.catalog.schemas import ContactName, ContactPhone
from originlive.inputs import EARLIEST_YEAR, LATEST_YEAR, Id
from originlive.logistics.collection.differences import Flag
from originlive.logistics.collection.models import Grade, RunStatus
from originlive.text import one_line

# More than any grower brings to a village point in a day, and than a point sends to its hub;
# a figure past these is a slip of the keyboard (kilograms typed as grams twice over).
MAX_GROWER_GRAMS = 50_000_000  # 50 t
MAX_POINT_GRAMS = 500_000_000  # 500 t
MAX_GROWERS = 500

GrowerGrams = Annotated[int, Field(strict=True, ge=1, le=MAX_GROWER_GRAMS)]
PointGrams = Annotated[int, Field(strict=True, ge=0, le=MAX_POINT_GRAMS)]
Note = Annotated[str, one_line(200, blank=True)]


def _sane_day(day: dt.date) -> dt.date:
    if not EARLIEST_YEAR <= day.year <= LATEST_YEAR:
        raise ValueError(f"a day must be within the years {EARLIEST_YEAR} to {LATEST_YEAR}")
    return day


Day = Annotated[dt.date, AfterValidator(_sane_day)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GrowerBooking(_Input):
    name: ContactName
    phone: ContactPhone
    point_id: Id = Field(description="The village point where the grower brings the produce.")
    expected_grams: GrowerGrams = Field(description="What the grower is expected to bring.")


class RunCreate(_Input):
    """A collection run of one of the caller's shops (the co-operative) to a county hub."""

    shop_id: Id
    sku_id: Id = Field(description="What is collected: a SKU of the shop's.")
    hub_id: Id = Field(description="The county hub the produce goes to.")
    collect_on: Day = Field(description="The day the points weigh the growers' produce.")
    note: Note = ""
    tolerance_percent: Annotated[int, Field(strict=True, ge=0, le=50)] = Field(
        default=5, description="A difference within this share is shown but not flagged."
    )
    growers: list[GrowerBooking] = Field(min_length=1, max_length=MAX_GROWERS)


class WeighingCreate(_Input):
    """A grower's delivery, weighed and graded at their point (the point's staff)."""

    grower_id: Id
    weight_grams: GrowerGrams
    grade: Grade


class ReceiptCreate(_Input):
    """What arrived at the hub from one point of the run (the hub's staff); once a point."""

    point_id: Id
    weight_grams: PointGrams
    note: Note = ""


class Grower(BaseModel):
    id: int
    point_id: int
    point_name: str
    name: str
    phone: str | None = Field(description="To the co-operative and the grower's point only.")
    expected_grams: int
    weighed_grams: int | None
    grade: Grade | None
    weighed_at: dt.datetime | None
    accepted_grams: int | None = Field(description="What goes on to the hub: 0 if rejected.")
    difference_grams: int | None = Field(description="Weighed minus expected.")
    flag: Flag | None


class Point(BaseModel):
    id: int
    name: str
    growers: int
    expected_grams: int
    weighed_grams: int
    sent_grams: int = Field(description="Weighed and not rejected: what should reach the hub.")
    rejected_grams: int
    received_grams: int | None = Field(description="As the hub recorded it; null until then.")
    received_at: dt.datetime | None
    difference_grams: int | None = Field(description="Received minus sent.")
    flag: Flag | None


class Totals(BaseModel):
    expected_grams: int
    weighed_grams: int
    sent_grams: int
    rejected_grams: int
    received_grams: int
    by_grade: dict[Grade, int]


class RunSummary(BaseModel):
    id: int
    shop_id: int
    shop_name: str
    sku_id: int
    sku_name: str
    hub_id: int
    hub_name: str
    collect_on: dt.date
    note: str
    tolerance_percent: int
    status: RunStatus
    created_at: dt.datetime
    dispatched_at: dt.datetime | None
    received_at: dt.datetime | None
    closed_at: dt.datetime | None
    totals: Totals
    flagged: int = Field(description="How many growers and points are flagged.")


class Run(RunSummary):
    growers: list[Grower]
    points: list[Point]
