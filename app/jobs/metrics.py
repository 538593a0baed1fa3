"""Prometheus series about training, on `/metrics` beside the serving ones (app.serving.metrics).

Everything a job or a worker did is read from the database when `/metrics` is scraped, so every
API process reports the same figures whichever process or worker caused them: nothing is counted
in a worker (whose processes come and go) and nothing is counted twice by two API processes. A
dashboard that scrapes several API processes aggregates these with `max`, not `sum` (the
Grafana dashboard in deploy/ does). Only the submit counter is per process (sum it).
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.orm import Session

from app import queue
from app.config import Settings
from app.db.session import database_now, session_scope
from app.errors import Conflict, InvalidInput, NotFound
from app.events.log import Kind
from app.models import Job, JobStatus, StreamEvent, Worker
from app.worker_registry.readiness import stale_after

SUBMITS = Counter("trainyard_submit_requests", "Job submissions handled by this API process, by outcome.", ["outcome"])
SUBMIT_OUTCOMES = ("accepted", "invalid", "not_found", "conflict", "error")
for _outcome in SUBMIT_OUTCOMES:  # every outcome shown from the start, at 0
    SUBMITS.labels(_outcome)
EPOCH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
JOB_BUCKETS = (1, 5, 10, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 3 * 86400, 7 * 86400)
# Moves after which a job was started again (from app.jobs.states.Move), and the sweep's releases,
# all of which it makes because a lease expired.
_CLAIMS = ("claim", "reclaim")
_SWEEP_RELEASES = ("requeue", "fail", "cancel", "time_out")


@contextmanager
def counting_submit() -> Iterator[None]:
    """Count the submit around it by how it ended."""
    try:
        yield
    except InvalidInput:
        SUBMITS.labels("invalid").inc()
        raise
    except NotFound:
        SUBMITS.labels("not_found").inc()
        raise
    except Conflict:
        SUBMITS.labels("conflict").inc()
        raise
    except Exception:
        SUBMITS.labels("error").inc()
        raise
    SUBMITS.labels("accepted").inc()


def _buckets(bounds: Sequence[float], cumulative: Sequence[int], count: float) -> list[tuple[str, float]]:
    return [*((str(float(b)), float(n)) for b, n in zip(bounds, cumulative, strict=True)), ("+Inf", float(count))]


def _histogram_columns(value: Any, bounds: Sequence[float]) -> list[ColumnElement[Any]]:
    """count, sum, then the cumulative count at each bound: one aggregate pass over the rows."""
    return [
        func.count(),
        func.coalesce(func.sum(value), 0.0),
        *(func.coalesce(func.sum(case((value <= bound, 1), else_=0)), 0) for bound in bounds),
    ]


class TrainingCollector(Collector):
    """The training series, read from the database at each scrape."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def collect(self) -> Iterator[Metric]:
        with session_scope(self._settings.sqlalchemy_url) as session:
            yield from _jobs_by_status(session)
            yield from _queue_depth(session)
            yield from _workers(session, self._settings)
            yield from _durations(session)
            yield from _throughput(session)
            yield from _counters(session)


def _jobs_by_status(session: Session) -> Iterator[Metric]:
    counts = dict(session.execute(select(Job.status, func.count()).group_by(Job.status)).tuples().all())
    family = GaugeMetricFamily("trainyard_jobs", "Jobs by status.", labels=["status"])
    for status in JobStatus:
        family.add_metric([status.value], counts.get(status, 0))
    yield family


def _queue_depth(session: Session) -> Iterator[Metric]:
    query = select(Job.queue, func.count()).where(Job.status == JobStatus.QUEUED).group_by(Job.queue)
    counts = dict(session.execute(query).tuples().all())
    family = GaugeMetricFamily("trainyard_queue_depth", "Queued jobs by queue.", labels=["queue"])
    for name in sorted(set(queue.QUEUES) | set(counts)):
        family.add_metric([name], counts.get(name, 0))
    yield family


