"""collection runs: growers booked, weighed at their points, received at the hub

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 21:34:28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import originlive.db

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "collection_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("sku_id", sa.Integer(), nullable=False),
        sa.Column("hub_id", sa.Integer(), nullable=False),
        sa.Column("collect_on", sa.Date(), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=False),
        sa.Column("tolerance_percent", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "booked",
                "collecting",
                "in_transit",
                "received",
                "closed",
                name="runstatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("booked_by_id", sa.Integer(), nullable=False),
        sa.Column("created_at", originlive.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("dispatched_at", originlive.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("received_at", originlive.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("closed_at", originlive.db.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "tolerance_percent >= 0 AND tolerance_percent <= 50",
            name=op.f("ck_collection_runs_tolerance_percent_range"),
        ),
        sa.ForeignKeyConstraint(
            ["booked_by_id"], ["users.id"], name=op.f("fk_collection_runs_booked_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["hub_id"], ["delivery_nodes.id"], name=op.f("fk_collection_runs_hub_id_delivery_nodes")
        ),
        sa.ForeignKeyConstraint(
            ["shop_id"], ["shops.id"], name=op.f("fk_collection_runs_shop_id_shops")
        ),
        sa.ForeignKeyConstraint(
            ["sku_id"], ["skus.id"], name=op.f("fk_collection_runs_sku_id_skus")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collection_runs")),
    )
    with op.batch_alter_table("collection_runs", schema=None) as batch_op:
        batch_op.create_index("ix_collection_runs_hub_id", ["hub_id"], unique=False)
        batch_op.create_index("ix_collection_runs_shop_id", ["shop_id"], unique=False)

    op.create_table(
        "collection_growers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("point_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("expected_grams", sa.Integer(), nullable=False),
        sa.Column("weighed_grams", sa.Integer(), nullable=True),
        sa.Column(
            "grade",
            sa.Enum("A", "B", "C", "rejected", name="grade", native_enum=False, length=16),
            nullable=True,
        ),
        sa.Column("weighed_at", originlive.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("weighed_by_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "(weighed_grams IS NULL AND grade IS NULL AND weighed_at IS NULL) OR (weighed_grams IS NOT NULL AND grade IS NOT NULL AND weighed_at IS NOT NULL)",
            name=op.f("ck_collection_growers_weighed_whole"),
        ),
        sa.CheckConstraint(
            "expected_grams > 0", name=op.f("ck_collection_growers_expected_grams_positive")
        ),
        sa.CheckConstraint(
            "weighed_grams IS NULL OR weighed_grams > 0",
            name=op.f("ck_collection_growers_weighed_positive"),
        ),
        sa.ForeignKeyConstraint(
            ["point_id"],
            ["delivery_nodes.id"],
            name=op.f("fk_collection_growers_point_id_delivery_nodes"),
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["collection_runs.id"],
            name=op.f("fk_collection_growers_run_id_collection_runs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["weighed_by_id"], ["users.id"], name=op.f("fk_collection_growers_weighed_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collection_growers")),
    )
    with op.batch_alter_table("collection_growers", schema=None) as batch_op:
        batch_op.create_index("ix_collection_growers_point_id", ["point_id"], unique=False)
        batch_op.create_index("ix_collection_growers_run_id", ["run_id"], unique=False)

    op.create_table(
        "collection_receipts",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("point_id", sa.Integer(), nullable=False),
        sa.Column("weight_grams", sa.Integer(), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=False),
        sa.Column("received_at", originlive.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("received_by_id", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "weight_grams >= 0", name=op.f("ck_collection_receipts_weight_not_negative")
        ),
        sa.ForeignKeyConstraint(
            ["point_id"],
            ["delivery_nodes.id"],
            name=op.f("fk_collection_receipts_point_id_delivery_nodes"),
        ),
        sa.ForeignKeyConstraint(
            ["received_by_id"],
            ["users.id"],
            name=op.f("fk_collection_receipts_received_by_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["collection_runs.id"],
            name=op.f("fk_collection_receipts_run_id_collection_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "point_id", name=op.f("pk_collection_receipts")),
    )


def downgrade() -> None:
    op.drop_table("collection_receipts")
    with op.batch_alter_table("collection_growers", schema=None) as batch_op:
        batch_op.drop_index("ix_collection_growers_run_id")
        batch_op.drop_index("ix_collection_growers_point_id")

    op.drop_table("collection_growers")
    with op.batch_alter_table("collection_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_collection_runs_shop_id")
        batch_op.drop_index("ix_collection_runs_hub_id")

    op.drop_table("collection_runs")
