"""Submitting a compression job, and comparing two versions' bills: behind /v1/models."""

import hashlib
import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import queue
from app.compress.schemas import Bill, Comparison, CompressRequest, Lineage, VersionBill
from app.config import Settings
from app.datasets import repository as datasets
from app.db.session import database_now
from app.errors import Conflict, InvalidInput, NotFound
from app.jobs import dispatch, repository, states
from app.ml.spec import TrainingSpec
from app.models import Job, JobStatus, ModelVersion
from app.registry import repository as registry
from app.registry import service as registry_service

KIND = "compress"


def submit(
    session: Session, settings: Settings, name: str, version: int, request: CompressRequest, project: str | None
) -> Job:
    """Check the source version is ready and the request can run on it, commit the job (kind
    "compress", in the source's project), publish it. Raises NotFound (no such version, or
    another project's), Conflict (not ready: still being registered, or its files are gone;
    register_as taken by another project), InvalidInput (prune on a version with no dataset)."""
    source = _ready_source(session, settings, name, version, project)
    source_job = training_job_of(session, source)
    dataset_id = source_job.dataset_id if source_job is not None else "none"
    if request.method == "prune":
        _check_prunable(session, source_job, dataset_id)
    register_as = request.register_as or name
    if registry.name_owner(session, register_as) not in (None, source.project):
        raise Conflict(f"register_as: the model name {register_as!r} is taken by another project; choose another")
    settings_ = request.model_dump(mode="json", exclude={"register_as"}, exclude_none=True)
    spec = {"compress": settings_, "source": {"model": name, "version": version}}
    job = Job(
        kind=KIND,
        name=f"compress-{name}-v{version}-{request.method}",
        project=source.project,
        dataset_id=dataset_id,
        spec=spec,
        request_hash=hashlib.sha256(
            json.dumps(spec | {"register_as": register_as}, sort_keys=True).encode()
        ).hexdigest(),
        register_as=register_as,
        queue=queue.TRAINING_QUEUE,
        epochs=request.fine_tune_epochs or 0,
        status=JobStatus.QUEUED,
        enqueued_at=database_now(session),
        send_count=1,
    )
    session.add(job)
    session.flush()
    states.record_submitted(session, job)
    session.commit()
    dispatch.publish(session, settings, job)
    return job


def _ready_source(session: Session, settings: Settings, name: str, version: int, project: str | None) -> ModelVersion:
    if project is not None and registry.name_owner(session, name) not in (None, project):
        raise NotFound(f"model {name!r} does not exist")
    source = registry.get_version(session, name, version)
    if source is None:
        pending = session.scalars(
            select(Job).where(
                Job.register_as == name,
                Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]),
                *([Job.project == project] if project is not None else []),
            )
        ).first()
        latest = registry.latest_version(session, name)
        if pending is not None and version > (latest.version if latest else 0):
            message = (
                f"version {version} of {name!r} is not registered yet: job {pending.id} that registers it is "
                f"{pending.status.value}; compress it once that job has succeeded"
            )
            raise Conflict(f"version: {message}", detail=[{"loc": ["path", "version"], "msg": message}])
        raise NotFound(f"version {version} of model {name!r} does not exist")
    missing = [
        p for p in (source.artifact_path, source.serving_path) if p and not (settings.artifacts_dir / p).is_file()
    ]
    if missing:
        message = f"version {version} of {name!r} is not ready: its files {missing} are missing from the store"
        raise Conflict(f"version: {message}", detail=[{"loc": ["path", "version"], "msg": message}])
    return source


def training_job_of(session: Session, row: ModelVersion, max_hops: int = 32) -> Job | None:
    """The job that trained `row` or, for a compressed version, its nearest trained ancestor's:
    the held-out split of a version is the one its trained weights never saw."""
    for _ in range(max_hops):
        job = repository.get(session, row.job_id)
        if job is None or job.kind != KIND:
            return job if job is not None and _is_training_spec(job.spec) else None
        source = job.spec.get("source") or {}
        parent = registry.get_version(session, str(source.get("model")), int(source.get("version", 0)))
        if parent is None:
            return None
        row = parent
    return None


def _check_prunable(session: Session, source_job: Job | None, dataset_id: str) -> None:
    if source_job is None or datasets.get(session, dataset_id) is None:
        message = (
            "prune fine-tunes on the dataset the source version was trained on, and this version has none "
            "(its dataset was deleted, or it was not trained by a job); use int8 or float16"
        )
        raise InvalidInput(f"method: {message}", detail=[{"loc": ["body", "method"], "msg": message}])


def _is_training_spec(spec: dict[str, object]) -> bool:
    try:
        TrainingSpec.model_validate(spec)
    except ValueError:
        return False
    return True


def compare(session: Session, name: str, a: int, b: int, project: str | None) -> Comparison:
    """Both versions' bills side by side, with b/a ratios of the numbers and b-a metric deltas."""
    first = registry_service.resolve(session, name, a, project=project)
    second = registry_service.resolve(session, name, b, project=project)
    one, two = _version_bill(first), _version_bill(second)
    ratios: dict[str, float] = {}
    deltas: dict[str, float] = {}
    if one.bill is not None and two.bill is not None:
        pairs = {
            "params": (one.bill.params, two.bill.params),
            "artifact_bytes": (one.bill.artifact_bytes, two.bill.artifact_bytes),
            "keras_bytes": (one.bill.keras_bytes, two.bill.keras_bytes),
            "latency_ms.rows_1": (one.bill.latency_ms.rows_1, two.bill.latency_ms.rows_1),
            "latency_ms.rows_64": (one.bill.latency_ms.rows_64, two.bill.latency_ms.rows_64),
        }
        ratios = {key: round(y / x, 6) for key, (x, y) in pairs.items() if x}
        deltas = {
            key: round(two.bill.metrics[key] - value, 6)
            for key, value in one.bill.metrics.items()
            if key in two.bill.metrics
        }
    return Comparison(model=name, a=one, b=two, ratios=ratios, deltas=deltas)


def _version_bill(row: ModelVersion) -> VersionBill:
    return VersionBill(
        version=row.version,
        lineage=Lineage.model_validate(row.lineage) if row.lineage else None,
        bill=Bill.model_validate(row.bill) if row.bill else None,
    )
