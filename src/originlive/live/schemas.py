"""API shapes of live sessions, their moderation and their replay."""

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from originlive.inputs import Id, Moment
from originlive.live.models import SanctionKind, SessionStatus
from originlive.orders.schemas import Offer, OfferCreate
from originlive.text import multi_line, one_line

Title = Annotated[str, one_line(120)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


Description = Annotated[str, multi_line(2000)]
CoverUrl = Annotated[str, StringConstraints(max_length=500, pattern=r"^(https?://|/)\S+$")]
ScheduledAt = Annotated[
    Moment, Field(description="When the anchor means to go live; buyers may ask a reminder.")
]


class LiveSessionCreate(_Input):
    shop_id: Id | None = Field(
        default=None,
        description="A shop you manage; left out, the session is your own as an anchor, "
        "carrying the goods of the plans you joined through its line-up.",
    )
    title: Title
    description: Description = ""
    cover_url: CoverUrl | None = None
    scheduled_at: ScheduledAt | None = None


class LiveSessionUpdate(_Input):
    title: Title | None = None
    description: Description | None = None
    cover_url: CoverUrl | None = None
    scheduled_at: ScheduledAt | None = None

    @model_validator(mode="after")
    def _keeps_a_title(self) -> "LiveSessionUpdate":
        if "title" in self.model_fields_set and self.title is None:
            raise ValueError("a session needs a title")
        return self


class LiveSession(BaseModel):
    """A session as anyone sees it."""

    id: int
    shop_id: int | None = Field(description="None for an anchor's own session.")
    shop_name: str | None
    region_code: str | None = Field(
        description="The shop's region: where the goods come from (None: no shop)."
    )
    anchor_id: int
    anchor_name: str = ""
    title: str
    description: str
    cover_url: str | None
    scheduled_at: dt.datetime | None
    status: SessionStatus
    started_at: dt.datetime | None
    ended_at: dt.datetime | None
    likes: int
    reminders: int
    pinned_offer: Offer | None
    offers: list[Offer]
    playback_url: str = Field(description="HLS of the live stream (the recording once ended).")
    replay_url: str | None = Field(
        default=None, description="HLS of the recording, once the session has ended."
    )
    recording_seconds: float | None = None
    room_url: str = Field(description="The room's WebSocket, relative to the platform.")


class LiveSessionManaged(LiveSession):
    """A session as its anchor and the shop's managers see it: with what to publish to."""

    stream_key: str
    ingest_url: str = Field(description="The RTMP server to paste into OBS, with stream_key.")


class SessionOfferCreate(OfferCreate):
    pin: bool = Field(default=False, description="Pin it in the room at once.")


class SanctionCreate(_Input):
    user_id: Id
    minutes: Annotated[int, Field(strict=True, ge=1, le=60 * 24 * 30)] | None = Field(
        default=None, description="How long; unset means for the rest of the session."
    )


class Sanction(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    session_id: int
    user_id: int
    kind: SanctionKind
    until: dt.datetime | None
    created_at: dt.datetime


class Comment(BaseModel):
    """A comment as kept for review: who said what, when, and whether it was deleted."""

    model_config = ConfigDict(from_attributes=True)

    seq: int
    user_id: int
    author: str
    text: str
    created_at: dt.datetime
    deleted_at: dt.datetime | None


class Reminder(BaseModel):
    session_id: int
    title: str
    status: SessionStatus
    scheduled_at: dt.datetime | None


class ReplayEvent(BaseModel):
    offset_ms: int = Field(description="Milliseconds from the start of the stream.")
    type: Literal["comment", "pin", "unpin", "purchase"]
    data: dict[str, Any]


class Replay(BaseModel):
    session_id: int
    started_at: dt.datetime | None
    ended_at: dt.datetime | None
    events: list[ReplayEvent]
