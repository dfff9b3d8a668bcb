"""Tables of collection runs: the run, its growers (with what each was weighed at) and what
the hub received from each point.

Quantities are grams, as integers: produce is weighed at the point and at the hub, and the
differences must add up to the gram.
"""

import enum
from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from originlive.db import Base, UTCDateTime, text_enum, utcnow


class RunStatus(enum.StrEnum):
    BOOKED = "booked"  # the co-operative said who brings what, where
    COLLECTING = "collecting"  # a point has weighed a first grower
    IN_TRANSIT = "in_transit"  # dispatched: no more weighing, the hub receives
    RECEIVED = "received"  # every point that sent produce has been received at the hub
    CLOSED = "closed"  # the co-operative has seen the differences and is done


class Grade(enum.StrEnum):
    A = "A"
    B = "B"
    C = "C"
    REJECTED = "rejected"  # stays with the grower: not sent on to the hub


class CollectionRun(Base):
    """A co-operative's collection from its growers' village points to a county hub."""

    __tablename__ = "collection_runs"
    __table_args__ = (
        Index("ix_collection_runs_shop_id", "shop_id"),
        Index("ix_collection_runs_hub_id", "hub_id"),
        CheckConstraint(
            "tolerance_percent >= 0 AND tolerance_percent <= 50", name="tolerance_percent_range"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"))  # the co-operative
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id"))  # what is collected
    hub_id: Mapped[int] = mapped_column(ForeignKey("delivery_nodes.id"))  # bound for
    collect_on: Mapped[date] = mapped_column(Date)
    note: Mapped[str] = mapped_column(String(200), default="")
    # A difference within this share of what was expected (or sent) is not flagged.
    tolerance_percent: Mapped[int] = mapped_column(Integer, default=5)
    status: Mapped[RunStatus] = mapped_column(
        text_enum(RunStatus, length=16), default=RunStatus.BOOKED
    )
    booked_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class CollectionGrower(Base):
    """A grower booked on a run: what they are expected to bring to their point, and once
    the point's staff have weighed it, what it weighed and its grade."""

    __tablename__ = "collection_growers"
    __table_args__ = (
        Index("ix_collection_growers_run_id", "run_id"),
        Index("ix_collection_growers_point_id", "point_id"),
        CheckConstraint("expected_grams > 0", name="expected_grams_positive"),
        CheckConstraint("weighed_grams IS NULL OR weighed_grams > 0", name="weighed_positive"),
        # Weighed all at once, or not at all.
        CheckConstraint(
            "(weighed_grams IS NULL AND grade IS NULL AND weighed_at IS NULL)"
            " OR (weighed_grams IS NOT NULL AND grade IS NOT NULL AND weighed_at IS NOT NULL)",
            name="weighed_whole",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("collection_runs.id", ondelete="CASCADE"))
    point_id: Mapped[int] = mapped_column(ForeignKey("delivery_nodes.id"))
    name: Mapped[str] = mapped_column(String(40))
    phone: Mapped[str] = mapped_column(String(20))
    expected_grams: Mapped[int] = mapped_column(Integer)
    weighed_grams: Mapped[int | None] = mapped_column(Integer)
    grade: Mapped[Grade | None] = mapped_column(text_enum(Grade, length=16))
    weighed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    weighed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class CollectionReceipt(Base):
    """What the hub's staff found arrived from one point of a run; once a point."""

    __tablename__ = "collection_receipts"
    __table_args__ = (CheckConstraint("weight_grams >= 0", name="weight_not_negative"),)

    run_id: Mapped[int] = mapped_column(
        ForeignKey("collection_runs.id", ondelete="CASCADE"), primary_key=True
    )
    point_id: Mapped[int] = mapped_column(ForeignKey("delivery_nodes.id"), primary_key=True)
    weight_grams: Mapped[int] = mapped_column(Integer)
    note: Mapped[str] = mapped_column(String(200), default="")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    received_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
