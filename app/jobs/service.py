"""Submitting, reading and cancelling jobs: what happens behind /v1/jobs."""

import hashlib
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import queue
from app.config import Settings
from app.cpu_pool import ProcessPool
from app.datasets import repository as datasets
from app.db.pagination import Page
from app.db.session import database_now
from app.errors import Conflict, InvalidInput, NotFound
from app.jobs import dispatch, repository, states
from app.jobs.curves import EpochPoint
from app.jobs.distill import check_teacher
from app.jobs.schemas import JobCreate
from app.ml.door import CheckedSpec, SpecCheck, check_spec, stored_form
from app.ml.spec import SpecError, TrainingSpec
from app.models import Dataset, Job, JobEpoch, JobEvent, JobStatus
from app.registry import repository as registry
from app.worker_registry import repository as workers
from app.worker_registry.readiness import stale_after

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Admission:
    """A submit that passed the cheap checks: what the spec checks need, and what the commit does."""

    request_hash: str
    dataset_id: str
    gpus: int
    check: SpecCheck


def admit(
    session: Session, settings: Settings, request: JobCreate, idempotency_key: str | None, project: str | None
) -> Job | Admission:
    """The checks that need the database but no model: the job an Idempotency-Key already made
    (returned as is), the dataset, the runtime, the model name, the devices. Quick."""
    hashed = request_hash(request)
    if idempotency_key:
        existing = repository.get_by_idempotency_key(session, idempotency_key, project)
        if existing is not None:
            return _same_request_or_conflict(existing, hashed)
    dataset = datasets.get(session, request.dataset_id, project=project)
    if dataset is None:
        raise NotFound(f"dataset {request.dataset_id} does not exist")
    if request.max_runtime_s is not None and request.max_runtime_s > settings.max_job_runtime_s:
        message = f"at most the server's maximum, {settings.max_job_runtime_s} s (TRAINYARD_MAX_JOB_RUNTIME_S)"
        raise InvalidInput(f"max_runtime_s: {message}", detail=[{"loc": ["max_runtime_s"], "msg": message}])
    model_name = request.register_as or request.name
    if model_name and registry.name_owner(session, model_name) not in (None, dataset.project):
        raise Conflict(f"register_as: the model name {model_name!r} is taken by another project; choose another")
    gpus = _check_devices(session, settings, request)
    check = spec_check(settings, request, dataset)
    return Admission(request_hash=hashed, dataset_id=dataset.id, gpus=gpus, check=check)


def spec_check(settings: Settings, request: JobCreate, dataset: Dataset, build: bool = True) -> SpecCheck:
    """What app.ml.door.check_spec needs to check `request` against `dataset` (plain data: it
    crosses into a pool process). Without `build`, the model is checked without building it."""
    return SpecCheck(
        model=request.model,
        compile=request.compile,
        fit=request.fit,
        preprocessing=request.preprocessing,
        features=dataset.features,
        target=dataset.target,
        max_layers=settings.max_layers,
        max_params=settings.max_params,
        max_activation_bytes=settings.max_activation_bytes,
        # Every model has a layer, so 0 means "never build here".
        build_max_layers=settings.door_build_max_layers if build else 0,
        distill=request.distill,
    )


def checked_spec(
    settings: Settings,
    request: JobCreate,
    dataset: Dataset,
    build: bool = True,
    processes: ProcessPool | None = None,
) -> TrainingSpec:
    """The request's training spec, checked against the dataset as at submit (built and dry-run
    when small enough and `build`). In a pool process when `processes` is given (the API, from a
    CpuPool thread: it never imports Keras), else here. Raises InvalidInput naming the field."""
    check = spec_check(settings, request, dataset, build)
    with spec_errors_as_invalid_input():
        if processes is not None:
            checked = processes.call(settings.cpu_budget_s, "spec checks", check_spec, check)
        else:
            checked = check_spec(check)
    return TrainingSpec.model_validate(checked.spec)


