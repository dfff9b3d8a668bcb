"""delivery network, parcels and tracking

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 21:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import originlive.db

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "delivery_nodes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "county_hub",
                "township_station",
                "village_point",
                name="nodekind",
                native_enum=False,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("region_code", sa.String(length=12), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("address", sa.String(length=200), nullable=False),
        sa.Column("opening_hours", sa.String(length=80), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("home_delivery", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", originlive.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["region_code"], ["regions.code"], name=op.f("fk_delivery_nodes_region_code_regions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_nodes")),
    )
    with op.batch_alter_table("delivery_nodes", schema=None) as batch_op:
        batch_op.create_index("ix_delivery_nodes_region_code", ["region_code"], unique=False)

    op.create_table(
        "delivery_bags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seal", sa.String(length=24), nullable=False),
        sa.Column("origin_id", sa.Integer(), nullable=False),
        sa.Column("destination_id", sa.Integer(), nullable=False),
        sa.Column("opened_at", originlive.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", originlive.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["destination_id"],
            ["delivery_nodes.id"],
            name=op.f("fk_delivery_bags_destination_id_delivery_nodes"),
        ),
        sa.ForeignKeyConstraint(
            ["origin_id"],
            ["delivery_nodes.id"],
            name=op.f("fk_delivery_bags_origin_id_delivery_nodes"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_bags")),
        sa.UniqueConstraint("seal", name=op.f("uq_delivery_bags_seal")),
    )
    op.create_table(
        "delivery_links",
        sa.Column("downstream_id", sa.Integer(), nullable=False),
        sa.Column("upstream_id", sa.Integer(), nullable=False),
        sa.Column("transit_minutes", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["downstream_id"],
            ["delivery_nodes.id"],
            name=op.f("fk_delivery_links_downstream_id_delivery_nodes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["upstream_id"],
            ["delivery_nodes.id"],
            name=op.f("fk_delivery_links_upstream_id_delivery_nodes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("downstream_id", name=op.f("pk_delivery_links")),
    )
    op.create_table(
        "delivery_node_staff",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["node_id"],
            ["delivery_nodes.id"],
            name=op.f("fk_delivery_node_staff_node_id_delivery_nodes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_delivery_node_staff_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_delivery_node_staff")),
    )
    op.create_table(
        "parcels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=24), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("region_code", sa.String(length=12), nullable=False),
        sa.Column("destination_id", sa.Integer(), nullable=True),
        sa.Column("carrier", sa.String(length=40), nullable=True),
        sa.Column("carrier_tracking", sa.String(length=40), nullable=True),
        sa.Column("weight_grams", sa.Integer(), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "picked_up",
                "in_transit",
                "at_node",
                "out_for_delivery",
                "ready_for_pickup",
                "delivered",
                "failed_attempt",
                "returned",
                name="parcelstatus",
                native_enum=False,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("status_at", originlive.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=True),
        sa.Column("bag_id", sa.Integer(), nullable=True),
        sa.Column("pickup_code", sa.String(length=16), nullable=True),
        sa.Column("pickup_failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", originlive.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("collected_by", sa.String(length=40), nullable=True),
        sa.Column("created_at", originlive.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "pickup_failures >= 0", name=op.f("ck_parcels_pickup_failures_not_negative")
        ),
        sa.ForeignKeyConstraint(
            ["bag_id"], ["delivery_bags.id"], name=op.f("fk_parcels_bag_id_delivery_bags")
        ),
        sa.ForeignKeyConstraint(
            ["destination_id"],
            ["delivery_nodes.id"],
            name=op.f("fk_parcels_destination_id_delivery_nodes"),
        ),
        sa.ForeignKeyConstraint(
            ["node_id"], ["delivery_nodes.id"], name=op.f("fk_parcels_node_id_delivery_nodes")
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_parcels_order_id_orders")
        ),
        sa.ForeignKeyConstraint(
            ["region_code"], ["regions.code"], name=op.f("fk_parcels_region_code_regions")
        ),
        sa.ForeignKeyConstraint(["shop_id"], ["shops.id"], name=op.f("fk_parcels_shop_id_shops")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_parcels")),
        sa.UniqueConstraint("code", name=op.f("uq_parcels_code")),
    )
    with op.batch_alter_table("parcels", schema=None) as batch_op:
        batch_op.create_index("ix_parcels_bag_id", ["bag_id"], unique=False)
        batch_op.create_index("ix_parcels_destination_id", ["destination_id"], unique=False)
        batch_op.create_index("ix_parcels_order_id", ["order_id"], unique=False)
        batch_op.create_index("ix_parcels_shop_id", ["shop_id"], unique=False)
        batch_op.create_index(
            "ix_parcels_waiting_pickup_code",
            ["destination_id", "pickup_code"],
            unique=True,
            sqlite_where=sa.text("status = 'ready_for_pickup'"),
            postgresql_where=sa.text("status = 'ready_for_pickup'"),
        )

    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("parcel_id", sa.Integer(), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("address", sa.String(length=254), nullable=False),
        sa.Column("body", sa.String(length=500), nullable=False),
        sa.Column("created_at", originlive.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["parcel_id"], ["parcels.id"], name=op.f("fk_notifications_parcel_id_parcels")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_notifications_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index("ix_notifications_user_id", ["user_id"], unique=False)

    op.create_table(
        "parcel_stops",
        sa.Column("parcel_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["node_id"], ["delivery_nodes.id"], name=op.f("fk_parcel_stops_node_id_delivery_nodes")
        ),
        sa.ForeignKeyConstraint(
            ["parcel_id"],
            ["parcels.id"],
            name=op.f("fk_parcel_stops_parcel_id_parcels"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("parcel_id", "seq", name=op.f("pk_parcel_stops")),
    )
    with op.batch_alter_table("parcel_stops", schema=None) as batch_op:
        batch_op.create_index("ix_parcel_stops_node_id", ["node_id"], unique=False)

    op.create_table(
        "tracking_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("parcel_id", sa.Integer(), nullable=False),
        sa.Column("scan_id", sa.String(length=64), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "picked_up",
                "in_transit",
                "at_node",
                "out_for_delivery",
                "ready_for_pickup",
                "delivered",
                "failed_attempt",
                "returned",
                name="parcelstatus",
                native_enum=False,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("node_id", sa.Integer(), nullable=True),
        sa.Column("bag_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("happened_at", originlive.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", originlive.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("off_route", sa.Boolean(), nullable=False),
        sa.Column("claimed_at", originlive.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["actor_id"], ["users.id"], name=op.f("fk_tracking_events_actor_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["bag_id"], ["delivery_bags.id"], name=op.f("fk_tracking_events_bag_id_delivery_bags")
        ),
        sa.ForeignKeyConstraint(
            ["node_id"],
            ["delivery_nodes.id"],
            name=op.f("fk_tracking_events_node_id_delivery_nodes"),
        ),
        sa.ForeignKeyConstraint(
            ["parcel_id"], ["parcels.id"], name=op.f("fk_tracking_events_parcel_id_parcels")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracking_events")),
        sa.UniqueConstraint(
            "parcel_id", "scan_id", name=op.f("uq_tracking_events_parcel_id_scan_id")
        ),
    )
    with op.batch_alter_table("tracking_events", schema=None) as batch_op:
        batch_op.create_index("ix_tracking_events_node_id", ["node_id"], unique=False)
        batch_op.create_index(
            "ix_tracking_events_parcel_id_happened_at", ["parcel_id", "happened_at"], unique=False
        )

    op.create_table(
        "parcel_items",
        sa.Column("parcel_id", sa.Integer(), nullable=False),
        sa.Column("order_item_id", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_item_id"],
            ["order_items.id"],
            name=op.f("fk_parcel_items_order_item_id_order_items"),
        ),
        sa.ForeignKeyConstraint(
            ["parcel_id"],
            ["parcels.id"],
            name=op.f("fk_parcel_items_parcel_id_parcels"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("parcel_id", "order_item_id", name=op.f("pk_parcel_items")),
    )


def downgrade() -> None:
    op.drop_table("parcel_items")
    with op.batch_alter_table("tracking_events", schema=None) as batch_op:
        batch_op.drop_index("ix_tracking_events_parcel_id_happened_at")
        batch_op.drop_index("ix_tracking_events_node_id")

    op.drop_table("tracking_events")
    with op.batch_alter_table("parcel_stops", schema=None) as batch_op:
        batch_op.drop_index("ix_parcel_stops_node_id")

    op.drop_table("parcel_stops")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_notifications_user_id")

    op.drop_table("notifications")
    with op.batch_alter_table("parcels", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_parcels_waiting_pickup_code",
            sqlite_where=sa.text("status = 'ready_for_pickup'"),
            postgresql_where=sa.text("status = 'ready_for_pickup'"),
        )
        batch_op.drop_index("ix_parcels_shop_id")
        batch_op.drop_index("ix_parcels_order_id")
        batch_op.drop_index("ix_parcels_destination_id")
        batch_op.drop_index("ix_parcels_bag_id")

    op.drop_table("parcels")
    op.drop_table("delivery_node_staff")
    op.drop_table("delivery_links")
    op.drop_table("delivery_bags")
    with op.batch_alter_table("delivery_nodes", schema=None) as batch_op:
        batch_op.drop_index("ix_delivery_nodes_region_code")

    op.drop_table("delivery_nodes")
