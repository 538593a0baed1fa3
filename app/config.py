"""Settings: one pydantic-settings object, every knob an env var (TRAINYARD_*) with a default."""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class BatchingOverride(BaseModel):
    """Batching settings for one model name; unset fields keep the process-wide value."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_batch_size: int | None = Field(default=None, gt=0)
    max_latency_ms: float | None = Field(default=None, ge=0)
    max_queued_rows: int | None = Field(default=None, gt=0)


class Settings(BaseSettings):
    """Service configuration. Unset URLs mean the embedded single-machine mode."""

    model_config = SettingsConfigDict(env_prefix="TRAINYARD_", env_file=".env", extra="ignore", frozen=True)

    home: Path = Field(
        default=Path("~/.trainyard"),
        description="Directory for the embedded database, broker queue, datasets and artifacts.",
    )
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default: SQLite file under HOME.")
    broker_url: str | None = Field(
        default=None, description="Celery broker URL; default: a local filesystem queue under HOME."
    )
    embedded_worker: bool | None = Field(
        default=None,
        description="Whether `serve` starts its own worker; default: yes when BROKER_URL is unset.",
    )
    worker_devices: str | None = Field(
        default=None,
        pattern=r"^\s*[A-Za-z0-9-]+(\s*,\s*[A-Za-z0-9-]+)*\s*$",
        description="A worker's accelerator ids, comma-separated (`0,1`), split evenly among its child "
        "processes (CUDA_VISIBLE_DEVICES per child); default: the GPUs nvidia-ml-py finds, else none.",
    )
    max_upload_bytes: int = Field(default=1 << 30, gt=0, description="Largest dataset upload.")
    max_unpack_factor: int = Field(
        default=8,
        gt=0,
        description="What an upload may decode into (NPZ arrays, Parquet columns, ZIP images), in multiples "
        "of MAX_UPLOAD_BYTES; checked from the file's headers before anything is decoded.",
    )
    max_request_bytes: int = Field(
        default=2 << 20,
        gt=0,
        description="Largest body of any other request (a job spec); uploads and predict have their own limits.",
    )
    max_columns: int = Field(
        default=10_000,
        gt=0,
        description="Most columns a tabular dataset (or an .npz 'x') may have.",
    )
    max_categories: int = Field(
        default=1_000,
        gt=0,
        description="Most distinct values a text feature column may have (stored as categories).",
    )
    max_archive_files: int = Field(
        default=100_000, gt=0, description="Most entries an uploaded ZIP of images may hold."
    )
    max_params: int = Field(default=50_000_000, gt=0, description="Largest model, in parameters.")
    max_layers: int = Field(
        default=2_000,
        gt=0,
        description="Most layers a model spec may have (a keras_config's nested models count in full).",
    )
    max_activation_bytes: int = Field(
        default=8 << 30,
        gt=0,
        description="Largest estimated activation memory of one training batch (every layer's output "
        "size x fit.batch_size x 4 bytes), checked from shapes before anything runs.",
    )
    door_build_max_layers: int = Field(
        default=16,
        ge=0,
        description="Specs with at most this many layers are built and dry-run inside POST /v1/jobs; "
        "larger ones are built by the worker as the job's first step.",
    )
    model_cache_size: int = Field(default=8, gt=0, description="Loaded models kept for predict.")
    model_cache_bytes: int = Field(
        default=2 << 30,
        gt=0,
        description="Most bytes of loaded models kept for predict (artifact sizes on disk).",
    )
    max_predict_bytes: int = Field(default=4 << 20, gt=0, description="Largest predict or infer request body.")
    max_predict_rows: int = Field(default=10_000, gt=0, description="Most rows one predict or infer request may hold.")
    explain_max_points: int = Field(
        default=5000,
        gt=0,
        description="Most instances x integration steps one :explain request may ask for (413 beyond).",
    )
    explain_max_steps: int = Field(default=1000, gt=0, description="Most integration steps of :explain (422 beyond).")
    explain_budget_s: float = Field(
        default=60.0, gt=0, description="Longest one :explain request may compute (its model's load included)."
    )
    explain_cache_size: int = Field(default=2, gt=0, description="Keras models kept loaded for :explain.")
    cpu_workers: int = Field(
        default=2,
        gt=0,
        description="Threads for requests' CPU-heavy work (spec checks, dataset parsing, large predict bodies); "
        "the event loop never runs it.",
    )
    cpu_queue: int = Field(
        default=16, ge=0, description="Requests' CPU-heavy work waiting for a thread before new ones get 503."
    )
    cpu_processes: int = Field(
        default=1,
        gt=0,
        description="Processes for the job door's spec checks (the keras_config translation, the model build, the "
        "dry run): spawned when serve starts and kept warm (Keras imported, ~0.7 GB each), so the API process never "
        "imports Keras and a check holds neither its event loop nor its GIL; TRAINYARD_CPU_QUEUE more checks may wait.",
    )
    cpu_budget_s: float = Field(
        default=30.0,
        gt=0,
        description="Longest a request's spec checks or predict decoding may take before it answers 503.",
    )
    ingest_budget_s: float = Field(
        default=1800.0,
        gt=0,
        description="Longest parsing an upload may take before it answers 503 (and nothing is stored).",
    )
    resolve_ttl_s: float = Field(
        default=1.0,
        ge=0,
        description="How long a serving process trusts a name or label → version resolution.",
    )
    max_batch_size: int = Field(
        default=64, gt=0, description="Most rows one inference call takes from queued requests."
    )
    max_latency_ms: float = Field(
        default=0.0,
        ge=0,
        description="Longest a request waits for others to join its batch (0: no waiting).",
    )
    max_queued_rows: int = Field(
        default=4096,
        gt=0,
        description="Rows waiting per model version before predict answers 429.",
    )
    inline_inference_max_ms: float = Field(
        default=1.0,
        ge=0,
        description="A model whose full batch runs faster than this runs on the event loop.",
    )
    model_batching: dict[str, BatchingOverride] = Field(
        default_factory=dict,
        description='Per-model batching, e.g. {"classic": {"max_batch_size": 16}} (JSON).',
    )
    db_lock_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="PostgreSQL: longest any statement waits for a lock; a request that would wait longer "
        "answers 503 with Retry-After, a worker retries.",
    )
    db_idle_transaction_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="PostgreSQL: a session left idle inside a transaction this long is ended by the server, "
        "so a frozen or cut-off process cannot hold its locks (and stall every other process) for longer.",
    )
    job_lease_s: float = Field(
        default=30.0,
        gt=0,
        description="A running job whose worker is silent this long is reclaimed.",
    )
    heartbeat_s: float = Field(
        default=1.0, gt=0, description="How often a worker renews its lease and checks for cancel."
    )
    max_attempts: int = Field(default=3, gt=0, description="Attempts before a lost job fails.")
    requeue_after_s: float = Field(
        default=600.0,
        gt=0,
        description="Re-send a queued job whose message may have been lost while every worker is busy "
        "(doubling per send, up to 64x).",
    )
    sweep_interval_s: float = Field(
        default=10.0,
        gt=0,
        description="How often `serve` and each worker look for lost jobs (and workers report themselves).",
    )
    study_interval_s: float = Field(
        default=1.0,
        gt=0,
        description="How often the study driver (in `serve` and each worker, one at a time) follows the "
        "running studies: starts trials, reads their epochs to prune, registers the best.",
    )
    max_job_runtime_s: int = Field(
        default=7 * 24 * 3600,
        gt=0,
        description="Longest `max_runtime_s` a job may ask for (and the default); the broker's visibility "
        "timeout stays above it.",
    )
    shutdown_grace_s: float = Field(
        default=30.0,
        gt=0,
        description="How long a worker told to stop may take to checkpoint and hand its job back.",
    )
    checkpoint_every_s: float = Field(
        default=600.0,
        gt=0,
        description="Default `checkpoint.every_seconds`: a checkpoint inside long epochs this often "
        "(one after every epoch always).",
    )
    device_data_share: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="fit.performance auto: training rows up to this share of the device's memory are "
        "copied there once (larger ones are fed by a prefetching pipeline).",
    )
    stall_timeout_s: int = Field(
        default=3600,
        gt=0,
        description="Default `stall_timeout_s`: a job with no finished batch this long is treated as a lost worker.",
    )
    lost_message_after_s: float = Field(
        default=30.0,
        gt=0,
        description="A queued job sent this long ago while a worker of its queue sits idle is sent again "
        "(its message was lost).",
    )
    events_keepalive_s: float = Field(
        default=15.0,
        gt=0,
        description="An idle event stream sends a comment this often, so proxies keep it open.",
    )
    events_poll_s: float = Field(
        default=0.25,
        gt=0,
        description="How often event streams look for new events without LISTEN/NOTIFY (SQLite, or events_listen off).",
    )
    events_listen: bool = Field(
        default=True,
        description="On PostgreSQL, wake event streams by LISTEN/NOTIFY; turn off behind a proxy that "
        "pools by transaction (pgbouncer), where LISTEN does not work.",
    )
    auth: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="API keys required: `on`, `off`, or `auto` (off only when `serve` listens on loopback only).",
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description='Origins browsers may call the API from, e.g. ["https://ui.example.com"] (JSON); '
        "default: none (no CORS headers).",
    )
    key_cache_s: float = Field(
        default=5.0,
        ge=0,
        description="How long a process trusts an API key's row (a revoked key stops working within this).",
    )
    submit_rate_per_key: float = Field(
        default=5.0, ge=0, description="Job submissions per second per API key (0: unlimited); 429 beyond."
    )
    predict_rate_per_key: float = Field(
        default=0.0, ge=0, description="Predict/infer requests per second per API key (0: unlimited); 429 beyond."
    )
    max_active_jobs_per_project: int = Field(
        default=100, gt=0, description="Jobs queued or running at once in one project; 429 beyond."
    )
    max_dataset_bytes_per_project: int = Field(
        default=100 << 30, gt=0, description="Total uploaded dataset bytes one project may keep; 413 beyond."
    )
    log_level: str = Field(default="INFO", description="Python log level.")
    log_json: bool = Field(default=False, description="Log one JSON object per line.")
    access_log: bool = Field(
        default=True,
        description="Log every HTTP request (costs ~10% of a serving process's throughput).",
    )

    def __hash__(self) -> int:
        # Settings key lru_caches (queue clients); `model_batching` is a dict, so hash the
        # values as JSON instead of pydantic's tuple of field values.
        return hash(self.model_dump_json())

    def batching_for(self, model: str) -> BatchingOverride:
        """The batching settings that apply to `model`, all fields set."""
        own = self.model_batching.get(model, BatchingOverride())
        return BatchingOverride(
            max_batch_size=own.max_batch_size or self.max_batch_size,
            max_latency_ms=self.max_latency_ms if own.max_latency_ms is None else own.max_latency_ms,
            max_queued_rows=own.max_queued_rows or self.max_queued_rows,
        )

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def datasets_dir(self) -> Path:
        return self.home_dir / "datasets"

    @property
    def artifacts_dir(self) -> Path:
        return self.home_dir / "artifacts"

    @property
    def broker_dir(self) -> Path:
        return self.home_dir / "broker"

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home_dir / 'trainyard.db'}"

    @property
    def celery_broker_url(self) -> str:
        # app.embedded.transport: kombu's filesystem transport, written atomically and FIFO.
        return self.broker_url or "trainyard-fs://"

    @property
    def broker_is_local(self) -> bool:
        return self.broker_url is None

    @property
    def runs_embedded_worker(self) -> bool:
        if self.embedded_worker is not None:
            return self.embedded_worker
        return self.broker_is_local

    def ensure_dirs(self) -> None:
        """Create the directories the service writes to."""
        for path in (self.home_dir, self.datasets_dir, self.artifacts_dir, self.broker_dir):
            path.mkdir(parents=True, exist_ok=True)


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
