"""Tables of settlement: a shop's own split rule, over the deployment's."""

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index
from sqlalchemy.orm import Mapped, mapped_column

from originlive.db import Base, UTCDateTime, utcnow
from originlive.ledger.models import JournalEntry


class SplitRuleRow(Base):
    """A shop's split: each figure None keeps the deployment's (``Settings``)."""

    __tablename__ = "split_rules"
    __table_args__ = (
        CheckConstraint("platform_fee_bp BETWEEN 0 AND 10000", name="fee_within_whole"),
        CheckConstraint("coop_share_bp BETWEEN 0 AND 10000", name="share_within_whole"),
        CheckConstraint("station_fee_fen >= 0", name="station_fee_not_negative"),
    )

    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"), primary_key=True)
    platform_fee_bp: Mapped[int | None]
    station_fee_fen: Mapped[int | None]
    coop_share_bp: Mapped[int | None]
    # The co-operative the shop sells through: a shop of its own on the platform.
    coop_shop_id: Mapped[int | None] = mapped_column(ForeignKey("shops.id"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# Settlement reads an order's money back from its entries, by their reference ("order:42").
Index("ix_journal_entries_ref", JournalEntry.ref)
