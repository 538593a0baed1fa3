"""All routers of the API, in one place."""

from fastapi import APIRouter

from app.api import datasets, jobs, spec
from app.api.serving_routes import serving_router

api_router = APIRouter()
api_router.include_router(serving_router)
api_router.include_router(datasets.router)
api_router.include_router(jobs.router)
api_router.include_router(spec.router)
