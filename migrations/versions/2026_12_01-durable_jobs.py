"""jobs: durability — checkpoints, resume, hand-back, per-job limits; workers report themselves

Adds to `jobs` the per-job limits (max_runtime_s, stall_timeout_s, checkpoint_every_s), the
runtime spent by ended attempts, the hand-back count (not counted against max_attempts), the
last checkpoint and the epoch the current attempt resumed from, and how the last process died.
Adds `workers`: one row per worker main process, refreshed every few seconds.
The status column gains the value `timed_out` (stored as a string; no constraint to alter).

Revision ID: durable_0001_jobs
Revises: serving_0001_artifact
Create Date: 2026-12-01 21:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.db.base import UTCDateTime

revision: str = "durable_0001_jobs"
down_revision: str | None = "serving_0001_artifact"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("handbacks", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("max_runtime_s", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("stall_timeout_s", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("checkpoint_every_s", sa.Double(), nullable=True))
        batch_op.add_column(sa.Column("runtime_s", sa.Double(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("resumed_from_epoch", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("checkpoint_attempt", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("checkpoint_epoch", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("checkpoint_batch", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("checkpoint_saved_at", UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_exit", sa.Text(), nullable=True))
    op.create_table(
        "workers",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("hostname", sa.String(length=200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("queues", sa.String(length=200), nullable=False),
        sa.Column("active_jobs", sa.Integer(), nullable=False),
        sa.Column("stopping", sa.Boolean(), nullable=False),
        sa.Column("started_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_workers")),
    )
    op.create_index(op.f("ix_workers_last_seen_at"), "workers", ["last_seen_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_workers_last_seen_at"), table_name="workers")
    op.drop_table("workers")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        for column in (
            "last_exit",
            "checkpoint_saved_at",
            "checkpoint_batch",
            "checkpoint_epoch",
            "checkpoint_attempt",
            "resumed_from_epoch",
            "runtime_s",
            "checkpoint_every_s",
            "stall_timeout_s",
            "max_runtime_s",
            "handbacks",
        ):
            batch_op.drop_column(column)
