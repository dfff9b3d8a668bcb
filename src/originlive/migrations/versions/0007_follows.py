"""buyers following shops

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 09:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import originlive.db

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "shop_follows",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("created_at", originlive.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["shop_id"],
            ["shops.id"],
            name=op.f("fk_shop_follows_shop_id_shops"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_shop_follows_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "shop_id", name=op.f("pk_shop_follows")),
    )
    with op.batch_alter_table("shop_follows") as batch:
        batch.create_index("ix_shop_follows_shop_id", ["shop_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("shop_follows") as batch:
        batch.drop_index("ix_shop_follows_shop_id")
    op.drop_table("shop_follows")
