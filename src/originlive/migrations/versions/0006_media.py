"""live sessions' stream and recording

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 23:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import originlive.db

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("live_sessions") as batch:
        batch.add_column(
            sa.Column(
                "stream_connected_at", originlive.db.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch.add_column(
            sa.Column("stream_dropped_at", originlive.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch.add_column(sa.Column("recording_ms", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("live_sessions") as batch:
        batch.drop_column("recording_ms")
        batch.drop_column("stream_dropped_at")
        batch.drop_column("stream_connected_at")
