"""auth: API keys, and a project on every dataset, job and model version

Adds `api_keys` (only the SHA-256 of a key is stored). Adds `project` (default "default" for
existing rows) to datasets, jobs and model_versions. Dataset deduplication and Idempotency-Keys
become per project: the unique index on (sha256, options_hash) becomes one on (project, sha256,
options_hash), and the unique constraint on jobs.idempotency_key one on (project, idempotency_key).

Revision ID: auth_0003_keys
Revises: dataset_0002_warnings
Create Date: 2026-12-04 17:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.db.base import UTCDateTime

revision: str = "auth_0003_keys"
down_revision: str | None = "dataset_0002_warnings"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _project() -> sa.Column[str]:
    return sa.Column("project", sa.String(length=64), server_default="default", nullable=False)


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("project", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_index(op.f("ix_api_keys_project"), "api_keys", ["project"], unique=False)

    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.add_column(_project())
        batch_op.drop_index("ix_datasets_sha256_options_hash")
        batch_op.create_index(
            "ix_datasets_project_sha256_options_hash", ["project", "sha256", "options_hash"], unique=True
        )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(_project())
        batch_op.drop_constraint("uq_jobs_idempotency_key", type_="unique")
        batch_op.create_index("ix_jobs_project_idempotency_key", ["project", "idempotency_key"], unique=True)
        batch_op.create_index(op.f("ix_jobs_project"), ["project"], unique=False)
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.add_column(_project())


def downgrade() -> None:
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.drop_column("project")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(op.f("ix_jobs_project"))
        batch_op.drop_index("ix_jobs_project_idempotency_key")
        batch_op.create_unique_constraint("uq_jobs_idempotency_key", ["idempotency_key"])
        batch_op.drop_column("project")
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.drop_index("ix_datasets_project_sha256_options_hash")
        batch_op.create_index("ix_datasets_sha256_options_hash", ["sha256", "options_hash"], unique=True)
        batch_op.drop_column("project")
    op.drop_index(op.f("ix_api_keys_project"), table_name="api_keys")
    op.drop_table("api_keys")