def _workers(session: Session, settings: Settings) -> Iterator[Metric]:
    since = database_now(session) - stale_after(settings)
    rows = session.scalars(select(Worker.queues).where(Worker.last_seen_at >= since, Worker.stopping.is_(False)))
    alive = dict.fromkeys(queue.QUEUES, 0)
    for queues in rows:
        for name in queues.split(","):
            alive[name] = alive.get(name, 0) + 1
    family = GaugeMetricFamily(
        "trainyard_workers", "Workers alive (reported within the stale limit) by queue consumed.", labels=["queue"]
    )
    for name, count in sorted(alive.items()):
        family.add_metric([name], count)
    yield family


def _durations(session: Session) -> Iterator[Metric]:
    jobs = HistogramMetricFamily(
        "trainyard_job_duration_seconds",
        "Training time of finished jobs, all attempts together, by final status.",
        labels=["status"],
    )
    final = [s for s in JobStatus if s.is_final]
    query = select(Job.status, *_histogram_columns(Job.runtime_s, JOB_BUCKETS)).where(Job.status.in_(final))
    for status, count, total, *cumulative in session.execute(query.group_by(Job.status)).all():
        jobs.add_metric([status.value], _buckets(JOB_BUCKETS, cumulative, count), sum_value=float(total))
    yield jobs
    duration = StreamEvent.duration_s
    where = and_(StreamEvent.kind == Kind.EPOCH, duration.is_not(None))
    count, total, *cumulative = session.execute(select(*_histogram_columns(duration, EPOCH_BUCKETS)).where(where)).one()
    epochs = HistogramMetricFamily(
        "trainyard_epoch_duration_seconds", "Wall time of every epoch trained (validation included)."
    )
    epochs.add_metric([], _buckets(EPOCH_BUCKETS, cumulative, count), sum_value=float(total))
    yield epochs


def _throughput(session: Session) -> Iterator[Metric]:
    """Samples per second of each running job's latest epoch in its current attempt."""
    latest = (
        select(func.max(StreamEvent.id))
        .join(Job, Job.id == StreamEvent.job_id)
        .where(
            Job.status == JobStatus.RUNNING,
            StreamEvent.kind == Kind.EPOCH,
            StreamEvent.attempt == Job.attempt,
            StreamEvent.duration_s > 0,
            StreamEvent.samples.is_not(None),
        )
        .group_by(StreamEvent.job_id)
    )
    rows = session.execute(
        select(StreamEvent.job_id, StreamEvent.samples, StreamEvent.duration_s).where(StreamEvent.id.in_(latest))
    )
    family = GaugeMetricFamily(
        "trainyard_training_samples_per_second",
        "Training throughput of running jobs (their latest epoch).",
        labels=["job"],
    )
    for job_id, samples, seconds in rows:
        family.add_metric([job_id], (samples or 0) / (seconds or 1))
    yield family


def _counters(session: Session) -> Iterator[Metric]:
    status = StreamEvent.kind == Kind.STATUS
    lease_expired = or_(
        StreamEvent.move == "reclaim", and_(StreamEvent.actor == "sweep", StreamEvent.move.in_(_SWEEP_RELEASES))
    )
    resumed = and_(StreamEvent.move.in_(_CLAIMS), StreamEvent.attempt > 1)
    expiries, resumes = session.execute(
        select(
            func.coalesce(func.sum(case((lease_expired, 1), else_=0)), 0),
            func.coalesce(func.sum(case((resumed, 1), else_=0)), 0),
        ).where(status)
    ).one()
    yield CounterMetricFamily(
        "trainyard_lease_expiries", "Attempts given up because their lease expired.", value=int(expiries)
    )
    yield CounterMetricFamily(
        "trainyard_job_resumes",
        "Attempts after a job's first (from its checkpoint when it had one).",
        value=int(resumes),
    )


def training_registry(settings: Settings) -> CollectorRegistry:
    """A registry of this app's training series (one per app: each reads its own database)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TrainingCollector(settings))
    return registry
