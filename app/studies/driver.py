"""The study driver: the one process at a time (across `serve` and every worker, under a
database lock) that decides a study's asks and tells, so parallel trials never race.

Optuna's state is not kept in Optuna's own storage: every pass rebuilds an in-memory Optuna study
from trainyard's tables (the trials' parameters, values, epochs and Optuna's system attributes),
asks it for new trials and its pruner about running ones. A driver that dies loses nothing: the
next pass, in whichever process holds the lock, carries on from the rows (trial N+1 next).

Imports no Keras: the worker's main process, which must not import TensorFlow before it forks,
runs it. A trial's point was checked at submit (its corners built); a trial's job is created here
without a build.
"""

import contextlib
import json
import logging
import threading
import warnings
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.config import Settings
from app.datasets import repository as datasets
from app.db.session import database_now, session_scope
from app.errors import NotFound
from app.jobs import dispatch
from app.jobs import repository as jobs
from app.jobs import service as job_service
from app.jobs.recovery import one_pass_at_a_time
from app.jobs.schemas import JobCreate
from app.models import JobStatus, ModelVersion, Study, StudyStatus, StudyTrial, TrialStatus
from app.studies import space
from app.studies.repository import TRIALS_SUFFIX, trials
from app.studies.schemas import StudyCreate

log = logging.getLogger(__name__)

_PG_STUDY_LOCK_ID = 7_304_118_524  # beside the sweep's (app.jobs.recovery)

_JOB_TO_TRIAL = {
    JobStatus.QUEUED: TrialStatus.QUEUED,
    JobStatus.RUNNING: TrialStatus.RUNNING,
    JobStatus.FAILED: TrialStatus.FAILED,
    JobStatus.TIMED_OUT: TrialStatus.FAILED,
    JobStatus.CANCELLED: TrialStatus.CANCELLED,
}


def drive(settings: Settings) -> bool:
    """One pass over the running studies, unless another process holds the driver's lock.
    Returns whether this process did the pass."""
    with one_pass_at_a_time(settings, _PG_STUDY_LOCK_ID, "studies") as ours:
        if not ours:
            return False
        with session_scope(settings.sqlalchemy_url) as session:
            running = session.scalars(select(Study.id).where(Study.status == StudyStatus.RUNNING)).all()
            for study_id in running:
                try:
                    drive_study(session, settings, study_id)
                except Exception:
                    session.rollback()
                    log.exception("study %s: driver pass failed; the next pass tries again", study_id)
        return True


def drive_study(session: Session, settings: Settings, study_id: str) -> None:
    """Follow one study: create missing trial jobs, record what the jobs report, prune, ask for
    new trials up to `parallelism`, and end the study when its trials are done. Commits."""
    study = session.get(Study, study_id, populate_existing=True)
    if study is None or study.status.is_final:
        return
    request = StudyCreate.model_validate(study.request)
    rows = trials(session, study_id)
    for trial in rows:
        if trial.status is TrialStatus.ASKED:
            _create_job(session, settings, study, request, trial)
        elif not trial.status.is_final:
            _follow(session, request, trial)
    session.commit()
    now = database_now(session)
    out_of_time = request.max_runtime_s is not None and now >= study.created_at + timedelta(
        seconds=request.max_runtime_s
    )
    if study.cancel_requested or out_of_time:
        _stop_trials(session, rows, "study cancelled" if study.cancel_requested else "study max_runtime_s reached")
        status = StudyStatus.CANCELLED if study.cancel_requested else None
        _finish(session, study, request, rows, status, None if study.cancel_requested else "max_runtime_s reached")
        return
    if request.pruner is not None and any(t.status is TrialStatus.RUNNING and t.intermediate for t in rows):
        _prune(session, study, request, rows)
    budget = _budget(request)
    while len(rows) < budget and sum(not t.status.is_final for t in rows) < request.parallelism:
        trial = _ask(session, study, request, rows)
        rows.append(trial)
        _create_job(session, settings, study, request, trial)
    if len(rows) >= budget and all(t.status.is_final for t in rows):
        _finish(session, study, request, rows, None, None)


