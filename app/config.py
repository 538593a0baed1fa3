"""Settings: one pydantic-settings object, every knob an env var (TRAINYARD_*) with a default."""

from functools import lru_cache
from pathlib import Path

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
    max_upload_bytes: int = Field(default=1 << 30, gt=0, description="Largest dataset upload.")
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
    model_cache_size: int = Field(default=8, gt=0, description="Loaded models kept for predict.")
    model_cache_bytes: int = Field(
        default=2 << 30,
        gt=0,
        description="Most bytes of loaded models kept for predict (artifact sizes on disk).",
    )
    max_predict_bytes: int = Field(default=64 << 20, gt=0, description="Largest predict or infer request body.")
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
        default=600.0, gt=0, description="Re-send a queued job whose message may have been lost."
    )
    sweep_interval_s: float = Field(default=10.0, gt=0, description="How often `serve` looks for lost or stalled jobs.")
    max_job_runtime_s: int = Field(
        default=7 * 24 * 3600,
        gt=0,
        description="Longest a job may run before it fails; also the broker's visibility timeout.",
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
        return self.broker_url or "filesystem://"

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
