"""The inference side of the API: what a serving-only process answers (no Keras import)."""

from fastapi import APIRouter

from app.api import explain, health, models, v2

serving_router = APIRouter()
serving_router.include_router(health.router)
serving_router.include_router(models.router)
serving_router.include_router(v2.router)
serving_router.include_router(explain.router)
