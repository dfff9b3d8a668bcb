"""Tables of the delivery network: nodes and their links, staff, parcels, bags and tracking.

A parcel goes from the shop's county hub to a township station and on to the village point
that serves the buyer, where it waits on a shelf for its pick-up code (or goes to the door
where the point delivers). Every scan of it is a tracking event, appended and never changed;
the parcel's ``status`` is what its events imply (``service.state_of``), kept on the row so
that lists need not read the events.
"""

import enum
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from originlive.db import Base, UTCDateTime, text_enum, utcnow


class NodeKind(enum.StrEnum):
    COUNTY_HUB = "county_hub"
    TOWNSHIP_STATION = "township_station"
    VILLAGE_POINT = "village_point"

    @property
    def depth(self) -> int:
        """0 for a hub, 2 for a village point: a link goes from one depth to the next."""
        return list(NodeKind).index(self)


class ParcelStatus(enum.StrEnum):
    """One set for our own network and every outside carrier (a carrier's own words are
    mapped to these by its adapter)."""

    PENDING = "pending"  # made when the shop shipped; not yet handed over
    PICKED_UP = "picked_up"  # the hub (or the carrier) has it from the shop
    IN_TRANSIT = "in_transit"  # left a node for the next
    AT_NODE = "at_node"  # arrived at a node on its way
    OUT_FOR_DELIVERY = "out_for_delivery"  # on its way to the buyer's door
    READY_FOR_PICKUP = "ready_for_pickup"  # on a shelf at the village point, with its code
    DELIVERED = "delivered"
    FAILED_ATTEMPT = "failed_attempt"  # nobody at the door, refused, the road closed
    RETURNED = "returned"  # back with the shop

    @property
    def final(self) -> bool:
        """Whether nothing happens to the parcel after this."""
        return self in (ParcelStatus.DELIVERED, ParcelStatus.RETURNED)


