"""Bodies of /v1/models, shaped like TensorFlow Serving's REST API where it has one."""

from typing import Any

from pydantic import BaseModel, Field

from app.models import ModelVersion


class ModelItem(BaseModel):
    name: str
    latest_version: int
    labels: dict[str, int]


class ModelList(BaseModel):
    items: list[ModelItem]


class VersionStatus(BaseModel):
    version: str
    state: str = "AVAILABLE"
    status: dict[str, str] = Field(default_factory=lambda: {"error_code": "OK", "error_message": ""})
    job_id: str
    created_at: str
    metrics: dict[str, Any]


class ModelStatus(BaseModel):
    model_version_status: list[VersionStatus]

    @classmethod
    def of(cls, versions: list[ModelVersion]) -> "ModelStatus":
        return cls(
            model_version_status=[
                VersionStatus(
                    version=str(v.version),
                    job_id=v.job_id,
                    created_at=v.created_at.isoformat(),
                    metrics=v.metrics,
                )
                for v in versions
            ]
        )


class ModelMetadata(BaseModel):
    model_spec: dict[str, str]
    metadata: dict[str, Any]

    @classmethod
    def of(cls, version: ModelVersion) -> "ModelMetadata":
        return cls(
            model_spec={
                "name": version.name,
                "signature_name": "serving_default",
                "version": str(version.version),
            },
            metadata={"signature_def": {"serving_default": version.signature}},
        )


PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "instances": {"type": "array", "description": "row format"},
                        "inputs": {"description": "columnar format"},
                        "signature_name": {"type": "string"},
                    },
                }
            }
        },
    }
}


class LabelUpdate(BaseModel):
    version: int = Field(ge=1)
