"""Tables of live sessions, their rooms' comments, pins, reminders and sanctions."""

import enum
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from originlive.db import Base, UTCDateTime, text_enum, utcnow


class SessionStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    LIVE = "live"
    ENDED = "ended"


class SanctionKind(enum.StrEnum):
    MUTE = "mute"  # may watch, may not comment
    BAN = "ban"  # put out of the room


class LiveSession(Base):
    """A broadcast by its anchor, of a shop's goods or (no shop) of the goods of the shops
    whose plans the anchor joined, through its line-up: scheduled, then live, then ended."""

    __tablename__ = "live_sessions"
    __table_args__ = (
        Index("ix_live_sessions_shop_id", "shop_id"),
        Index("ix_live_sessions_status_scheduled_at", "status", "scheduled_at"),
        UniqueConstraint("stream_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    shop_id: Mapped[int | None] = mapped_column(ForeignKey("shops.id"))  # None: the anchor's own
    anchor_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    title: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(String(2000), default="")
    cover_url: Mapped[str | None] = mapped_column(String(500))
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status: Mapped[SessionStatus] = mapped_column(
        text_enum(SessionStatus, length=16), default=SessionStatus.SCHEDULED
    )
    # The secret the anchor's encoder publishes with; rotating it refuses the old one.
    stream_key: Mapped[str] = mapped_column(String(64))
    pinned_offer_id: Mapped[int | None] = mapped_column(ForeignKey("flash_offers.id"))
    likes: Mapped[int] = mapped_column(BigInteger, default=0)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The anchor's encoder: when it last began publishing, and when it dropped (the session
    # ends once it has stayed away for the grace period). Null: never published, or back.
    stream_connected_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    stream_dropped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The recording's length once it is ready to replay (0: nothing was recorded).
    recording_ms: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class LiveComment(Base):
    """A comment said in a room, kept for replay and review; ``seq`` is its room event's."""

    __tablename__ = "live_comments"
    __table_args__ = (UniqueConstraint("session_id", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("live_sessions.id"))
    seq: Mapped[int] = mapped_column(BigInteger)  # with Redis, numbers start at its clock in ms
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    author: Mapped[str] = mapped_column(String(80))  # the display name when it was said
    text: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class LivePin(Base):
    """An offer pinned in a room, from when to when."""

    __tablename__ = "live_pins"
    __table_args__ = (Index("ix_live_pins_session_id", "session_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("live_sessions.id"))
    offer_id: Mapped[int] = mapped_column(ForeignKey("flash_offers.id"))
    pinned_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    unpinned_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class LiveReminder(Base):
    """A buyer who asked to be reminded when a scheduled session goes live."""

    __tablename__ = "live_reminders"
    __table_args__ = (Index("ix_live_reminders_user_id", "user_id"),)

    session_id: Mapped[int] = mapped_column(ForeignKey("live_sessions.id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RoomSanction(Base):
    """A mute or ban of one user in one room, until a time or (None) for the session."""

    __tablename__ = "room_sanctions"

    session_id: Mapped[int] = mapped_column(ForeignKey("live_sessions.id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    kind: Mapped[SanctionKind] = mapped_column(text_enum(SanctionKind, length=16), primary_key=True)
    until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
