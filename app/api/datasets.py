"""/v1/datasets: streamed upload (deduplicated), list, get, preview, stats, delete."""

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import BaseModel

from app.api.deps import CpuDep, ServingDep, SessionDep, SettingsDep, View, ViewQuery
from app.auth.deps import DeployKey, ReadKey, TrainKey
from app.auth.limits import check_dataset_quota
from app.config import Settings
from app.cpu_pool import PoolFull, ProcessPool, Ticket
from app.datasets import service
from app.datasets.parsing import FORMATS, ParseOptions, parse_file
from app.datasets.schema import ParseLimits, StoredDataset
from app.datasets.schemas import DatasetOut, DatasetPage, DatasetSummary, DatasetView, PreviewOut, StatsOut
from app.datasets.upload import ReceivedUpload
from app.db.session import session_scope

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])
Shown = TypeVar("Shown", bound=BaseModel)

UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "name": {"type": "string"},
                        "format": {"type": "string", "enum": list(FORMATS)},
                        "target": {
                            "type": "string",
                            "description": "tabular: label column(s), comma-separated; default: the last column",
                        },
                        "image_size": {
                            "type": "string",
                            "description": "zip: 'height,width' to resize images to",
                            "default": "256,256",
                        },
                        "color_mode": {
                            "type": "string",
                            "enum": ["rgb", "grayscale", "rgba"],
                            "default": "rgb",
                        },
                    },
                }
            }
        },
    }
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DatasetView,
    openapi_extra=UPLOAD_BODY,
    responses={
        200: {
            "model": DatasetView,
            "description": "already stored: the same bytes and parse options were uploaded before",
        }
    },
)
async def upload_dataset(
    request: Request,
    response: Response,
    settings: SettingsDep,
    cpu: CpuDep,
    serving: ServingDep,
    principal: TrainKey,
    view: ViewQuery = View.SUMMARY,
) -> DatasetOut | DatasetSummary:
    """Stream the upload to disk under the size limit, then parse and store it once (on the
    bounded CPU pool, under TRAINYARD_INGEST_BUDGET_S)."""
    upload = await service.receive(settings, request.headers.get("content-type", ""), request.stream())
    try:
        dataset, created = await cpu.run_committing(
            settings.ingest_budget_s, "dataset parsing", _ingest, settings, serving.decoders, upload, principal.project
        )
    except PoolFull:
        upload.path.unlink(missing_ok=True)  # refused before it ran: nothing else holds the file
        raise
    if not created:
        response.status_code = status.HTTP_200_OK
    return dataset_in_view(dataset, view)


def dataset_in_view(dataset: DatasetOut, view: View) -> DatasetOut | DatasetSummary:
    """The dataset in the view asked for."""
    return dataset if view is View.FULL else DatasetSummary.of(dataset)


def _ingest(
    ticket: Ticket, settings: Settings, processes: ProcessPool, upload: ReceivedUpload, project: str
) -> tuple[DatasetOut, bool]:
    # The parsing itself in a light pool process (the one predict decoding uses, no Keras, warm
    # within a second of start): this thread waits for it without the GIL, so the
    # event loop keeps answering (pure-Python parsing on a thread held it for ~100 ms at a time).
    def parse(path: Path, options: ParseOptions, limits: ParseLimits, directory: Path) -> StoredDataset:
        return processes.call(settings.ingest_budget_s, "dataset parsing", parse_file, path, options, limits, directory)

    # A session of its own: past the budget the request has ended while this thread parses.
    with session_scope(settings.sqlalchemy_url) as session:
        try:
            check_dataset_quota(session, settings, project, upload.size_bytes)
        except BaseException:
            upload.path.unlink(missing_ok=True)
            raise
        dataset, created = service.ingest(session, settings, upload, project, ticket, parse)
        return DatasetOut.model_validate(dataset), created


@router.get("", response_model=DatasetPage)
def list_datasets(
    session: SessionDep,
    principal: ReadKey,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
    project: Annotated[str | None, Query(max_length=64, description="admin keys: one project's only")] = None,
    view: ViewQuery = View.SUMMARY,
) -> DatasetPage:
    page = service.list_page(session, limit, cursor, principal.list_filter(project))
    return DatasetPage(
        items=[dataset_in_view(DatasetOut.model_validate(d), view) for d in page.items], next_cursor=page.next_cursor
    )


@router.get("/{dataset_id}", response_model=DatasetView)
def get_dataset(
    dataset_id: str, session: SessionDep, principal: ReadKey, view: ViewQuery = View.SUMMARY
) -> DatasetOut | DatasetSummary:
    return dataset_in_view(DatasetOut.model_validate(service.get(session, dataset_id, principal.project_filter)), view)


@router.get("/{dataset_id}/preview", response_model=PreviewOut)
async def preview_dataset(
    dataset_id: str,
    settings: SettingsDep,
    cpu: CpuDep,
    principal: ReadKey,
    rows: Annotated[int, Query(ge=1, le=1000)] = 20,
) -> PreviewOut:
    """The first rows, decoded from the stored arrays (CPU work: on the bounded pool)."""
    return await cpu.run(
        "dataset previews", _inspect, settings, PreviewOut, service.preview, dataset_id, rows, principal.project_filter
    )


@router.get("/{dataset_id}/stats", response_model=StatsOut)
async def dataset_stats(dataset_id: str, settings: SettingsDep, cpu: CpuDep, principal: ReadKey) -> StatsOut:
    """Per-column statistics (computed once for datasets stored before they were kept)."""
    return await cpu.run(
        "dataset statistics", _inspect, settings, StatsOut, service.stats, dataset_id, principal.project_filter
    )


def _inspect(settings: Settings, out: type[Shown], read: Callable[..., dict[str, Any]], *args: Any) -> Shown:
    with session_scope(settings.sqlalchemy_url) as session:
        return out.model_validate(read(session, settings, *args))


@router.delete("/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_dataset(dataset_id: str, session: SessionDep, settings: SettingsDep, principal: DeployKey) -> None:
    service.delete(session, settings, dataset_id, principal.project_filter)
