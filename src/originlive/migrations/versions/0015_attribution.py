"""attribution: who sold an offer and each order line (anchor, session, plan, rate)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-08 00:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("flash_offers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("anchor_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("plan_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("commission_bp", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_flash_offers_anchor_id_users"), "users", ["anchor_id"], ["id"]
        )
        batch_op.create_check_constraint(
            batch_op.f("ck_flash_offers_commission_within_whole"),
            "commission_bp BETWEEN 0 AND 10000",
        )
    with op.batch_alter_table("order_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("live_session_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("anchor_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("plan_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("commission_bp", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_order_items_anchor_id_users"), "users", ["anchor_id"], ["id"]
        )
        batch_op.create_index("ix_order_items_anchor_id", ["anchor_id"], unique=False)
        batch_op.create_index("ix_order_items_live_session_id", ["live_session_id"], unique=False)
    # Lines sold in a session before attribution existed: their session and its anchor.
    op.execute(
        "UPDATE flash_offers SET anchor_id = (SELECT anchor_id FROM live_sessions"
        " WHERE live_sessions.id = flash_offers.live_session_id)"
        " WHERE live_session_id IS NOT NULL"
    )
    op.execute(
        "UPDATE order_items SET live_session_id = (SELECT live_session_id FROM flash_offers"
        " WHERE flash_offers.id = order_items.offer_id), anchor_id = (SELECT anchor_id"
        " FROM flash_offers WHERE flash_offers.id = order_items.offer_id)"
        " WHERE offer_id IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("order_items", schema=None) as batch_op:
        batch_op.drop_index("ix_order_items_live_session_id")
        batch_op.drop_index("ix_order_items_anchor_id")
        batch_op.drop_constraint(batch_op.f("fk_order_items_anchor_id_users"), type_="foreignkey")
        batch_op.drop_column("commission_bp")
        batch_op.drop_column("plan_id")
        batch_op.drop_column("anchor_id")
        batch_op.drop_column("live_session_id")
    with op.batch_alter_table("flash_offers", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("ck_flash_offers_commission_within_whole"), type_="check"
        )
        batch_op.drop_constraint(batch_op.f("fk_flash_offers_anchor_id_users"), type_="foreignkey")
        batch_op.drop_column("commission_bp")
        batch_op.drop_column("plan_id")
        batch_op.drop_column("anchor_id")
