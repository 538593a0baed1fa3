"""dataset options hash and stats

Uploads of the same bytes with the same parse options are one dataset: a unique index on
(sha256, options_hash) replaces the plain sha256 index. Rows stored before this revision keep a
NULL options_hash (their parse options were not recorded), and NULLs never collide in a unique
index on SQLite or PostgreSQL, so they are simply never matched as duplicates. `stats` holds the
statistics computed at ingest; NULL for older rows, which are summarised on first request.

Revision ID: 223dec21e28b
Revises: 9ed4cf729c2d
Create Date: 2026-11-26 19:29:50.341612
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "223dec21e28b"
down_revision: str | None = "9ed4cf729c2d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("options_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("stats", sa.JSON(), nullable=True))
        batch_op.drop_index(batch_op.f("ix_datasets_sha256"))
        batch_op.create_index("ix_datasets_sha256_options_hash", ["sha256", "options_hash"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.drop_index("ix_datasets_sha256_options_hash")
        batch_op.create_index(batch_op.f("ix_datasets_sha256"), ["sha256"], unique=False)
        batch_op.drop_column("stats")
        batch_op.drop_column("options_hash")