def _budget(request: StudyCreate) -> int:
    """max_trials, or the grid's size when a grid is smaller (it has no more points to give)."""
    if request.sampler != "grid":
        return request.max_trials
    size = 1
    for values in space.grid(request.search_space).values():
        size *= len(values)
    return min(request.max_trials, size)


# --- Optuna: rebuilt from the rows on every pass ----------------------------------------------


def _optuna_study(study: Study, request: StudyCreate, rows: list[StudyTrial]) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = space.distributions(request.search_space)
    seed = study.seed + len(rows)  # a new draw per ask, the same draw if a pass is repeated
    sampler: optuna.samplers.BaseSampler
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if request.sampler == "random":
            sampler = optuna.samplers.RandomSampler(seed=seed)
        elif request.sampler == "grid":
            sampler = optuna.samplers.GridSampler(space.grid(request.search_space), seed=study.seed)
        else:
            # A quarter of the budget explores at random first (Optuna's default of 10 would be
            # the whole of a small study); running trials count as liars so parallel asks differ.
            startup = max(2, min(10, request.max_trials // 4))
            sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, constant_liar=True)
        made = optuna.create_study(
            study_name=study.id, direction=request.objective.goal(), sampler=sampler, pruner=_pruner(request)
        )
    for trial in rows:
        made.add_trial(_frozen(trial, dists))
    return made


def _pruner(request: StudyCreate) -> Any:
    import optuna

    if request.pruner == "median":
        # Compare with a few finished trials first (a quarter of the budget, 1 to 5), and never on
        # the first epoch alone, the noisiest (epochs count from 1: Optuna prunes from step 2).
        startup = min(5, max(1, request.max_trials // 4))
        return optuna.pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=2)
    if request.pruner == "hyperband":
        epochs = int(request.base.get("fit", {}).get("epochs", 10)) if isinstance(request.base.get("fit"), dict) else 10
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1), reduction_factor=3)
    return optuna.pruners.NopPruner()


def _frozen(trial: StudyTrial, dists: dict[str, Any]) -> Any:
    from optuna.trial import TrialState, create_trial

    state = {
        TrialStatus.SUCCEEDED: TrialState.COMPLETE,
        TrialStatus.PRUNED: TrialState.PRUNED,
        TrialStatus.FAILED: TrialState.FAIL,
        TrialStatus.CANCELLED: TrialState.FAIL,
    }.get(trial.status, TrialState.RUNNING)
    return create_trial(
        state=state,
        value=trial.value if state == TrialState.COMPLETE else None,
        params=trial.params,
        distributions=dists,
        intermediate_values={int(k): float(v) for k, v in trial.intermediate.items()},
        system_attrs=trial.system_attrs,
    )


def _ask(session: Session, study: Study, request: StudyCreate, rows: list[StudyTrial]) -> StudyTrial:
    """Ask Optuna for the next trial's parameters and commit them as trial N+1."""
    made = _optuna_study(study, request, rows)
    asked = made.ask(space.distributions(request.search_space))
    frozen = made.trials[-1]
    trial = StudyTrial(
        study_id=study.id,
        number=len(rows),
        params=dict(asked.params),
        system_attrs=json.loads(json.dumps(frozen.system_attrs, default=str)),
        intermediate={},
        status=TrialStatus.ASKED,
    )
    session.add(trial)
    session.commit()
    log.info("study %s: trial %s asks %s", study.id, trial.number, trial.params)
    return trial


def _prune(session: Session, study: Study, request: StudyCreate, rows: list[StudyTrial]) -> None:
    """Stop the running trials the pruner prunes."""
    for trial in trials_to_prune(study, request, rows):
        last = max(trial.intermediate, key=int)
        trial.value = float(trial.intermediate[last])
        _end_trial(session, trial, TrialStatus.PRUNED, f"pruned after epoch {last} by the {request.pruner} pruner")
        log.info("study %s: trial %s pruned after epoch %s", study.id, trial.number, last)
    session.commit()


