"""The trainyard Python SDK: `Client(url).datasets`, `.jobs`, `.models`, with typed results."""

import builtins
import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from rich.console import Console

from app.client.events import follow
from app.client.progress import display_for
from app.client.transport import Transport
from app.client.types import Dataset, EndEvent, JobEvent, JobInfo, JobMetrics, ModelItem, ModelVersion

Rows = np.ndarray | Mapping[str, np.ndarray] | Sequence[Any]
# The SDK's results carry the whole object (a dataset's schema, a job's spec): the API answers a
# summary unless asked for the full view.
FULL = {"view": "full"}


class Client:
    """A connection to a trainyard server.

    Args:
        url: the server (default: `TRAINYARD_URL`, else http://127.0.0.1:8000).
        api_key: a key from `trainyard keys create` (default: `TRAINYARD_API_KEY`).
        retries: how often a request safe to repeat is retried on 429, 503 or a connection error.
    """

    def __init__(self, url: str | None = None, api_key: str | None = None, *, retries: int = 5, **kwargs: Any) -> None:
        self.transport = Transport(url, api_key, retries=retries, **kwargs)
        self.datasets = Datasets(self.transport)
        self.jobs = Jobs(self.transport)
        self.models = Models(self.transport)

    @property
    def url(self) -> str:
        return self.transport.url

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Datasets:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def upload(self, path: str | Path, *, target: str | None = None, name: str | None = None, **fields: str) -> Dataset:
        """Upload a data file (CSV, Parquet, JSONL, NPZ, a ZIP of images). Uploading the same bytes
        again answers the stored dataset, so a retried upload never stores two.

        Args:
            target: the label column(s), comma-separated (default: the last column).
            fields: more form fields (`format`, `image_size`, `text_columns`, …).
        """
        path = Path(path)
        form = {k: v for k, v in {"target": target, "name": name, **fields}.items() if v is not None}
        with path.open("rb") as file:
            response = self._t.request(
                "POST", "/v1/datasets", idempotent=True, params=FULL, data=form, files={"file": (path.name, file)}
            )
        return Dataset.model_validate(response.json())

    def list(self, limit: int = 100) -> list[Dataset]:
        """Every dataset the key can see, newest first (all pages)."""
        return [Dataset.model_validate(item) for item in _pages(self._t, "/v1/datasets", {"limit": limit} | FULL)]

    def get(self, dataset_id: str) -> Dataset:
        return Dataset.model_validate(
            self._t.request("GET", f"/v1/datasets/{dataset_id}", idempotent=True, params=FULL).json()
        )


class Job:
    """A handle on one training job: `info` is its last-read state."""

    def __init__(self, transport: Transport, info: JobInfo) -> None:
        self._t = transport
        self.info = info

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def status(self) -> str:
        return self.info.status

    def __repr__(self) -> str:
        return f"Job(id={self.id!r}, name={self.info.name!r}, status={self.status!r})"

    def refresh(self) -> JobInfo:
        body = self._t.request("GET", f"/v1/jobs/{self.id}", idempotent=True, params=FULL).json()
        self.info = JobInfo.model_validate(body)
        return self.info

    def events(self, last_event_id: str | None = None) -> Iterator[JobEvent]:
        """Status transitions and finished epochs as they happen, then `end` (SSE)."""
        for event in follow(self._t, self.id, last_event_id):
            if isinstance(event, EndEvent):
                self.info = event.job
            yield event

    def wait(self, progress: bool = False, console: Console | None = None) -> JobInfo:
        """Follow the job until it ends and answer its final state (check `.status`).

        Args:
            progress: show a progress bar (in a terminal or notebook; a line per epoch elsewhere).
            console: where to show it (default: standard error).
        """
        info = self.refresh()
        if info.done:
            return info
        if not progress:
            for _ in self.events():
                pass
        else:
            with display_for(info, console or Console(stderr=True)) as display:
                for event in self.events():
                    display.show(event)
        return self.refresh() if not self.info.done else self.info

    def metrics(self) -> JobMetrics:
        """Each kept epoch's logs (`GET /v1/jobs/{id}/metrics`)."""
        return JobMetrics.model_validate(self._t.request("GET", f"/v1/jobs/{self.id}/metrics", idempotent=True).json())

    def cancel(self) -> JobInfo:
        """Ask the job to stop (a no-op for a job that has ended)."""
        # Safe to repeat: cancelling a cancelled or finished job answers it unchanged.
        response = self._t.request("POST", f"/v1/jobs/{self.id}/cancel", idempotent=True, params=FULL)
        self.info = JobInfo.model_validate(response.json())
        return self.info


