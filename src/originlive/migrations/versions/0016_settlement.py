"""settlement: shops' split rules, and journal entries by reference

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-08 00:55:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import originlive.db

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "split_rules",
        sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("platform_fee_bp", sa.Integer(), nullable=True),
        sa.Column("station_fee_fen", sa.Integer(), nullable=True),
        sa.Column("coop_share_bp", sa.Integer(), nullable=True),
        sa.Column("coop_shop_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", originlive.db.UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "platform_fee_bp BETWEEN 0 AND 10000", name=op.f("ck_split_rules_fee_within_whole")
        ),
        sa.CheckConstraint(
            "coop_share_bp BETWEEN 0 AND 10000", name=op.f("ck_split_rules_share_within_whole")
        ),
        sa.CheckConstraint(
            "station_fee_fen >= 0", name=op.f("ck_split_rules_station_fee_not_negative")
        ),
        sa.ForeignKeyConstraint(
            ["coop_shop_id"], ["shops.id"], name=op.f("fk_split_rules_coop_shop_id_shops")
        ),
        sa.ForeignKeyConstraint(
            ["shop_id"], ["shops.id"], name=op.f("fk_split_rules_shop_id_shops")
        ),
        sa.PrimaryKeyConstraint("shop_id", name=op.f("pk_split_rules")),
    )
    op.create_index("ix_journal_entries_ref", "journal_entries", ["ref"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_journal_entries_ref", table_name="journal_entries")
    op.drop_table("split_rules")
