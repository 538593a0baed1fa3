"""The model registry: versions of a named model, each a trained artifact, and labels."""

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, utcnow


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_model_versions_name_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), index=True)
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
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelLabel(Base):
    """A movable alias (`production`, `canary`) pointing at one version of a model."""

    __tablename__ = "model_labels"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    label: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
