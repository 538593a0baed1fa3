"""Distillation jobs at the door and after: the teacher checked against the dataset and the
student, resolved to one version, and what a distilled version's lineage records.

No Keras here: the teacher is checked from its registered signature (the worker loads it).
"""

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy.orm import Session

from app.errors import InvalidInput, NotFound
from app.ml.data import bind_outputs
from app.ml.spec import DistillSpec, FunctionalModel, TeacherRef, TrainingSpec
from app.models import Dataset, Job, ModelVersion
from app.registry import repository as registry
from app.registry import service as registry_service


class ModelVersionRef(BaseModel):
    model: str
    version: int


class DistilledLineage(BaseModel):
    """What a version trained by distillation came from (API.md "Distillation, compression,
    lineage": `lineage` of kind `distilled`)."""

    kind: Literal["distilled"] = "distilled"
    source: ModelVersionRef
    settings: dict[str, float | str | None]


def check_teacher(session: Session, spec: TrainingSpec, dataset: Dataset, artifacts_dir: Path) -> TrainingSpec:
    """The spec with its teacher resolved to a version of the dataset's project, after checking
    that the teacher can teach this student on this dataset. Raises InvalidInput naming the field
    (`distill.teacher.model|version|label`, `distill`)."""
    distill = spec.distill
    if distill is None:
        return spec
    teacher = distill.teacher
    version = _resolve(session, teacher, dataset.project)
    if not (artifacts_dir / version.artifact_path).is_file():
        _refuse(
            ["distill", "teacher", "version"],
            f"version {version.version} of {teacher.model!r} has no model file yet (still being registered?)",
        )
    _check_inputs(version, dataset)
    _check_outputs(version, spec, dataset)
    resolved = TeacherRef(model=teacher.model, version=version.version, label=teacher.label)
    return spec.model_copy(update={"distill": distill.model_copy(update={"teacher": resolved})})


def teacher_version(session: Session, job: Job) -> ModelVersion:
    """The teacher version a distillation job was submitted with (resolved at the door)."""
    distill = DistillSpec.model_validate(job.spec["distill"])
    assert distill.teacher.version is not None  # check_teacher resolved it
    return registry_service.resolve(session, distill.teacher.model, distill.teacher.version, project=job.project)


def distilled_lineage(job: Job) -> DistilledLineage | None:
    """The lineage to register with the version `job` trains: its teacher and settings; None for
    a job that is not a distillation. (Wired into registration where versions get `lineage`.)"""
    raw = (job.spec or {}).get("distill")
    if not raw:
        return None
    distill = DistillSpec.model_validate(raw)
    assert distill.teacher.version is not None
    return DistilledLineage(
        source=ModelVersionRef(model=distill.teacher.model, version=distill.teacher.version),
        settings={"temperature": distill.temperature, "alpha": distill.alpha, "label": distill.teacher.label},
    )


def _resolve(session: Session, teacher: TeacherRef, project: str) -> ModelVersion:
    """Another project's model is refused like a missing one: its name says nothing."""
    if registry.name_owner(session, teacher.model) != project:
        _refuse(["distill", "teacher", "model"], f"no model {teacher.model!r} in this project")
    try:
        return registry_service.resolve(session, teacher.model, teacher.version, teacher.label, project)
    except NotFound as exc:
        field = "label" if teacher.label is not None and teacher.version is None else "version"
        _refuse(["distill", "teacher", field], str(exc))
        raise  # unreachable: _refuse raises


def _check_inputs(version: ModelVersion, dataset: Dataset) -> None:
    inputs = version.signature.get("inputs") or []
    rows = [int(d) for d in dataset.features["shape"]]
    if len(inputs) != 1:
        _refuse(
            ["distill", "teacher"],
            f"the teacher takes {len(inputs)} inputs; distillation needs one, the dataset's rows",
        )
    shape = [int(d) for d in inputs[0]["shape"][1:]]
    if shape != rows:
        _refuse(
            ["distill", "teacher"],
            f"the teacher takes inputs of shape {shape} but the dataset's rows have shape {rows}; "
            "distill from a teacher trained on data shaped like this dataset",
        )
    teacher_columns = [c["name"] for c in version.signature.get("columns") or []]
    columns = list(dataset.features.get("columns") or [])
    if teacher_columns and columns and teacher_columns != columns:
        _refuse(
            ["distill", "teacher"],
            f"the teacher takes columns {teacher_columns} but the dataset has {columns}",
        )


def _check_outputs(version: ModelVersion, spec: TrainingSpec, dataset: Dataset) -> None:
    target: dict[str, Any] = dataset.target
    graph_outputs = spec.model.output_specs if isinstance(spec.model, FunctionalModel) else []
    if graph_outputs and len(bind_outputs(graph_outputs, target)) > 1:
        _refuse(["model", "outputs"], "a distilled student has one output, the teacher's classes")
    n_classes = target.get("n_classes")
    if n_classes is None or target.get("shape") not in ([], None):
        _refuse(["distill"], "distillation needs a classification dataset (one label per row)")
    outputs = version.signature.get("outputs") or []
    if len(outputs) != 1:
        _refuse(["distill", "teacher"], f"the teacher has {len(outputs)} outputs; distillation needs one")
    units = int(outputs[0]["shape"][-1])
    if units != n_classes:
        _refuse(
            ["distill", "teacher"],
            f"the teacher outputs {units} values per row but the student predicts {n_classes} classes",
        )
    teacher_classes = version.signature.get("classes")
    classes = target.get("classes")
    if teacher_classes is not None and classes is not None and list(teacher_classes) != list(classes):
        _refuse(
            ["distill", "teacher"],
            f"the teacher's class labels {teacher_classes} differ from the dataset's {classes}",
        )


def _refuse(loc: list[str], message: str) -> None:
    raise InvalidInput(f"{'.'.join(loc)}: {message}", detail=[{"loc": loc, "msg": message}])
