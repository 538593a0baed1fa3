"""The predict path: a version, from the cache (loaded on first use), run on request rows."""

from typing import Any

from app.config import Settings
from app.errors import BadRequest
from app.models import ModelVersion
from app.serving.model_cache import ModelCache
from app.serving.predict import LoadedModel, PredictInputError, rows_to_array


class Predictor:
    """Holds the process's loaded models. Its methods block: call them from a worker thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cache: ModelCache[LoadedModel] = ModelCache(settings.model_cache_size)

    def load(self, version: ModelVersion) -> LoadedModel:
        spec = version.signature["inputs"][0]
        path = self.settings.artifacts_dir / version.artifact_path
        return self.cache.get(
            (version.name, version.version),
            lambda: LoadedModel(path, [int(d) for d in spec["shape"][1:]], spec["dtype"]),
        )

    def predict_rows(self, version: ModelVersion, instances: Any) -> list[Any]:
        loaded = self.load(version)
        try:
            x = rows_to_array(instances, loaded.input_shape, loaded.input_dtype)
        except PredictInputError as exc:
            raise BadRequest(str(exc)) from exc
        return loaded.predict(x).tolist()
