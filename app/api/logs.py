"""GET /v1/jobs/{id}/logs: the worker's log lines for a job, all attempts (text/plain)."""

from typing import Any

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from app.api.deps import SettingsDep
from app.auth.deps import ReadKey
from app.jobs import job_logs

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
_TEXT: dict[int | str, dict[str, Any]] = {200: {"content": {"text/plain": {}}, "description": "The log lines"}}


@router.get("/{job_id}/logs", response_class=Response, responses=_TEXT)
async def job_log(job_id: str, settings: SettingsDep, principal: ReadKey, follow: bool = False) -> Response:
    """Every line the workers logged about the job, oldest first; `follow=true` keeps the
    response open and sends new lines as they come, until the job has ended."""
    # A session of its own, not SessionDep's: that one would hold a connection while following.
    await run_in_threadpool(job_logs.require_job, settings, job_id, principal.project_filter)
    if follow:
        headers = {"X-Accel-Buffering": "no", "Cache-Control": "no-store"}
        return StreamingResponse(job_logs.follow(settings, job_id), media_type="text/plain", headers=headers)
    body = await run_in_threadpool(job_logs.read_from, settings.artifacts_dir, job_id, 0)
    return Response(body, media_type="text/plain")
