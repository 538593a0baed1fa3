"""serving: model_versions records its inference artifact and runtime

Each model version gets the runtime that serves it ("onnx" or "keras"), the path of its
exported ONNX file, and how the export was checked against the Keras model. Existing versions
are served by Keras from their .keras file, as before.

Revision ID: serving_0001_artifact
Revises: 223dec21e28b
Create Date: 2026-11-26 19:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "serving_0001_artifact"
down_revision: str | None = "223dec21e28b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("serving_runtime", sa.String(length=16), server_default="keras", nullable=False))
        batch_op.add_column(sa.Column("serving_path", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("serving_check", sa.JSON(), server_default="{}", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.drop_column("serving_check")
        batch_op.drop_column("serving_path")
        batch_op.drop_column("serving_runtime")
