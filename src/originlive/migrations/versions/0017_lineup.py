"""line-up: anchors' own sessions (no shop), and the products they put into them

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-08 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import originlive.db

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("live_sessions", schema=None) as batch_op:
        batch_op.alter_column("shop_id", existing_type=sa.Integer(), nullable=True)
    op.create_table(
        "lineup_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("sku_id", sa.Integer(), nullable=False),
        sa.Column("price_cents", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("per_buyer_limit", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "proposed",
                "approved",
                "rejected",
                name="lineupstatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("offer_id", sa.Integer(), nullable=True),
        sa.Column("rate_bp", sa.Integer(), nullable=True),
        sa.Column("created_at", originlive.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_at", originlive.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        sa.CheckConstraint("price_cents > 0", name=op.f("ck_lineup_items_price_positive")),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_lineup_items_quantity_positive")),
        sa.CheckConstraint("per_buyer_limit > 0", name=op.f("ck_lineup_items_limit_positive")),
        sa.CheckConstraint(
            "rate_bp >= 0 AND rate_bp <= 10000", name=op.f("ck_lineup_items_rate_within_bounds")
        ),
        sa.ForeignKeyConstraint(
            ["decided_by"],
            ["users.id"],
            name=op.f("fk_lineup_items_decided_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["offer_id"],
            ["flash_offers.id"],
            name=op.f("fk_lineup_items_offer_id_flash_offers"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["commission_plans.id"],
            name=op.f("fk_lineup_items_plan_id_commission_plans"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["live_sessions.id"],
            name=op.f("fk_lineup_items_session_id_live_sessions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sku_id"], ["skus.id"], name=op.f("fk_lineup_items_sku_id_skus"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lineup_items")),
    )
    with op.batch_alter_table("lineup_items", schema=None) as batch_op:
        batch_op.create_index("ix_lineup_items_plan_id_status", ["plan_id", "status"], unique=False)
        batch_op.create_index("ix_lineup_items_session_id", ["session_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("lineup_items", schema=None) as batch_op:
        batch_op.drop_index("ix_lineup_items_session_id")
        batch_op.drop_index("ix_lineup_items_plan_id_status")
    op.drop_table("lineup_items")
    # An anchor's own session has no shop to fall back on, and comments, pins, offers and
    # orders point at it: going down would lose them, so it is refused while any exists.
    found = op.get_bind().scalar(
        sa.text("SELECT count(*) FROM live_sessions WHERE shop_id IS NULL")
    )
    if found:
        raise RuntimeError(f"{found} anchors' own sessions have no shop: cannot go below 0017.")
    with op.batch_alter_table("live_sessions", schema=None) as batch_op:
        batch_op.alter_column("shop_id", existing_type=sa.Integer(), nullable=False)
