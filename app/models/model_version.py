"""The model registry: versions of a named model, each a trained artifact, and labels."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, utcnow


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_model_versions_name_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), index=True)
    # A model name belongs to the project of its first version (app.jobs.service checks it).
    project: Mapped[str] = mapped_column(String(64), default="default", server_default="default")
    version: Mapped[int] = mapped_column(Integer)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="RESTRICT"), index=True)
    # path of the .keras file relative to the artifacts root
    artifact_path: Mapped[str] = mapped_column(String(300))
    # {"inputs": [{"name", "shape", "dtype"}], "outputs": [...], "classes": [...] | None}
    signature: Mapped[dict[str, Any]]
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # What serves this version: "onnx" (serving_path, run by ONNX Runtime) or "keras" (the
    # .keras file). Versions registered before serving artifacts existed are served by Keras.
    serving_runtime: Mapped[str] = mapped_column(String(16), default="keras", server_default="keras")
    # path of the exported inference artifact (model.onnx) relative to the artifacts root
    serving_path: Mapped[str | None] = mapped_column(String(300), default=None)
    # how the export was checked against the Keras model (max_abs_diff), or why it fell back
    serving_check: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    # Permutation importance from training (app.explain.importance): an Importance, or
    # {"reason"} when none could be computed; NULL for versions registered before it existed.
    importance: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    # Where a distilled or compressed version came from (app.compress.schemas.Lineage); None for
    # a trained one. Its bill: params, bytes, serving latency and held-out metrics (Bill).
    lineage: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    bill: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelLabel(Base):
    """A movable alias (`production`, `canary`) pointing at one version of a model."""

    __tablename__ = "model_labels"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    label: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
