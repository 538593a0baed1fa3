"""jobs: the devices asked for and what the attempt got; workers: the devices they advertise

Revision ID: backends_0007
Revises: dataset_0002_warnings
Create Date: 2026-12-04 17:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "backends_0007"
down_revision: str | None = "perf_0004_performance"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("gpus", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("resources", sa.JSON(), nullable=True))
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("backend", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("devices", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("devices_per_job", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.drop_column("devices_per_job")
        batch_op.drop_column("devices")
        batch_op.drop_column("backend")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("resources")
        batch_op.drop_column("gpus")
