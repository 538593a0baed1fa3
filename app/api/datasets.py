"""/v1/datasets: streamed upload (deduplicated), list, get, preview, stats, delete."""

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool

from app.api.deps import SessionDep, SettingsDep
from app.datasets import service
from app.datasets.parsing import FORMATS
from app.datasets.schemas import DatasetOut, DatasetPage, PreviewOut, StatsOut

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])

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
    response_model=DatasetOut,
    openapi_extra=UPLOAD_BODY,
    responses={
        200: {
            "model": DatasetOut,
            "description": "already stored: the same bytes and parse options were uploaded before",
        }
    },
)
async def upload_dataset(
    request: Request, response: Response, session: SessionDep, settings: SettingsDep
) -> DatasetOut:
    """Stream the upload to disk under the size limit, then parse and store it once."""
    upload = await service.receive(settings, request.headers.get("content-type", ""), request.stream())
    dataset, created = await run_in_threadpool(service.ingest, session, settings, upload)
    if not created:
        response.status_code = status.HTTP_200_OK
    return DatasetOut.model_validate(dataset)


@router.get("", response_model=DatasetPage)
def list_datasets(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> DatasetPage:
    page = service.list_page(session, limit, cursor)
    return DatasetPage(items=[DatasetOut.model_validate(d) for d in page.items], next_cursor=page.next_cursor)


@router.get("/{dataset_id}", response_model=DatasetOut)
def get_dataset(dataset_id: str, session: SessionDep) -> DatasetOut:
    return DatasetOut.model_validate(service.get(session, dataset_id))


@router.get("/{dataset_id}/preview", response_model=PreviewOut)
def preview_dataset(
    dataset_id: str,
    session: SessionDep,
    settings: SettingsDep,
    rows: Annotated[int, Query(ge=1, le=1000)] = 20,
) -> PreviewOut:
    return PreviewOut.model_validate(service.preview(session, settings, dataset_id, rows))


@router.get("/{dataset_id}/stats", response_model=StatsOut)
def dataset_stats(dataset_id: str, session: SessionDep, settings: SettingsDep) -> StatsOut:
    return StatsOut.model_validate(service.stats(session, settings, dataset_id))


@router.delete("/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_dataset(dataset_id: str, session: SessionDep, settings: SettingsDep) -> None:
    service.delete(session, settings, dataset_id)