@contextmanager
def spec_errors_as_invalid_input() -> Iterator[None]:
    """A SpecError from the spec checks is a 422 naming its field."""
    try:
        yield
    except SpecError as exc:
        raise InvalidInput(
            f"{exc.path}: {exc.message}", detail=[{"loc": exc.path.split("."), "msg": exc.message}]
        ) from exc


def store(
    session: Session,
    settings: Settings,
    request: JobCreate,
    idempotency_key: str | None,
    project: str | None,
    admitted: Admission,
    checked: CheckedSpec,
) -> Job:
    """Commit the checked job and publish it. The dataset is read again, locked until the job
    commits, so a DELETE while the spec was checked is either seen here (404) or sees the job (409)."""
    dataset = datasets.get(session, admitted.dataset_id, project=project, for_update=True)
    if dataset is None:
        raise NotFound(f"dataset {request.dataset_id} does not exist")
    spec = checked.spec
    if request.distill is not None:  # the teacher: resolved in the registry, checked against the student
        student = TrainingSpec.model_validate(checked.spec)
        spec = stored_form(check_teacher(session, student, dataset, settings.artifacts_dir))
    try:
        job = queued_job(
            session,
            request,
            project=dataset.project,
            dataset_id=dataset.id,
            spec=spec,
            request_hash=admitted.request_hash,
            gpus=admitted.gpus,
            epochs=checked.epochs,
            idempotency_key=idempotency_key,
        )
        session.commit()
    except IntegrityError:
        session.rollback()
        existing = repository.get_by_idempotency_key(session, idempotency_key or "", dataset.project)
        if existing is None:
            raise
        return _same_request_or_conflict(existing, admitted.request_hash)
    dispatch.publish(session, settings, job)
    return job


def queued_job(
    session: Session,
    request: JobCreate,
    *,
    project: str,
    dataset_id: str,
    spec: dict[str, Any],
    request_hash: str,
    gpus: int,
    epochs: int,
    idempotency_key: str | None,
) -> Job:
    """A new queued job row for a checked `request`, added and flushed with its submission
    recorded; the caller commits, then publishes. Raises IntegrityError (at the flush) when
    another job holds the Idempotency-Key. Studies make their trials' jobs here too."""
    job = Job(
        name=request.name or "",
        project=project,
        dataset_id=dataset_id,
        spec=spec,
        request_hash=request_hash,
        register_as=request.register_as or request.name or "",
        queue=queue.GPU_TRAINING_QUEUE if gpus else queue.TRAINING_QUEUE,
        gpus=gpus,
        idempotency_key=idempotency_key,
        epochs=epochs,
        status=JobStatus.QUEUED,
        max_runtime_s=request.max_runtime_s,
        stall_timeout_s=request.stall_timeout_s,
        checkpoint_every_s=request.checkpoint.every_seconds if request.checkpoint else None,
        # The send is recorded in the job's own transaction, before the message is published:
        # the sweep never sees a committed job as unsent while its first send is in flight.
        enqueued_at=database_now(session),
        send_count=1,
    )
    session.add(job)
    session.flush()  # a concurrent submit with the same Idempotency-Key fails here, or at commit
    job.name = job.name or f"job-{job.id}"
    job.register_as = job.register_as or job.name
    states.record_submitted(session, job)
    return job


def _check_devices(session: Session, settings: Settings, request: JobCreate) -> int:
    """The devices the job asks for, if some worker can give them (when the workers' devices are
    known) and its batches split evenly over them."""
    gpus = request.gpus()
    if request.gpu and gpus == 0:
        _invalid(["resources", "gpus"], "0 devices contradicts gpu: true; drop one of the two")
    if gpus > 1 and request.fit.batch_size % gpus:
        _invalid(
            ["fit", "batch_size"],
            f"{request.fit.batch_size} does not split evenly over {gpus} devices (resources.gpus): "
            f"use a multiple of {gpus}; each step trains the whole batch, split across the devices",
        )
    if gpus:
        now = database_now(session)
        most = workers.devices_per_job(session, queue.GPU_TRAINING_QUEUE, now, stale_after(settings))
        if most is not None and gpus > most:
            _invalid(
                ["resources", "gpus"],
                f"the job asks for {gpus} devices, but the live workers on {queue.GPU_TRAINING_QUEUE} give at "
                f"most {most} to one job (TRAINYARD_WORKER_DEVICES divided by --concurrency)",
            )
    return gpus


