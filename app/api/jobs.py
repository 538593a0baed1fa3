"""/v1/jobs: submit, list, get, metrics, events, cancel."""

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status

from app.api.deps import SessionDep, SettingsDep
from app.jobs import service
from app.jobs.schemas import JobCreate, JobEventOut, JobMetrics, JobOut, JobPage
from app.models import JobStatus

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=JobOut)
def submit_job(
    request: JobCreate,
    session: SessionDep,
    settings: SettingsDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> JobOut:
    """Validate the spec against its dataset, store the job, queue it. 422 names the bad field."""
    return JobOut.of(service.submit(session, settings, request, idempotency_key))


@router.get("", response_model=JobPage)
def list_jobs(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
    status: JobStatus | None = None,
    dataset_id: str | None = None,
    name: str | None = None,
) -> JobPage:
    page = service.list_page(session, limit, cursor, status=status, dataset_id=dataset_id, name=name)
    return JobPage(items=[JobOut.of(job) for job in page.items], next_cursor=page.next_cursor)


@router.get("/{job_id}", response_model=JobOut)
def get_job(job_id: str, session: SessionDep) -> JobOut:
    return JobOut.of(service.get(session, job_id))


@router.get("/{job_id}/metrics", response_model=JobMetrics)
def get_job_metrics(job_id: str, session: SessionDep) -> JobMetrics:
    """Per-epoch logs of the job's latest attempt."""
    attempt, epochs = service.epochs(session, job_id)
    return JobMetrics(attempt=attempt, epochs=epochs)


@router.get("/{job_id}/events", response_model=list[JobEventOut])
def get_job_events(job_id: str, session: SessionDep) -> list[JobEventOut]:
    """Every status transition of the job, oldest first."""
    return [JobEventOut.model_validate(event) for event in service.events(session, job_id)]


@router.post("/{job_id}/cancel", response_model=JobOut, status_code=status.HTTP_202_ACCEPTED)
def cancel_job(job_id: str, session: SessionDep, response: Response) -> JobOut:
    """202 while the cancel takes effect; 200 when the job already ended (cancelled or not)."""
    job = service.get(session, job_id)
    if job.status.is_final:
        response.status_code = status.HTTP_200_OK
        return JobOut.of(job)
    return JobOut.of(service.cancel(session, job_id))
