"""An uploaded dataset: its provenance, schema, statistics and where its arrays are stored."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, utcnow


def new_id() -> str:
    return uuid.uuid4().hex


class Dataset(Base):
    __tablename__ = "datasets"
    # One dataset per project, content and parse options: an upload of the same bytes read the
    # same way finds the existing row (and a concurrent duplicate loses the insert); another
    # project's upload never finds it. Rows stored before options were recorded have NULL
    # options_hash, which never collides.
    __table_args__ = (
        Index("ix_datasets_project_sha256_options_hash", "project", "sha256", "options_hash", unique=True),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    project: Mapped[str] = mapped_column(String(64), default="default", server_default="default")
    format: Mapped[str] = mapped_column(String(16))
    sha256: Mapped[str] = mapped_column(String(64))
    # sha256 of the parse options (format, target, image_size, color_mode); app.datasets.parsing
    options_hash: Mapped[str | None] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    n_rows: Mapped[int] = mapped_column(BigInteger)
    # {"shape": [...], "dtype": "...", "columns": [...] | None, "column_types": [...] | None}
    features: Mapped[dict[str, Any]]
    # the same plus "classes": [...] | None
    target: Mapped[dict[str, Any]]
    # per-column min/max/mean/std/missing and the target's class histogram, computed at ingest
    stats: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # what parsing guessed or dropped (delimiter, decimal mark, column types), in sentences;
    # NULL for datasets stored before warnings were kept
    warnings: Mapped[list[str] | None] = mapped_column(JSON)
    # directory relative to the datasets root holding features.npy and target.npy
    storage_path: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
