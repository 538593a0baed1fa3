"""Job events: the JSON list of a job's transitions, or (Accept: text/event-stream) live SSE."""

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from fastapi.concurrency import run_in_threadpool
from sse_starlette import EventSourceResponse

from app.api.deps import SettingsDep
from app.auth.deps import ReadKey
from app.config import Settings
from app.db.session import session_scope
from app.events import stream
from app.events.fanout import RecentEvents
from app.events.wakeup import Bell
from app.jobs import service
from app.jobs.schemas import JobEventOut
from app.models import JobStatus

router = APIRouter(tags=["events"])

SSE = "text/event-stream"
_SSE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {SSE: {"schema": {"type": "string"}}}, "description": "JSON, or SSE when asked"}
}
LastEventId = Annotated[str | None, Header(alias="Last-Event-ID", max_length=64)]


def _wants_stream(request: Request) -> bool:
    return SSE in request.headers.get("accept", "")


def _bell(request: Request) -> Bell:
    bell: Bell = request.app.state.event_bell
    return bell


@router.get("/v1/jobs/{job_id}/events", response_model=list[JobEventOut], responses=_SSE_RESPONSE)
async def job_events(
    job_id: str, request: Request, settings: SettingsDep, principal: ReadKey, last_event_id: LastEventId = None
) -> Response | list[JobEventOut]:
    """Every status transition of the job, oldest first (JSON). With `Accept: text/event-stream`:
    its `status` and `epoch` events live, then `end`; `Last-Event-ID` resumes after that event."""
    if not _wants_stream(request):
        return await run_in_threadpool(_transitions, settings, job_id, principal.project_filter)
    resume = stream.parse_last_event_id(last_event_id)
    await run_in_threadpool(_transitions, settings, job_id, principal.project_filter)  # 404 before the stream starts
    if resume is not None and resume.ended:
        return Response(status_code=204)  # SSE: a client told 204 stops reconnecting
    events = stream.job_events(settings, _bell(request), job_id, resume.after if resume else 0)
    return EventSourceResponse(events, ping=settings.events_keepalive_s)


@router.get("/v1/events", responses=_SSE_RESPONSE, response_class=EventSourceResponse)
async def all_events(
    request: Request,
    settings: SettingsDep,
    principal: ReadKey,
    last_event_id: LastEventId = None,
    status: JobStatus | None = None,
    name: str | None = None,
) -> EventSourceResponse:
    """Every job's events, live (SSE; from now on, or after `Last-Event-ID`). `status`: events
    that left their job in that status; `name`: one job name's. Each event's data has `job_id`."""
    resume = stream.parse_last_event_id(last_event_id)
    # "From now" is now, before the response starts: an event committed while the client reads
    # the headers is not skipped.
    after = resume.after if resume else await run_in_threadpool(stream.latest_id, settings.sqlalchemy_url)
    recent: RecentEvents = request.app.state.recent_events
    events = stream.all_events(settings, _bell(request), recent, after, status, name, principal.project_filter)
    return EventSourceResponse(events, ping=settings.events_keepalive_s)


def _transitions(settings: Settings, job_id: str, project: str | None) -> list[JobEventOut]:
    with session_scope(settings.sqlalchemy_url) as session:
        return [JobEventOut.model_validate(event) for event in service.events(session, job_id, project)]
