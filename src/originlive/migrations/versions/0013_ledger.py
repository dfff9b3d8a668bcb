"""ledger

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 23:51:35

Besides the tables, the database keeps the ledger's two rules itself (invariant 9):

- entries and postings are never updated or deleted: a trigger refuses it on both backends
  (and TRUNCATE on PostgreSQL);
- every entry's postings sum to zero, and an entry has postings: on PostgreSQL a constraint
  trigger deferred to the commit checks each entry written in the transaction, since the
  entry and its postings are inserted one after another. SQLite has no deferred triggers;
  there ``ledger.service.post`` refuses an unbalanced entry before writing it, in the same
  transaction, and ``originlive ledger verify`` checks the whole book.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import originlive.db

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("journal_entries", "postings")

_POSTGRES_UP = (
    """
    CREATE FUNCTION ledger_check_entry(entry bigint) RETURNS void LANGUAGE plpgsql AS $$
    DECLARE
        total numeric;
        legs bigint;
    BEGIN
        SELECT coalesce(sum(amount_fen), 0), count(*) INTO total, legs
        FROM postings WHERE entry_id = entry;
        IF legs = 0 THEN
            RAISE EXCEPTION 'ledger entry % has no postings', entry
                USING ERRCODE = 'check_violation';
        END IF;
        IF total <> 0 THEN
            RAISE EXCEPTION 'ledger entry % does not sum to zero (it sums to % fen)', entry, total
                USING ERRCODE = 'check_violation';
        END IF;
    END $$
    """,
    """
    CREATE FUNCTION ledger_entry_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM ledger_check_entry(NEW.id);
        RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION ledger_posting_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM ledger_check_entry(NEW.entry_id);
        RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '% rows are never changed or removed; post a reversal', TG_TABLE_NAME
            USING ERRCODE = 'integrity_constraint_violation';
    END $$
    """,
    # An entry checked at the commit catches an entry without postings; a posting checked
    # there catches one added to an entry of an earlier transaction.
    """
    CREATE CONSTRAINT TRIGGER journal_entries_balanced AFTER INSERT ON journal_entries
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_entry_balanced()
    """,
    """
    CREATE CONSTRAINT TRIGGER postings_balanced AFTER INSERT ON postings
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_posting_balanced()
    """,
    *(
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}"
        " FOR EACH ROW EXECUTE FUNCTION ledger_append_only()"
        for table in _TABLES
    ),
    *(
        f"CREATE TRIGGER {table}_not_truncated BEFORE TRUNCATE ON {table}"
        " FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only()"
        for table in _TABLES
    ),
)

_POSTGRES_DOWN = (
    *(f"DROP TRIGGER {table}_not_truncated ON {table}" for table in _TABLES),
    *(f"DROP TRIGGER {table}_append_only ON {table}" for table in _TABLES),
    "DROP TRIGGER postings_balanced ON postings",
    "DROP TRIGGER journal_entries_balanced ON journal_entries",
    "DROP FUNCTION ledger_append_only()",
    "DROP FUNCTION ledger_posting_balanced()",
    "DROP FUNCTION ledger_entry_balanced()",
    "DROP FUNCTION ledger_check_entry(bigint)",
)

_SQLITE_UP = tuple(
    f"CREATE TRIGGER {table}_no_{verb} BEFORE {verb.upper()} ON {table} BEGIN"
    f" SELECT RAISE(ABORT, '{table} rows are never changed or removed; post a reversal'); END"
    for table in _TABLES
    for verb in ("update", "delete")
)

_SQLITE_DOWN = tuple(
    f"DROP TRIGGER {table}_no_{verb}" for table in _TABLES for verb in ("update", "delete")
)


def upgrade() -> None:
    op.create_table(
        "account_totals",
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column(
            "span",
            sa.Enum("day", "hour", name="span", native_enum=False, length=8),
            nullable=False,
        ),
        sa.Column("starts", sa.BigInteger(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "account", "currency", "span", "starts", name=op.f("pk_account_totals")
        ),
    )
    op.create_table(
        "journal_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "capture",
                "release",
                "refund",
                "commission",
                "payout",
                "reversal",
                "adjustment",
                name="entrykind",
                native_enum=False,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("ref", sa.String(length=80), nullable=False),
        sa.Column("idempotency_key", sa.String(length=120), nullable=False),
        sa.Column("reverses_id", sa.Integer(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("at", originlive.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", originlive.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["reverses_id"],
            ["journal_entries.id"],
            name=op.f("fk_journal_entries_reverses_id_journal_entries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journal_entries")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_journal_entries_idempotency_key")),
        sa.UniqueConstraint("reverses_id", name=op.f("uq_journal_entries_reverses_id")),
    )
    op.create_table(
        "postings",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("at", originlive.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["journal_entries.id"], name=op.f("fk_postings_entry_id_journal_entries")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_postings")),
    )
    with op.batch_alter_table("postings", schema=None) as batch_op:
        batch_op.create_index(
            "ix_postings_at", ["at", "id", "account", "currency", "amount_fen"], unique=False
        )
        batch_op.create_index("ix_postings_entry_id", ["entry_id"], unique=False)

    dialect = op.get_bind().dialect.name
    for statement in _POSTGRES_UP if dialect == "postgresql" else _SQLITE_UP:
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in _POSTGRES_DOWN if dialect == "postgresql" else _SQLITE_DOWN:
        op.execute(statement)
    with op.batch_alter_table("postings", schema=None) as batch_op:
        batch_op.drop_index("ix_postings_entry_id")
        batch_op.drop_index("ix_postings_at")

    op.drop_table("postings")
    op.drop_table("journal_entries")
    op.drop_table("account_totals")
