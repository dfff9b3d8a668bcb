"""selection library: commission plans, their products and anchors, members, samples

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 23:54:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import originlive.db

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "commission_plans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("open", "targeted", name="plankind", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column(
            "scope",
            sa.Enum("shop", "group", "product", name="planscope", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("rate_bp", sa.Integer(), nullable=False),
        sa.Column("starts_at", originlive.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ends_at", originlive.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("samples_allowed", sa.Boolean(), nullable=False),
        sa.Column("sample_cost_from_commission", sa.Boolean(), nullable=False),
        sa.Column("auto_approve", sa.Boolean(), nullable=False),
        sa.Column(
            "status",
            sa.Enum("active", "ended", name="planstatus", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("created_at", originlive.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", originlive.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "ends_at IS NULL OR ends_at > starts_at",
            name=op.f("ck_commission_plans_window_not_empty"),
        ),
        sa.CheckConstraint(
            "rate_bp >= 0 AND rate_bp <= 10000", name=op.f("ck_commission_plans_rate_within_bounds")
        ),
        sa.ForeignKeyConstraint(
            ["shop_id"],
            ["shops.id"],
            name=op.f("fk_commission_plans_shop_id_shops"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_commission_plans")),
    )
    with op.batch_alter_table("commission_plans", schema=None) as batch_op:
        batch_op.create_index(
            "ix_commission_plans_shop_id_status", ["shop_id", "status"], unique=False
        )

    op.create_table(
        "commission_plan_anchors",
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("anchor_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["anchor_id"],
            ["users.id"],
            name=op.f("fk_commission_plan_anchors_anchor_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["commission_plans.id"],
            name=op.f("fk_commission_plan_anchors_plan_id_commission_plans"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("plan_id", "anchor_id", name=op.f("pk_commission_plan_anchors")),
    )
    with op.batch_alter_table("commission_plan_anchors", schema=None) as batch_op:
        batch_op.create_index("ix_commission_plan_anchors_anchor_id", ["anchor_id"], unique=False)

    op.create_table(
        "commission_plan_products",
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["commission_plans.id"],
            name=op.f("fk_commission_plan_products_plan_id_commission_plans"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_commission_plan_products_product_id_products"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("plan_id", "product_id", name=op.f("pk_commission_plan_products")),
    )
    with op.batch_alter_table("commission_plan_products", schema=None) as batch_op:
        batch_op.create_index(
            "ix_commission_plan_products_product_id", ["product_id"], unique=False
        )

    op.create_table(
        "plan_memberships",
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("anchor_id", sa.Integer(), nullable=False),
        sa.Column("joined_at", originlive.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["anchor_id"],
            ["users.id"],
            name=op.f("fk_plan_memberships_anchor_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["commission_plans.id"],
            name=op.f("fk_plan_memberships_plan_id_commission_plans"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("plan_id", "anchor_id", name=op.f("pk_plan_memberships")),
    )
    with op.batch_alter_table("plan_memberships", schema=None) as batch_op:
        batch_op.create_index("ix_plan_memberships_anchor_id", ["anchor_id"], unique=False)

    op.create_table(
        "sample_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("anchor_id", sa.Integer(), nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("sku_id", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "requested",
                "approved",
                "rejected",
                "shipped",
                name="samplestatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("ship_name", sa.String(length=40), nullable=False),
        sa.Column("ship_phone", sa.String(length=20), nullable=False),
        sa.Column("ship_region_code", sa.String(length=12), nullable=False),
        sa.Column("ship_detail", sa.String(length=200), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.Column("reject_reason", sa.String(length=500), nullable=True),
        sa.Column("order_id", sa.Integer(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=100), nullable=True),
        sa.Column("created_at", originlive.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_at", originlive.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["anchor_id"],
            ["users.id"],
            name=op.f("fk_sample_requests_anchor_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_sample_requests_order_id_orders"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["commission_plans.id"],
            name=op.f("fk_sample_requests_plan_id_commission_plans"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_sample_requests_product_id_products"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["ship_region_code"],
            ["regions.code"],
            name=op.f("fk_sample_requests_ship_region_code_regions"),
        ),
        sa.ForeignKeyConstraint(
            ["shop_id"],
            ["shops.id"],
            name=op.f("fk_sample_requests_shop_id_shops"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sku_id"], ["skus.id"], name=op.f("fk_sample_requests_sku_id_skus"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sample_requests")),
        sa.UniqueConstraint(
            "anchor_id",
            "idempotency_key",
            name=op.f("uq_sample_requests_anchor_id_idempotency_key"),
        ),
    )
    with op.batch_alter_table("sample_requests", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sample_requests_open",
            ["anchor_id", "product_id"],
            unique=True,
            sqlite_where=sa.text("status IN ('requested', 'approved')"),
            postgresql_where=sa.text("status IN ('requested', 'approved')"),
        )
        batch_op.create_index(
            "ix_sample_requests_shop_id_status", ["shop_id", "status"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("sample_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_sample_requests_shop_id_status")
        batch_op.drop_index(
            "ix_sample_requests_open",
            sqlite_where=sa.text("status IN ('requested', 'approved')"),
            postgresql_where=sa.text("status IN ('requested', 'approved')"),
        )

    op.drop_table("sample_requests")
    with op.batch_alter_table("plan_memberships", schema=None) as batch_op:
        batch_op.drop_index("ix_plan_memberships_anchor_id")

    op.drop_table("plan_memberships")
    with op.batch_alter_table("commission_plan_products", schema=None) as batch_op:
        batch_op.drop_index("ix_commission_plan_products_product_id")

    op.drop_table("commission_plan_products")
    with op.batch_alter_table("commission_plan_anchors", schema=None) as batch_op:
        batch_op.drop_index("ix_commission_plan_anchors_anchor_id")

    op.drop_table("commission_plan_anchors")
    with op.batch_alter_table("commission_plans", schema=None) as batch_op:
        batch_op.drop_index("ix_commission_plans_shop_id_status")

    op.drop_table("commission_plans")
