"""Per-key request rates (token buckets, per process) and per-project quotas (from the database)."""

import math
import time
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy.orm import Session

from app.auth import repository
from app.config import Settings
from app.errors import PayloadTooLarge, TooManyRequests

# A project at its job quota is told to come back after this long: about one short job.
JOB_QUOTA_RETRY_AFTER_S = 30


class RateKind(StrEnum):
    SUBMIT = "submit"
    PREDICT = "predict"


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """Token buckets per (key, kind): `rate` requests per second, bursts of up to max(1, rate).

    Per process: N serving processes behind a balancer allow N times the rate, which keeps the
    hot path free of a shared store (documented in the README).
    """

    def __init__(self, settings: Settings) -> None:
        self._submit_rate = settings.submit_rate_per_key
        self._predict_rate = settings.predict_rate_per_key
        self._buckets: dict[tuple[str, RateKind], _Bucket] = {}

    def take(self, key_id: str | None, kind: RateKind) -> None:
        """Spend one request of `key_id`'s `kind` budget; TooManyRequests (429) when it is spent."""
        rate = self._predict_rate if kind is RateKind.PREDICT else self._submit_rate
        if key_id is None or rate <= 0:  # the local user (auth off), or no limit configured
            return
        burst = max(1.0, rate)
        now = time.monotonic()
        bucket = self._buckets.get((key_id, kind))
        tokens = burst if bucket is None else min(burst, bucket.tokens + (now - bucket.at) * rate)
        if tokens < 1.0:
            wait_s = math.ceil((1.0 - tokens) / rate)
            raise TooManyRequests(
                f"this API key is over its {kind.value} rate of {rate:g} per second "
                f"(TRAINYARD_{kind.value.upper()}_RATE_PER_KEY): retry after {wait_s} s",
                retry_after_s=wait_s,
            )
        self._buckets[(key_id, kind)] = _Bucket(tokens - 1.0, now)


def check_job_quota(session: Session, settings: Settings, project: str) -> None:
    """TooManyRequests (429) when the project already has its most jobs queued or running."""
    active = repository.active_jobs(session, project)
    limit = settings.max_active_jobs_per_project
    if active >= limit:
        raise TooManyRequests(
            f"project {project!r} has {active} jobs queued or running, its limit "
            f"(TRAINYARD_MAX_ACTIVE_JOBS_PER_PROJECT is {limit}): wait for one to end or cancel one",
            retry_after_s=JOB_QUOTA_RETRY_AFTER_S,
        )


def check_dataset_quota(session: Session, settings: Settings, project: str, incoming_bytes: int) -> None:
    """PayloadTooLarge (413) when storing `incoming_bytes` more would pass the project's quota."""
    stored = repository.dataset_bytes(session, project)
    limit = settings.max_dataset_bytes_per_project
    if stored + incoming_bytes > limit:
        raise PayloadTooLarge(
            f"project {project!r} stores {stored} dataset bytes; {incoming_bytes} more would pass its limit "
            f"of {limit} (TRAINYARD_MAX_DATASET_BYTES_PER_PROJECT): delete datasets it no longer needs"
        )
