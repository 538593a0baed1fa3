"""All routers of the API, in one place."""

from fastapi import APIRouter

from app.api import datasets, health, jobs, models, spec

api_router = APIRouter()
api_router.include_router(health.router)
api_router.include_router(datasets.router)
api_router.include_router(jobs.router)
api_router.include_router(models.router)
api_router.include_router(spec.router)
