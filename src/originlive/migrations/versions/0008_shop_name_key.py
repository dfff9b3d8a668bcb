"""shops' names unique as a person sees them (issue 15, defect 8)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 15:30:00

Each shop gets ``name_key`` (``originlive.text.shop_name_key``: NFKC, case folded, invisible
characters dropped, whitespace runs made one space) under a unique index. Shops whose names
already looked alike keep their names; the first (lowest id) keeps the plain key, each later
one's key gets "  #<id>" (two spaces, which no real key holds) and a warning is logged, so
the migration never fails on them. Renaming such a shop to anything not taken frees it.

On SQLite nothing here copies the shops table: the column is added NOT NULL with a default
and the index made in place. (Copying it would drop the old table, and with foreign keys on,
SQLite's implicit delete of a dropped table's rows cascades into products.)
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from originlive.text import shop_name_key

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")

shops = sa.table(
    "shops", sa.column("id", sa.Integer), sa.column("name", sa.String), sa.column("name_key")
)


def upgrade() -> None:
    with op.batch_alter_table("shops") as batch:
        batch.add_column(sa.Column("name_key", sa.Text(), server_default="", nullable=False))
    connection = op.get_bind()
    taken: set[str] = set()
    rows = connection.execute(sa.select(shops.c.id, shops.c.name).order_by(shops.c.id))
    for shop_id, name in rows.all():
        key = shop_name_key(name)
        if key in taken:
            log.warning("shop %d's name looks like an older shop's; its key is suffixed", shop_id)
            key = f"{key}  #{shop_id}"
        taken.add(key)
        connection.execute(shops.update().where(shops.c.id == shop_id).values(name_key=key))
    with op.batch_alter_table("shops") as batch:
        batch.create_index("ix_shops_name_key", ["name_key"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("shops") as batch:
        batch.drop_index("ix_shops_name_key")
    # Not in batch mode: SQLite (3.35 and later) drops a column in place, without the copy.
    op.drop_column("shops", "name_key")