def trials_to_prune(study: Study, request: StudyCreate, rows: list[StudyTrial]) -> list[StudyTrial]:
    """The running trials with epochs that the study's pruner would stop now, judged against
    every trial in `rows` (Optuna rebuilt from them, as for an ask).

    What the pruner notes on a trial while judging it is kept on its row (`system_attrs`):
    Hyperband's successive halving compares a trial with the values others had at each rung,
    which it records only as it judges them; rebuilt from rows without those notes, it would
    find no competitor and never prune."""
    made = _optuna_study(study, request, rows)
    by_number = {t.number: t for t in made.trials}
    pruned = []
    for trial in rows:
        if trial.status is not TrialStatus.RUNNING or not trial.intermediate:
            continue
        if made.pruner.prune(made, by_number[trial.number]):
            pruned.append(trial)
    noted = {t.number: t.system_attrs for t in made.trials}
    for trial in rows:
        if trial.status is TrialStatus.RUNNING and noted[trial.number] != trial.system_attrs:
            trial.system_attrs = json.loads(json.dumps(noted[trial.number], default=str))
    return pruned


# --- Trials and their jobs ---------------------------------------------------------------------


def _create_job(session: Session, settings: Settings, study: Study, request: StudyCreate, trial: StudyTrial) -> None:
    """The trial's job, as POST /v1/jobs would make it, committed with the trial's job_id, then
    published. The Idempotency-Key (study id, trial number) makes a repeat find the same job."""
    key = f"study:{study.id}:{trial.number}"
    existing = jobs.get_by_idempotency_key(session, key, study.project)
    if existing is not None:
        trial.job_id = existing.id
        trial.status = _JOB_TO_TRIAL.get(existing.status, TrialStatus.QUEUED)
        session.commit()
        return
    register_as = request.register_as or study.name
    body = {
        **space.apply(request.base, trial.params),
        "dataset_id": study.dataset_id,
        "name": f"{study.name}-trial-{trial.number}",
        "register_as": register_as + TRIALS_SUFFIX,
    }
    try:
        job_request = JobCreate.model_validate(body)
        spec = job_request.training_spec()
    except (ValidationError, ValueError) as exc:
        _end_trial(session, trial, TrialStatus.FAILED, f"its point gives no valid job: {exc}")
        session.commit()
        return
    dataset = datasets.get(session, study.dataset_id, for_update=True)
    if dataset is None:
        _end_trial(session, trial, TrialStatus.FAILED, f"dataset {study.dataset_id} was deleted")
        session.commit()
        return
    try:
        job = job_service.queued_job(
            session,
            job_request,
            project=study.project,
            dataset_id=dataset.id,
            spec=spec.model_dump(mode="json"),
            request_hash=job_service.request_hash(job_request),
            gpus=job_request.gpus(),
            epochs=spec.fit.epochs,
            idempotency_key=key,
        )
        trial.job_id = job.id
        trial.status = TrialStatus.QUEUED
        session.commit()
    except IntegrityError:  # another driver made it first (it cannot, under the lock; still)
        session.rollback()
        return
    dispatch.publish(session, settings, job)


def _follow(session: Session, request: StudyCreate, trial: StudyTrial) -> None:
    """Copy the job's status and epochs onto the trial; a succeeded job's last epoch is its value."""
    job = jobs.get(session, trial.job_id) if trial.job_id else None
    if job is None:
        _end_trial(session, trial, TrialStatus.FAILED, "its job was deleted")
        return
    metric = request.objective.metric
    epochs = jobs.epochs(session, job.id)
    trial.intermediate = {
        str(row.epoch): float(row.logs[metric]) for row in epochs if isinstance(row.logs.get(metric), int | float)
    }
    if job.status is JobStatus.SUCCEEDED:
        value = trial.intermediate[max(trial.intermediate, key=int)] if trial.intermediate else job.metrics.get(metric)
        if not isinstance(value, int | float):
            logged = ", ".join(sorted(epochs[-1].logs)) if epochs else "nothing"
            _end_trial(session, trial, TrialStatus.FAILED, f"its job logged no {metric!r} (it logged {logged})")
            return
        trial.value = float(value)
        _end_trial(session, trial, TrialStatus.SUCCEEDED, None)
    elif job.status.is_final:
        _end_trial(session, trial, _JOB_TO_TRIAL[job.status], job.error or f"its job ended {job.status.value}")
    else:
        trial.status = _JOB_TO_TRIAL[job.status]


