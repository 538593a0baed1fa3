"""Bodies of /v1/models, shaped like TensorFlow Serving's REST API where it has one."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.compress.schemas import Bill, Lineage
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
    # API.md "Distillation, compression, lineage": null for a trained version without a bill yet.
    lineage: Lineage | None = None
    bill: Bill | None = None


class ModelStatus(BaseModel):
    model_version_status: list[VersionStatus]

    @classmethod
    def of(cls, versions: list[ModelVersion], states: dict[int, tuple[str, str]] | None = None) -> "ModelStatus":
        """`states`: this process's (state, load error) per version; AVAILABLE when absent."""
        states = states or {}
        return cls(
            model_version_status=[
                VersionStatus(
                    version=str(v.version),
                    state=states.get(v.version, ("AVAILABLE", ""))[0],
                    status=_status(*states.get(v.version, ("AVAILABLE", ""))),
                    job_id=v.job_id,
                    created_at=v.created_at.isoformat(),
                    metrics=v.metrics,
                    lineage=Lineage.model_validate(v.lineage) if v.lineage else None,
                    bill=Bill.model_validate(v.bill) if v.bill else None,
                )
                for v in versions
            ]
        )


def _status(state: str, error: str) -> dict[str, str]:
    return {"error_code": "UNKNOWN" if error else "OK", "error_message": error}


# TensorFlow's names for the dtypes a signature can carry (TF Serving's metadata uses these).
TF_DTYPES = {
    "float16": "DT_HALF",
    "float32": "DT_FLOAT",
    "float64": "DT_DOUBLE",
    "int8": "DT_INT8",
    "int16": "DT_INT16",
    "int32": "DT_INT32",
    "int64": "DT_INT64",
    "uint8": "DT_UINT8",
    "uint16": "DT_UINT16",
    "uint32": "DT_UINT32",
    "uint64": "DT_UINT64",
    "bool": "DT_BOOL",
    "string": "DT_STRING",
}


def tf_signature_def(signature: dict[str, Any]) -> dict[str, Any]:
    """The signature as TF Serving's GetModelMetadata writes a SignatureDef."""

    def tensors(specs: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            spec["name"]: {
                "dtype": TF_DTYPES.get(spec["dtype"], "DT_INVALID"),
                "tensor_shape": {
                    "dim": [{"size": str(d), "name": ""} for d in spec["shape"]],
                    "unknown_rank": False,
                },
                "name": spec["name"],
            }
            for spec in specs
        }

    return {
        "inputs": tensors(signature["inputs"]),
        "outputs": tensors(signature["outputs"]),
        "method_name": "tensorflow/serving/predict",
    }


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
            metadata={
                # `serving_default` is trainyard's own form (names, shapes, dtypes, classes);
                # `signature_def.serving_default` is the SignatureDef TF Serving clients parse.
                "signature_def": {
                    "serving_default": version.signature,
                    "signature_def": {"serving_default": tf_signature_def(version.signature)},
                },
                "serving": {"runtime": version.serving_runtime, "check": version.serving_check},
                # Permutation importance from training (also at .../importance), or why none.
                "importance": version.importance,
            },
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
    model_config = ConfigDict(strict=True)  # `true` is not version 1

    version: int = Field(ge=1, le=2**63 - 1)
