"""Creating, reading and cancelling studies: what happens behind /v1/studies (the trials
themselves are chosen and run by app.studies.driver)."""

import json
import re
import secrets
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from app.config import Settings
from app.cpu_pool import ProcessPool
from app.datasets import repository as datasets
from app.db.pagination import Page
from app.errors import Conflict, InvalidInput, NotFound
from app.jobs import service as jobs
from app.jobs.schemas import JobCreate
from app.ml.spec import TrainingSpec
from app.models import Dataset, Study, StudyTrial
from app.registry import repository as registry
from app.studies import repository, space
from app.studies.repository import TRIALS_SUFFIX
from app.studies.schemas import StudyCreate


def create(
    session: Session,
    settings: Settings,
    request: StudyCreate,
    project: str | None,
    processes: ProcessPool | None = None,
) -> Study:
    """Check the study (every corner of its space gives a job the dataset can train), store it.
    The driver starts its trials within a pass. Blocking (builds the corner models: in a pool
    process when `processes` is given, so the API process never imports Keras).

    Raises NotFound (dataset), InvalidInput (naming the pointer and the reason), Conflict
    (register_as taken by another project)."""
    dataset = datasets.get(session, request.dataset_id, project=project)
    if dataset is None:
        raise NotFound(f"dataset {request.dataset_id} does not exist")
    if "dataset_id" in request.base:
        _invalid(["base", "dataset_id"], "give the dataset as the study's dataset_id, not inside base")
    name = request.name or f"study-{secrets.token_hex(4)}"
    register_as = request.register_as or name
    for model_name in (register_as, register_as + TRIALS_SUFFIX):
        if registry.name_owner(session, model_name) not in (None, dataset.project):
            raise Conflict(f"register_as: the model name {model_name!r} is taken by another project; choose another")
    try:
        space.check_pointers(request.base, request.search_space)
        if request.sampler == "grid":
            space.grid(request.search_space)
    except space.SpaceError as exc:
        raise InvalidInput(
            f"search_space[{exc.pointer}]: {exc.message}",
            detail=[{"loc": ["search_space", exc.pointer], "msg": exc.message}],
        ) from exc
    # No transaction held open while the corners are checked (seconds each): the database ends a
    # session idle in a transaction past db_idle_transaction_timeout_s.
    session.commit()
    built: set[str] = set()
    for point in space.corners(request.search_space):
        spec = _check_point(settings, request, dataset, point, built, processes)
        _check_objective(request, spec, point)
    accepted = request.model_copy(update={"name": name, "register_as": register_as})
    study = Study(
        name=name,
        project=dataset.project,
        dataset_id=dataset.id,
        request=accepted.model_dump(mode="json"),
        seed=request.seed if request.seed is not None else secrets.randbelow(2**31),
    )
    session.add(study)
    session.commit()
    return study


def _check_point(
    settings: Settings,
    request: StudyCreate,
    dataset: Dataset,
    point: dict[str, Any],
    built: set[str],
    processes: ProcessPool | None,
) -> TrainingSpec:
    """The job the point gives, checked as POST /v1/jobs checks one; InvalidInput names the pointer.

    The build and dry run are what cost (seconds each on a busy machine), and only the model,
    loss, metrics and batch decide their outcome: points that differ elsewhere (an optimizer's
    learning rate, already checked by the spec's schema) are built once. `built` keeps what was."""
    body = {**space.apply(request.base, point), "dataset_id": dataset.id}
    try:
        job_request = JobCreate.model_validate(body)
        if job_request.max_runtime_s is not None and job_request.max_runtime_s > settings.max_job_runtime_s:
            raise InvalidInput(f"max_runtime_s: at most the server's maximum, {settings.max_job_runtime_s} s")
        shape = job_request.model_dump(mode="json", include={"model", "preprocessing"})
        compiled = job_request.compile.model_dump(mode="json", include={"loss", "loss_weights", "metrics"})
        key = json.dumps([shape, compiled, job_request.fit.batch_size], sort_keys=True)
        spec = jobs.checked_spec(settings, job_request, dataset, build=key not in built, processes=processes)
        built.add(key)
        return spec
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = [str(part) for part in error["loc"]]
        _invalid_point(request, point, loc, str(error["msg"]))
    except InvalidInput as exc:
        loc = [part for part in re.split(r"[.\[\]]+", exc.message.split(":", 1)[0]) if part]
        _invalid_point(request, point, loc, exc.message)
    raise AssertionError("unreachable")


def _invalid_point(request: StudyCreate, point: dict[str, Any], loc: list[str], message: str) -> None:
    """Name the pointer of the space the error is about (the one at or under the failing field,
    else the first one), the point, and the reason."""
    failing = "/" + "/".join(loc)
    pointer = next((p for p in point if failing.startswith(p) or p.startswith(failing)), next(iter(point)))
    where = ", ".join(f"{p}={v!r}" for p, v in point.items())
    message = f"at {where}: {failing}: {message}"
    raise InvalidInput(
        f"search_space[{pointer}]: {message}",
        detail=[{"loc": ["search_space", pointer], "msg": message, "point": point}],
    )


def _check_objective(request: StudyCreate, spec: TrainingSpec, point: dict[str, Any]) -> None:
    """The objective is a name the trials log: loss or a compiled metric, `val_` with a validation split."""
    metric = request.objective.metric
    base = metric.removeprefix("val_")
    if metric != base and spec.fit.validation_split <= 0:
        _invalid(["objective", "metric"], f"{metric!r} is only logged with fit.validation_split above 0 in base")
    names = spec.compile.metrics
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return  # metric objects and per-output metrics: their logged names are Keras's to give
    logged = ["loss", *(str(n) for n in names), *("accuracy" for n in names if str(n) == "acc")]
    if base not in logged:
        available = logged + [f"val_{n}" for n in logged] if spec.fit.validation_split > 0 else logged
        _invalid(["objective", "metric"], f"the trials do not log {metric!r}; they log: {', '.join(available)}")


def _invalid(loc: list[str], message: str) -> None:
    raise InvalidInput(f"{'.'.join(loc)}: {message}", detail=[{"loc": loc, "msg": message}])


def get(session: Session, study_id: str, project: str | None = None) -> Study:
    """The study; NotFound also when it belongs to another project than `project` (None: any)."""
    study = repository.get(session, study_id)
    if study is None or (project is not None and study.project != project):
        raise NotFound(f"study {study_id} does not exist")
    return study


def trials(session: Session, study_id: str) -> list[StudyTrial]:
    return repository.trials(session, study_id)


def list_page(session: Session, limit: int, cursor: str | None, project: str | None) -> Page[Study]:
    return repository.list_page(session, limit, cursor, project)


def cancel(session: Session, study_id: str, project: str | None = None) -> Study:
    """Ask for the study to stop: the driver cancels its unfinished trials and ends it."""
    study = get(session, study_id, project)
    if not study.status.is_final and not study.cancel_requested:
        study.cancel_requested = True
        session.commit()
    return study
