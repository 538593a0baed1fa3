"""jobs: job_stream — the event log that SSE streams replay (status transitions and epochs)

Existing jobs get no back-filled entries: their streams start with the events written after
this revision (their status history stays in job_events, their epochs in job_epochs).

Revision ID: live_0005_events
Revises: dataset_0002_warnings
Create Date: 2026-12-04 17:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "live_0005_events"
down_revision: str | None = "auth_0003_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "timed_out")


def upgrade() -> None:
    op.create_table(
        "job_stream",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.Enum(*STATUSES, name="jobstatus", native_enum=False, length=16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("move", sa.String(length=16), nullable=True),
        sa.Column("actor", sa.String(length=16), nullable=True),
        sa.Column("duration_s", sa.Double(), nullable=True),
        sa.Column("samples", sa.Integer(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_job_stream_job_id_jobs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_stream")),
    )
    op.create_index("ix_job_stream_job_id_id", "job_stream", ["job_id", "id"], unique=False)
    op.create_index(op.f("ix_job_stream_status"), "job_stream", ["status"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_job_stream_status"), table_name="job_stream")
    op.drop_index("ix_job_stream_job_id_id", table_name="job_stream")
    op.drop_table("job_stream")
