"""payouts: transfers of available money, and their changes of state

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-08 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import originlive.db

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = sa.text("status = 'requested'")


def _status() -> sa.Enum:
    return sa.Enum("requested", "paid", "failed", name="payoutstatus", native_enum=False, length=16)


def upgrade() -> None:
    op.create_table(
        "payouts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("provider", sa.String(length=24), nullable=False),
        sa.Column("status", _status(), nullable=False),
        sa.Column("provider_ref", sa.String(length=64), nullable=True),
        sa.Column("idempotency_key", sa.String(length=120), nullable=False),
        sa.Column("created_at", originlive.db.UTCDateTime(), nullable=False),
        sa.Column("settled_at", originlive.db.UTCDateTime(), nullable=True),
        sa.CheckConstraint("amount_fen > 0", name=op.f("ck_payouts_amount_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payouts")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_payouts_idempotency_key")),
    )
    op.create_index("ix_payouts_created_at", "payouts", ["created_at"], unique=False)
    op.create_index(
        "uq_payouts_open_account",
        "payouts",
        ["account"],
        unique=True,
        sqlite_where=OPEN,
        postgresql_where=OPEN,
    )
    op.create_table(
        "payout_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("payout_id", sa.Integer(), nullable=False),
        sa.Column("from_status", _status(), nullable=True),
        sa.Column("to_status", _status(), nullable=False),
        sa.Column("provider_event_id", sa.String(length=64), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("created_at", originlive.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_id"],
            ["users.id"],
            name=op.f("fk_payout_events_actor_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["payout_id"], ["payouts.id"], name=op.f("fk_payout_events_payout_id_payouts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout_events")),
        sa.UniqueConstraint("provider_event_id", name=op.f("uq_payout_events_provider_event_id")),
    )
    op.create_index("ix_payout_events_payout_id", "payout_events", ["payout_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_payout_events_payout_id", table_name="payout_events")
    op.drop_table("payout_events")
    op.drop_index("uq_payouts_open_account", table_name="payouts")
    op.drop_index("ix_payouts_created_at", table_name="payouts")
    op.drop_table("payouts")