def _invalid(loc: list[str], message: str) -> None:
    raise InvalidInput(f"{'.'.join(loc)}: {message}", detail=[{"loc": loc, "msg": message}])


def waiting_for(session: Session, settings: Settings, jobs: list[Job]) -> dict[str, str]:
    """Per queued job whose queue no live worker consumes: why it is not starting."""
    queues = {job.queue for job in jobs if job.status == JobStatus.QUEUED}
    if not queues:
        return {}
    now = database_now(session)
    idle = {q for q in queues if workers.live_consumers(session, q, now, stale_after(settings)) == 0}
    return {
        job.id: f"waiting for a worker on {job.queue}"
        for job in jobs
        if job.status == JobStatus.QUEUED and job.queue in idle
    }


def get(session: Session, job_id: str, project: str | None = None) -> Job:
    """The job; NotFound also when it belongs to another project than `project` (None: any)."""
    job = repository.get(session, job_id)
    if job is None or (project is not None and job.project != project):
        raise NotFound(f"job {job_id} does not exist")
    return job


def list_page(session: Session, limit: int, cursor: str | None, **filters: Any) -> Page[Job]:
    """A page of jobs, newest first; filters as app.jobs.repository.list_page takes them."""
    return repository.list_page(session, limit, cursor, **filters)


def epochs(session: Session, job_id: str, project: str | None = None) -> tuple[int, list[dict[str, Any]]]:
    """The current attempt, and each epoch once with the attempt that trained it."""
    job = get(session, job_id, project)
    rows: list[JobEpoch] = list(repository.epochs(session, job_id))
    return job.attempt, [
        {"epoch": row.epoch, "attempt": row.attempt, **row.logs, "finished_at": row.created_at.isoformat()}
        for row in rows
    ]


def curve_points(session: Session, job_id: str, project: str | None = None) -> tuple[Job, list[EpochPoint]]:
    """The job and its one epoch history as points for its curves picture."""
    job = get(session, job_id, project)
    return job, [EpochPoint(row.epoch, row.attempt, dict(row.logs)) for row in repository.epochs(session, job_id)]


def events(session: Session, job_id: str, project: str | None = None) -> list[JobEvent]:
    get(session, job_id, project)
    return list(repository.events(session, job_id))


def cancel(session: Session, job_id: str, project: str | None = None) -> Job:
    """Cancel: a queued job ends now; a running one is asked to stop (its worker ends it)."""
    get(session, job_id, project)  # NotFound for another project's job
    for _ in range(3):  # the job may move between our read and our write; re-read and retry
        job = get(session, job_id)
        if job.status.is_final:
            return job
        if job.status == JobStatus.QUEUED:
            if states.cancel_queued(session, job):
                return get(session, job_id)
        elif repository.request_cancel(session, job):
            session.commit()
            return get(session, job_id)
        session.rollback()
    return get(session, job_id)


def request_hash(request: JobCreate) -> str:
    """What an Idempotency-Key is bound to: a retry with the same key and request is the same job."""
    # `distill` left out when not given: Idempotency-Keys of requests from before it still match.
    dumped = request.model_dump(mode="json", exclude={"distill"} if request.distill is None else None)
    canonical = json.dumps(dumped, sort_keys=True).encode()
    return hashlib.sha256(canonical).hexdigest()


def _same_request_or_conflict(job: Job, request_hash: str) -> Job:
    if job.request_hash != request_hash:
        raise Conflict("this Idempotency-Key was used with a different request", detail={"job_id": job.id})
    return job