class DeliveryNode(Base):
    """A county hub, a township station or a village point, at a region."""

    __tablename__ = "delivery_nodes"
    __table_args__ = (Index("ix_delivery_nodes_region_code", "region_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[NodeKind] = mapped_column(text_enum(NodeKind, length=24))
    region_code: Mapped[str] = mapped_column(ForeignKey("regions.code"))
    name: Mapped[str] = mapped_column(String(80))
    address: Mapped[str] = mapped_column(String(200), default="")
    opening_hours: Mapped[str] = mapped_column(String(80), default="")
    phone: Mapped[str] = mapped_column(String(20), default="")
    home_delivery: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class NodeLink(Base):
    """The upstream node serves the downstream one (a hub its stations, a station its points),
    a parcel taking ``transit_minutes`` on the way as a rule. A node has one upstream node."""

    __tablename__ = "delivery_links"

    downstream_id: Mapped[int] = mapped_column(
        ForeignKey("delivery_nodes.id", ondelete="CASCADE"), primary_key=True
    )
    upstream_id: Mapped[int] = mapped_column(ForeignKey("delivery_nodes.id", ondelete="CASCADE"))
    transit_minutes: Mapped[int] = mapped_column(Integer, default=240)


class NodeStaff(Base):
    """A station account's node: what it scans is scanned there, and only parcels passing it
    are its to see."""

    __tablename__ = "delivery_node_staff"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    node_id: Mapped[int] = mapped_column(ForeignKey("delivery_nodes.id", ondelete="CASCADE"))


class Parcel(Base):
    """What one box of an order travels as; an order may go as several (a split shipment)."""

    __tablename__ = "parcels"
    __table_args__ = (
        Index("ix_parcels_order_id", "order_id"),
        Index("ix_parcels_shop_id", "shop_id"),
        Index("ix_parcels_destination_id", "destination_id"),
        Index("ix_parcels_bag_id", "bag_id"),
        # A code names one parcel on the point's shelves; once collected, it may come again.
        Index(
            "ix_parcels_waiting_pickup_code",
            "destination_id",
            "pickup_code",
            unique=True,
            sqlite_where=text("status = 'ready_for_pickup'"),
            postgresql_where=text("status = 'ready_for_pickup'"),
        ),
        CheckConstraint("pickup_failures >= 0", name="pickup_failures_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # What is printed on the label and scanned: "OL" and ten digits, not guessable from the id.
    code: Mapped[str] = mapped_column(String(24), unique=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"))
    region_code: Mapped[str] = mapped_column(ForeignKey("regions.code"))  # the buyer's
    # Our network: the last node of its route (``ParcelStop``); None with an outside carrier.
    destination_id: Mapped[int | None] = mapped_column(ForeignKey("delivery_nodes.id"))
    carrier: Mapped[str | None] = mapped_column(String(40))
    carrier_tracking: Mapped[str | None] = mapped_column(String(40))
    weight_grams: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[ParcelStatus] = mapped_column(
        text_enum(ParcelStatus, length=24), default=ParcelStatus.PENDING
    )
    status_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    node_id: Mapped[int | None] = mapped_column(ForeignKey("delivery_nodes.id"))  # last seen at
    bag_id: Mapped[int | None] = mapped_column(ForeignKey("delivery_bags.id"))
    # "2-5-2418": shelf, layer and a serial, given when it is shelved at the village point.
    pickup_code: Mapped[str | None] = mapped_column(String(16))
    pickup_failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    collected_by: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ParcelStop(Base):
    """A node on a parcel's route, in order from the shop's hub (0) to its destination."""

    __tablename__ = "parcel_stops"
    __table_args__ = (Index("ix_parcel_stops_node_id", "node_id"),)

    parcel_id: Mapped[int] = mapped_column(
        ForeignKey("parcels.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("delivery_nodes.id"))


class ParcelItem(Base):
    """Units of an order's line in a parcel."""

    __tablename__ = "parcel_items"

    parcel_id: Mapped[int] = mapped_column(
        ForeignKey("parcels.id", ondelete="CASCADE"), primary_key=True
    )
    order_item_id: Mapped[int] = mapped_column(ForeignKey("order_items.id"), primary_key=True)
    quantity: Mapped[int] = mapped_column(Integer)


class Bag(Base):
    """Parcels for one township travelling together under a seal; a scan of the bag is a scan
    of every parcel in it."""

    __tablename__ = "delivery_bags"

    id: Mapped[int] = mapped_column(primary_key=True)
    seal: Mapped[str] = mapped_column(String(24), unique=True)
    origin_id: Mapped[int] = mapped_column(ForeignKey("delivery_nodes.id"))
    destination_id: Mapped[int] = mapped_column(ForeignKey("delivery_nodes.id"))
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# A scan off its parcel's route, or whose phone's time was not believed: as SQL, the same words
# in the partial index and in the query it serves (SQLite uses such an index only then).
FLAGGED = "off_route OR claimed_at IS NOT NULL"


class TrackingEvent(Base):
    """One thing that happened to a parcel, as it was recorded; never changed or deleted.

    ``happened_at`` is when the scan was made (a phone offline sends it later, with its own
    time); ``recorded_at`` when it reached us. ``scan_id`` is the sender's own name for the
    scan, so that one sent twice is recorded once.
    """

    __tablename__ = "tracking_events"
    __table_args__ = (
        UniqueConstraint("parcel_id", "scan_id"),
        Index("ix_tracking_events_parcel_id_happened_at", "parcel_id", "happened_at"),
        Index("ix_tracking_events_node_id", "node_id"),
        # The few the operators look into (``queries.flagged_scans``), newest first.
        Index(
            "ix_tracking_events_flagged",
            "id",
            sqlite_where=text(FLAGGED),
            postgresql_where=text(FLAGGED),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    parcel_id: Mapped[int] = mapped_column(ForeignKey("parcels.id"))
    scan_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[ParcelStatus] = mapped_column(text_enum(ParcelStatus, length=24))
    node_id: Mapped[int | None] = mapped_column(ForeignKey("delivery_nodes.id"))
    bag_id: Mapped[int | None] = mapped_column(ForeignKey("delivery_bags.id"))
    reason: Mapped[str | None] = mapped_column(String(200))
    happened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # scan (a station's phone), bag (a scan of its bag), carrier (an outside carrier's
    # webhook), system (made by us: shipped, shelved), pickup (the buyer collected it).
    source: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # Scanned at a node the parcel's route does not pass: kept, and shown to operators.
    off_route: Mapped[bool] = mapped_column(Boolean, default=False)
    # The phone's own time when it was not believable (ahead of ours, or before the parcel
    # was made): ``happened_at`` is then the time it reached us.
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Notification(Base):
    """A message sent to a buyer about a parcel (its pick-up code, say), as the notifier that
    sent it recorded it. The sandbox notifier only records: operators read them in the console."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_user_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    parcel_id: Mapped[int | None] = mapped_column(ForeignKey("parcels.id"))
    channel: Mapped[str] = mapped_column(String(16))  # sandbox, sms, ...
    address: Mapped[str] = mapped_column(String(254))  # the phone number or e-mail it went to
    body: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DeliveryProof(Base):
    """A photo the point took when a parcel was collected or brought to the door, besides the
    pick-up code that proved it was the buyer's. One a parcel."""

    __tablename__ = "delivery_proofs"

    parcel_id: Mapped[int] = mapped_column(ForeignKey("parcels.id"), primary_key=True)
    photo_key: Mapped[str] = mapped_column(String(80))
    content_type: Mapped[str] = mapped_column(String(40))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
