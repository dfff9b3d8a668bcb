"""flagged scans index

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 22:58:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tracking_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_tracking_events_flagged",
            ["id"],
            unique=False,
            sqlite_where=sa.text("off_route OR claimed_at IS NOT NULL"),
            postgresql_where=sa.text("off_route OR claimed_at IS NOT NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("tracking_events", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_tracking_events_flagged",
            sqlite_where=sa.text("off_route OR claimed_at IS NOT NULL"),
            postgresql_where=sa.text("off_route OR claimed_at IS NOT NULL"),
        )
