"""proof of delivery

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 22:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import originlive.db

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "delivery_proofs",
        sa.Column("parcel_id", sa.Integer(), nullable=False),
        sa.Column("photo_key", sa.String(length=80), nullable=False),
        sa.Column("content_type", sa.String(length=40), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("recorded_at", originlive.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_id"],
            ["users.id"],
            name=op.f("fk_delivery_proofs_actor_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["parcel_id"], ["parcels.id"], name=op.f("fk_delivery_proofs_parcel_id_parcels")
        ),
        sa.PrimaryKeyConstraint("parcel_id", name=op.f("pk_delivery_proofs")),
    )


def downgrade() -> None:
    op.drop_table("delivery_proofs")
