"""An uploaded dataset: its provenance, schema and where its arrays are stored."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, utcnow


def new_id() -> str:
    return uuid.uuid4().hex


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    format: Mapped[str] = mapped_column(String(16))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    n_rows: Mapped[int] = mapped_column(BigInteger)
    # {"shape": [...], "dtype": "...", "columns": [...] | None}
    features: Mapped[dict[str, Any]]
    # the same plus "classes": [...] | None
    target: Mapped[dict[str, Any]]
    # directory relative to the datasets root holding features.npy and target.npy
    storage_path: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