def _end_trial(session: Session, trial: StudyTrial, status: TrialStatus, error: str | None) -> None:
    """Mark the trial final (its job is asked to stop if it still runs: pruned, cancelled)."""
    if trial.job_id is not None and status in (TrialStatus.PRUNED, TrialStatus.CANCELLED):
        _cancel_job(session, trial.job_id)
    trial.status = status
    trial.error = error
    trial.finished_at = database_now(session)


def _cancel_job(session: Session, job_id: str) -> None:
    """A queued job ends now; a running one is asked to stop (its worker ends it)."""
    with contextlib.suppress(NotFound):  # deleted meanwhile: nothing to stop
        job_service.cancel(session, job_id)


def _stop_trials(session: Session, rows: list[StudyTrial], why: str) -> None:
    for trial in rows:
        if not trial.status.is_final:
            _end_trial(session, trial, TrialStatus.CANCELLED, why)
    session.commit()


def _finish(
    session: Session,
    study: Study,
    request: StudyCreate,
    rows: list[StudyTrial],
    status: StudyStatus | None,
    error: str | None,
) -> None:
    """End the study: register the best trial's model under register_as (a new version that
    points at the trial's artifact), or fail when no trial gave a value."""
    done = [t for t in rows if t.status is TrialStatus.SUCCEEDED and t.value is not None]
    sign = 1.0 if request.objective.goal() == "maximize" else -1.0
    best = max(done, key=lambda t: (sign * (t.value or 0.0), -t.number)) if done else None
    if best is not None:
        study.best_trial = best.number
        version = _register_best(session, study, request, best)
        if version is not None:
            study.model_name, study.model_version = version.name, version.version
    elif status is None:
        status, error = StudyStatus.FAILED, error or f"no trial gave a value of {request.objective.metric!r}"
    study.status = status or StudyStatus.SUCCEEDED
    study.error = error
    study.finished_at = database_now(session)
    session.commit()
    log.info("study %s %s; best trial %s", study.id, study.status.value, study.best_trial)


def _register_best(session: Session, study: Study, request: StudyCreate, best: StudyTrial) -> ModelVersion | None:
    job = jobs.get(session, best.job_id) if best.job_id else None
    if job is None or job.model_name is None or job.model_version is None:
        return None
    source = session.scalar(
        select(ModelVersion).where(ModelVersion.name == job.model_name, ModelVersion.version == job.model_version)
    )
    if source is None:
        return None
    name = request.register_as or study.name
    version = ModelVersion(
        name=name,
        project=study.project,
        version=jobs.next_version(session, name),
        job_id=job.id,
        artifact_path=source.artifact_path,
        signature=source.signature,
        metrics={**source.metrics, "study": {"id": study.id, "trial": best.number, "value": best.value}},
        serving_runtime=source.serving_runtime,
        serving_path=source.serving_path,
        serving_check=source.serving_check,
    )
    session.add(version)
    session.flush()
    return version


class DriverThread(threading.Thread):
    """Runs `drive` every `study_interval_s` in a worker's main process (serve has a task)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(name="trainyard-studies", daemon=True)
        self._settings = settings
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self._settings.study_interval_s):
            try:
                drive(self._settings)
            except Exception:
                log.exception("study driver pass failed; retrying in %ss", self._settings.study_interval_s)

    def stop(self) -> None:
        self._halt.set()
