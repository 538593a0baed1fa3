"""/v1/jobs: submit, list, get, metrics, cancel (events: app.api.events); jobs as a summary or in full."""

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status
from starlette.concurrency import run_in_threadpool

from app.api.deps import ProcessesDep, SessionDep, SettingsDep, View, ViewQuery
from app.auth.deps import ReadKey, SubmitKey, TrainKey
from app.auth.limits import check_job_quota
from app.auth.principal import Principal
from app.config import Settings
from app.db.session import session_scope
from app.jobs import service
from app.jobs.metrics import counting_submit
from app.jobs.schemas import JobCreate, JobMetrics, JobOut, JobPage, JobSummary, JobView
from app.ml.door import CheckedSpec, check_spec
from app.models import Job, JobStatus

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


def job_in_view(job: Job, view: View, waiting_for: str | None = None) -> JobOut | JobSummary:
    """The job in the view asked for."""
    return JobOut.of(job, waiting_for) if view is View.FULL else JobSummary.of(job, waiting_for)


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=JobView)
async def submit_job(
    request: JobCreate,
    settings: SettingsDep,
    processes: ProcessesDep,
    principal: SubmitKey,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    view: ViewQuery = View.SUMMARY,
) -> JobOut | JobSummary:
    """Validate the spec against its dataset, store the job, queue it. 422 names the bad field.

    The spec checks (the `keras_config` translation, the model build, the dry run) run in a pool
    process under TRAINYARD_CPU_BUDGET_S: they hold neither the event loop nor this process's GIL."""
    with counting_submit():
        admitted = await run_in_threadpool(_admit, settings, request, idempotency_key, principal, view)
        if not isinstance(admitted, service.Admission):
            return admitted  # the job this Idempotency-Key already made
        with service.spec_errors_as_invalid_input():
            checked = await processes.run("spec checks", check_spec, admitted.check)
        return await run_in_threadpool(_store, settings, request, idempotency_key, principal, admitted, checked, view)


def _admit(
    settings: Settings, request: JobCreate, idempotency_key: str | None, principal: Principal, view: View
) -> JobOut | JobSummary | service.Admission:
    with session_scope(settings.sqlalchemy_url) as session:
        check_job_quota(session, settings, principal.project)
        admitted = service.admit(session, settings, request, idempotency_key, principal.project_filter)
        if isinstance(admitted, service.Admission):
            return admitted
        return job_in_view(admitted, view, service.waiting_for(session, settings, [admitted]).get(admitted.id))


def _store(
    settings: Settings,
    request: JobCreate,
    idempotency_key: str | None,
    principal: Principal,
    admitted: service.Admission,
    checked: CheckedSpec,
    view: View,
) -> JobOut | JobSummary:
    with session_scope(settings.sqlalchemy_url) as session:
        # Again: jobs committed while this one's spec was checked count against the quota too.
        check_job_quota(session, settings, principal.project)
        job = service.store(session, settings, request, idempotency_key, principal.project_filter, admitted, checked)
        return job_in_view(job, view, service.waiting_for(session, settings, [job]).get(job.id))


@router.get("", response_model=JobPage)
def list_jobs(
    session: SessionDep,
    settings: SettingsDep,
    principal: ReadKey,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
    status: JobStatus | None = None,
    dataset_id: str | None = None,
    name: str | None = None,
    study_id: Annotated[str | None, Query(max_length=64, description="a study's trials")] = None,
    project: Annotated[str | None, Query(max_length=64, description="admin keys: one project's only")] = None,
    view: ViewQuery = View.SUMMARY,
) -> JobPage:
    page = service.list_page(
        session,
        limit,
        cursor,
        status=status,
        dataset_id=dataset_id,
        name=name,
        study_id=study_id,
        project=principal.list_filter(project),
    )
    waiting = service.waiting_for(session, settings, page.items)
    items = [job_in_view(job, view, waiting.get(job.id)) for job in page.items]
    return JobPage(items=items, next_cursor=page.next_cursor)


@router.get("/{job_id}", response_model=JobView)
def get_job(
    job_id: str, session: SessionDep, settings: SettingsDep, principal: ReadKey, view: ViewQuery = View.SUMMARY
) -> JobOut | JobSummary:
    job = service.get(session, job_id, principal.project_filter)
    return job_in_view(job, view, service.waiting_for(session, settings, [job]).get(job.id))


@router.get("/{job_id}/metrics", response_model=JobMetrics)
def get_job_metrics(job_id: str, session: SessionDep, principal: ReadKey) -> JobMetrics:
    """Per-epoch logs of the job's latest attempt."""
    attempt, epochs = service.epochs(session, job_id, principal.project_filter)
    return JobMetrics(attempt=attempt, epochs=epochs)


@router.post(
    "/{job_id}/cancel",
    response_model=JobView,
    status_code=status.HTTP_202_ACCEPTED,
    responses={200: {"model": JobView, "description": "the job had already ended: nothing to cancel"}},
)
def cancel_job(
    job_id: str, session: SessionDep, response: Response, principal: TrainKey, view: ViewQuery = View.SUMMARY
) -> JobOut | JobSummary:
    """202 while the cancel takes effect; 200 when the job already ended (cancelled or not)."""
    job = service.get(session, job_id, principal.project_filter)
    if job.status.is_final:
        response.status_code = status.HTTP_200_OK
        return job_in_view(job, view)
    return job_in_view(service.cancel(session, job_id, principal.project_filter), view)
