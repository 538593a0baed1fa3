"""/v1/studies: create, list, get, cancel, and the study's picture."""

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from app.api.deps import CpuDep, ProcessesDep, SessionDep, SettingsDep
from app.auth.deps import ReadKey, SubmitKey, TrainKey
from app.auth.principal import Principal
from app.config import Settings
from app.cpu_pool import ProcessPool, Ticket
from app.db.session import session_scope
from app.studies import plot, service
from app.studies.schemas import StudyCreate, StudyOut, StudyPage

router = APIRouter(prefix="/v1/studies", tags=["studies"])


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=StudyOut)
async def create_study(
    request: StudyCreate, settings: SettingsDep, cpu: CpuDep, processes: ProcessesDep, principal: SubmitKey
) -> StudyOut:
    """Check every corner of the search space as a job (422 names the pointer), store the study;
    the driver starts its trials. The corner checks build models: each in a pool process, waited
    for on the bounded CPU pool's thread."""
    return await cpu.run_committing(cpu.budget_s, "study checks", _create, settings, request, principal, processes)


def _create(
    ticket: Ticket, settings: Settings, request: StudyCreate, principal: Principal, processes: ProcessPool
) -> StudyOut:
    with session_scope(settings.sqlalchemy_url) as session:
        ticket.check()
        study = service.create(session, settings, request, principal.project_filter, processes)
        return StudyOut.of(study, [])


@router.get("", response_model=StudyPage)
def list_studies(
    session: SessionDep,
    principal: ReadKey,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
    project: Annotated[str | None, Query(max_length=64, description="admin keys: one project's only")] = None,
) -> StudyPage:
    page = service.list_page(session, limit, cursor, principal.list_filter(project))
    return StudyPage(
        items=[StudyOut.of(study, service.trials(session, study.id)) for study in page.items],
        next_cursor=page.next_cursor,
    )


@router.get("/{study_id}", response_model=StudyOut)
def get_study(study_id: str, session: SessionDep, principal: ReadKey) -> StudyOut:
    """The study, its trials (params, value, status) and its best trial."""
    study = service.get(session, study_id, principal.project_filter)
    return StudyOut.of(study, service.trials(session, study_id))


@router.post(
    "/{study_id}/cancel",
    response_model=StudyOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses={200: {"model": StudyOut, "description": "the study had already ended"}},
)
def cancel_study(study_id: str, session: SessionDep, response: Response, principal: TrainKey) -> StudyOut:
    """202: the driver cancels the unfinished trials and ends the study; 200 when it had ended."""
    study = service.get(session, study_id, principal.project_filter)
    if study.status.is_final:
        response.status_code = status.HTTP_200_OK
    else:
        study = service.cancel(session, study_id, principal.project_filter)
    return StudyOut.of(study, service.trials(session, study_id))


@router.get(
    "/{study_id}/plot.svg",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}, "description": "The picture"}},
)
def study_plot(study_id: str, session: SessionDep, principal: ReadKey) -> Response:
    """The objective per trial (best so far marked) and the parameters in parallel coordinates."""
    study = service.get(session, study_id, principal.project_filter)
    out = StudyOut.of(study, service.trials(session, study_id))
    request = StudyCreate.model_validate(study.request)
    points = [plot.TrialPoint(t.number, t.status.value, t.value, t.params) for t in out.trials]
    title = f"{study.name} ({study.status.value}, {len(points)}/{out.max_trials} trials)"
    svg = plot.render(title, out.objective.metric, out.objective.goal() == "maximize", request.search_space, points)
    return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "no-cache"})
