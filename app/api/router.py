"""All routers of the API, in one place."""

from fastapi import APIRouter

from app.api import curves, datasets, events, jobs, keys, logs, spec, studies, ui
from app.api.serving_routes import serving_router

api_router = APIRouter()
api_router.include_router(serving_router)
api_router.include_router(datasets.router)
api_router.include_router(jobs.router)
api_router.include_router(events.router)
api_router.include_router(curves.router)
api_router.include_router(logs.router)
api_router.include_router(spec.router)
api_router.include_router(keys.router)
api_router.include_router(ui.router)
api_router.include_router(studies.router)
