"""Prometheus metrics of the serving path, per model and version, on `/metrics`.

Label children are bound once per loaded version (`VersionMetrics`): a labelled lookup per
request would cost more than the inference of a small model.
"""

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "trainyard_predict_requests",
    "Inference requests by model, version, protocol and outcome.",
    ["model", "version", "protocol", "outcome"],
)
LATENCY = Histogram(
    "trainyard_predict_latency_seconds",
    "Inference request latency in the service, from the body read to the response built.",
    ["model", "version"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
)
BATCH_ROWS = Histogram(
    "trainyard_batch_size_rows",
    "Rows per inference call after dynamic batching.",
    ["model", "version"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
CACHE_HITS = Counter("trainyard_model_cache_hits", "Requests whose model was already loaded.")
CACHE_MISSES = Counter("trainyard_model_cache_misses", "Requests that had to load their model.")
CACHE_EVICTIONS = Counter("trainyard_model_cache_evictions", "Models evicted from the cache (count or bytes bound).")
CACHE_MODELS = Gauge("trainyard_model_cache_models", "Models loaded in this process.")
CACHE_BYTES = Gauge("trainyard_model_cache_bytes", "Bytes of the models loaded in this process.")
LOAD_SECONDS = Histogram(
    "trainyard_model_load_seconds",
    "Time to load and warm up a model version.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
OUTCOMES = ("ok", "client_error", "overloaded", "error")


class VersionMetrics:
    """The metric children of one model version, resolved once."""

    def __init__(self, model: str, version: int) -> None:
        labels = (model, str(version))
        self.latency = LATENCY.labels(*labels)
        self.batch_rows = BATCH_ROWS.labels(*labels)
        self._requests = {
            (protocol, outcome): REQUESTS.labels(*labels, protocol, outcome)
            for protocol in ("tfserving", "v2")
            for outcome in OUTCOMES
        }

    def request(self, protocol: str, outcome: str) -> None:
        self._requests[(protocol, outcome)].inc()
