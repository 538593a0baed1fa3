"""/ui: the dashboard. Page shells and static files are open; the data comes in fragments.

A browser cannot put an `Authorization` header on a navigation, so the pages themselves carry no
project data (they are the same for everyone, like a static file). Their script sends the key a
user typed (kept in sessionStorage) on fetches of `/ui/fragments/…`, server-rendered HTML
under the read scope and scoped to the key's project exactly like /v1, and of the /v1 event
streams (followed with fetch, since EventSource cannot send headers). See README "Dashboard".
"""

from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from starlette.templating import Jinja2Templates

from app.api.deps import CpuDep, SessionDep, SettingsDep
from app.auth.deps import OPEN, ReadKey
from app.config import Settings
from app.db.session import session_scope
from app.errors import NotFound
from app.models import JobStatus
from app.ui import views

UI_DIR = FilePath(__file__).resolve().parent.parent / "ui"
STATIC_DIR = UI_DIR / "static"
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png", ".svg": "image/svg+xml"}
JOBS_PER_PAGE = 50

router = APIRouter(tags=["dashboard"], include_in_schema=False)
Open = Depends(OPEN)
Id = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


def _metric(value: Any) -> str:
    """A metric cell: floats to 4 significant digits, the rest as they are."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


templates = Jinja2Templates(directory=UI_DIR / "templates")
templates.env.filters["metric"] = _metric


def _page(request: Request, template: str, page: str, **data: str) -> HTMLResponse:
    context = {"page": page, "data": data, "statuses": [s.value for s in JobStatus]}
    # no-cache: a shell is tiny, and after an upgrade it must name the new script at once.
    return templates.TemplateResponse(request, template, context, headers={"Cache-Control": "no-cache"})


@router.get("/", dependencies=[Open])
async def root() -> RedirectResponse:
    return RedirectResponse("/ui", status_code=307)


@router.get("/ui", response_class=HTMLResponse, dependencies=[Open])
async def jobs_page(request: Request) -> HTMLResponse:
    return _page(request, "jobs.html", "jobs")


@router.get("/ui/jobs/{job_id}", response_class=HTMLResponse, dependencies=[Open])
async def job_page(request: Request, job_id: Id) -> HTMLResponse:
    return _page(request, "job.html", "job", **{"job-id": job_id})


@router.get("/ui/models", response_class=HTMLResponse, dependencies=[Open])
async def models_page(request: Request) -> HTMLResponse:
    return _page(request, "models.html", "models")


@router.get("/ui/datasets/{dataset_id}", response_class=HTMLResponse, dependencies=[Open])
async def dataset_page(request: Request, dataset_id: Id) -> HTMLResponse:
    return _page(request, "dataset.html", "dataset", **{"dataset-id": dataset_id})


@router.get("/ui/static/{filename}", dependencies=[Open])
async def static_file(filename: Annotated[str, Path(pattern=r"^[a-z0-9_-]+\.[a-z]+$")]) -> FileResponse:
    """The dashboard's own scripts and styles (served here: the page must work air-gapped)."""
    found = STATIC_DIR / filename
    media_type = STATIC_TYPES.get(found.suffix)
    if media_type is None or not found.is_file():
        raise NotFound(f"/ui/static/{filename} does not exist")
    return FileResponse(found, media_type=media_type, headers={"Cache-Control": "no-cache"})


@router.get("/ui/fragments/jobs", response_class=HTMLResponse)
def jobs_fragment(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: ReadKey,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    status: JobStatus | None = None,
    name: Annotated[str | None, Query(max_length=200)] = None,
) -> HTMLResponse:
    """Rows of the jobs table, one keyset page; the next page's cursor in `Next-Cursor`."""
    rows = views.job_rows(session, settings, JOBS_PER_PAGE, cursor, status, name or None, principal.project_filter)
    headers = {"Cache-Control": "no-store"}
    if rows.next_cursor:
        headers["Next-Cursor"] = rows.next_cursor
    return templates.TemplateResponse(
        request, "_job_rows.html", {"rows": rows, "first": cursor is None}, headers=headers
    )


@router.get("/ui/fragments/jobs/{job_id}", response_class=HTMLResponse)
def job_fragment(
    request: Request, job_id: Id, session: SessionDep, settings: SettingsDep, principal: ReadKey
) -> HTMLResponse:
    """The job page's body: spec, status history, metrics table, error, model version."""
    detail = views.job_detail(session, settings, job_id, principal.project_filter)
    return templates.TemplateResponse(request, "_job.html", {"detail": detail}, headers={"Cache-Control": "no-store"})


@router.get("/ui/fragments/models", response_class=HTMLResponse)
def models_fragment(request: Request, session: SessionDep, principal: ReadKey) -> HTMLResponse:
    """Every model the key can see: labels, versions, the form that moves a label."""
    shown = views.models(session, principal.project_filter)
    return templates.TemplateResponse(request, "_models.html", {"models": shown}, headers={"Cache-Control": "no-store"})


@router.get("/ui/fragments/datasets/{dataset_id}", response_class=HTMLResponse)
async def dataset_fragment(
    request: Request, dataset_id: Id, settings: SettingsDep, cpu: CpuDep, principal: ReadKey
) -> HTMLResponse:
    """Schema, preview and statistics (decoding the stored arrays is CPU work: the bounded pool)."""
    view = await cpu.run("dataset previews", _dataset_view, settings, dataset_id, principal.project_filter)
    return templates.TemplateResponse(request, "_dataset.html", {"view": view}, headers={"Cache-Control": "no-store"})


def _dataset_view(settings: Settings, dataset_id: str, project: str | None) -> views.DatasetView:
    with session_scope(settings.sqlalchemy_url) as session:
        return views.dataset(session, settings, dataset_id, project)
