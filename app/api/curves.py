"""Pictures of a job's training curves: GET /v1/jobs/{id}/curves.svg and .png."""

from typing import Annotated

from fastapi import APIRouter, Header, Response

from app.api.deps import SessionDep
from app.auth.deps import ReadKey
from app.jobs import curves, service

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
IfNoneMatch = Annotated[str | None, Header(max_length=200)]


def _picture(
    job_id: str, session: SessionDep, project: str | None, fmt: curves.Format, if_none_match: str | None
) -> Response:
    job, points = service.curve_points(session, job_id, project)
    title = f"{job.name} ({job.status.value})"
    headers = {"ETag": curves.etag(job_id, title, points, fmt), "Cache-Control": "no-cache"}
    if if_none_match == headers["ETag"]:
        return Response(status_code=304, headers=headers)
    picture = curves.render_once(headers["ETag"], title, points, fmt)
    return Response(picture, media_type=fmt.media_type, headers=headers)


def _responses(media_type: str) -> dict[int | str, dict[str, object]]:
    return {200: {"content": {media_type: {}}, "description": "The picture"}, 304: {"description": "Unchanged"}}


@router.get("/{job_id}/curves.svg", response_class=Response, responses=_responses("image/svg+xml"))
def curves_svg(job_id: str, session: SessionDep, principal: ReadKey, if_none_match: IfNoneMatch = None) -> Response:
    """Loss and each metric per epoch (training vs validation, attempt boundaries marked), SVG."""
    return _picture(job_id, session, principal.project_filter, curves.Format.SVG, if_none_match)


@router.get("/{job_id}/curves.png", response_class=Response, responses=_responses("image/png"))
def curves_png(job_id: str, session: SessionDep, principal: ReadKey, if_none_match: IfNoneMatch = None) -> Response:
    """The same picture as PNG."""
    return _picture(job_id, session, principal.project_filter, curves.Format.PNG, if_none_match)