class Jobs:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def submit(
        self, spec: Mapping[str, Any] | str | Path, *, dataset: str | None = None, name: str | None = None
    ) -> Job:
        """Queue a training job.

        Args:
            spec: the `POST /v1/jobs` body, or a path to it as JSON or YAML.
            dataset: the dataset id (overrides the spec's `dataset_id`).
            name: the job's name (overrides the spec's `name`).
        """
        body = dict(load_spec(spec) if isinstance(spec, str | Path) else spec)
        body |= {k: v for k, v in {"dataset_id": dataset, "name": name}.items() if v is not None}
        # One key for every retry of this call: the server answers a repeat with the same job.
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        response = self._t.request("POST", "/v1/jobs", idempotent=True, params=FULL, json=body, headers=headers)
        return Job(self._t, JobInfo.model_validate(response.json()))

    def get(self, job_id: str) -> Job:
        body = self._t.request("GET", f"/v1/jobs/{job_id}", idempotent=True, params=FULL).json()
        return Job(self._t, JobInfo.model_validate(body))

    def list(self, status: str | None = None, name: str | None = None, limit: int = 50) -> list[JobInfo]:
        """Jobs, newest first: the first `limit` that match."""
        params = {k: v for k, v in {"status": status, "name": name, "limit": limit}.items() if v is not None} | FULL
        body = self._t.request("GET", "/v1/jobs", idempotent=True, params=params).json()
        return [JobInfo.model_validate(item) for item in body["items"]]


class Models:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def list(self) -> list[ModelItem]:
        body = self._t.request("GET", "/v1/models", idempotent=True).json()
        return [ModelItem.model_validate(item) for item in body["items"]]

    def get(self, name: str) -> builtins.list[ModelVersion]:
        """The model's versions, oldest first."""
        body = self._t.request("GET", f"/v1/models/{name}", idempotent=True).json()
        return [ModelVersion.model_validate(v) for v in body["model_version_status"]]

    def label(self, name: str, label: str, version: int) -> ModelVersion:
        """Point `label` (say `production`) at `version`."""
        response = self._t.request(
            "PUT", f"/v1/models/{name}/labels/{label}", idempotent=True, json={"version": version}
        )
        return ModelVersion.model_validate(response.json()["model_version_status"][0])

    def predict(
        self, name: str, rows: Rows, *, version: int | None = None, label: str | None = None
    ) -> np.ndarray | dict[str, np.ndarray]:
        """Predictions for `rows`: an array (a row per example), `{input name: array}` for several
        inputs, or a list of row objects keyed by column name (tabular models). Answers an array,
        or `{output name: array}` for a model with several outputs."""
        path = f"/v1/models/{name}" + (f"/versions/{version}" if version else f"/labels/{label}" if label else "")
        if isinstance(rows, np.ndarray | Mapping):
            body: dict[str, Any] = {"inputs": _tolist(rows)}
        else:
            body = {"instances": [_tolist(row) if isinstance(row, np.ndarray) else row for row in rows]}
        # A prediction changes nothing on the server: safe to retry.
        answer = self._t.request("POST", f"{path}:predict", idempotent=True, json=body).json()
        result = answer["outputs"] if "outputs" in answer else answer["predictions"]
        if isinstance(result, dict):
            return {k: np.asarray(v) for k, v in result.items()}
        if result and isinstance(result[0], dict):  # row format, several outputs: a dict per row
            return {k: np.asarray([row[k] for row in result]) for k in result[0]}
        return np.asarray(result)


def load_spec(path: str | Path) -> dict[str, Any]:
    """A job spec from a `.json`, `.yaml` or `.yml` file."""
    path = Path(path)
    text = path.read_text()
    try:
        loaded = yaml.safe_load(text) if path.suffix.lower() in {".yaml", ".yml"} else json.loads(text)
    except (yaml.YAMLError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not valid {'YAML' if path.suffix.lower() != '.json' else 'JSON'}: {error}") from None
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: a job spec is a JSON/YAML object (mapping), not {type(loaded).__name__}")
    return loaded


def _tolist(value: np.ndarray | Mapping[str, np.ndarray]) -> Any:
    if isinstance(value, Mapping):
        return {k: np.asarray(v).tolist() for k, v in value.items()}
    return value.tolist()


def _pages(transport: Transport, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    cursor: str | None = None
    while True:
        body = transport.request(
            "GET", path, idempotent=True, params=params | ({"cursor": cursor} if cursor else {})
        ).json()
        yield from body["items"]
        cursor = body.get("next_cursor")
        if not cursor:
            return
