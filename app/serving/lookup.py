"""Registry rows to `ServedVersion`s: the serving path's only database access (cached by
the resolver, never per request)."""

from pathlib import Path

from app.config import Settings
from app.db.session import session_scope
from app.models import ModelVersion
from app.registry import service as registry
from app.serving.columns import ColumnSpec
from app.serving.resolver import Lookup
from app.serving.runtimes import RUNTIME_ONNX
from app.serving.signature import ServedVersion, TensorSpec


def served_version(row: ModelVersion, artifacts_dir: Path) -> ServedVersion:
    """What serving needs of a version: the artifact its runtime loads and its tensors."""
    onnx = row.serving_runtime == RUNTIME_ONNX and row.serving_path
    classes = row.signature.get("classes")
    return ServedVersion(
        name=row.name,
        version=row.version,
        runtime=row.serving_runtime if onnx else "keras",
        path=artifacts_dir / (row.serving_path if onnx and row.serving_path else row.artifact_path),
        inputs=tuple(TensorSpec.of(spec) for spec in row.signature["inputs"]),
        outputs=tuple(TensorSpec.of(spec) for spec in row.signature["outputs"]),
        classes=tuple(classes) if classes else None,
        columns=tuple(ColumnSpec.of(c) for c in row.signature["columns"]) if row.signature.get("columns") else None,
        project=row.project,
        artifact=artifacts_dir / row.artifact_path,
    )


def registry_lookup(settings: Settings) -> Lookup:
    """A blocking lookup of (name, version, label) in the registry; raises NotFound."""

    def lookup(name: str, version: int | None, label: str | None) -> ServedVersion:
        with session_scope(settings.sqlalchemy_url) as session:
            row = registry.resolve(session, name, version, label)
            return served_version(row, settings.artifacts_dir)

    return lookup
