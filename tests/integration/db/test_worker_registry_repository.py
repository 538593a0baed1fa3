"""The queries behind /readyz's `workers` check, on SQLite and PostgreSQL."""

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from app.db.session import database_now
from app.models import JobStatus
from app.worker_registry import repository
from tests.factories import job_row, worker_row

pytestmark = pytest.mark.integration
STALE_AFTER = timedelta(seconds=30)


def test_only_fresh_workers_that_are_not_stopping_and_name_the_queue_consume_it(session: Session) -> None:
    now = database_now(session)
    session.add_all(
        [
            worker_row("fresh", "training,training.gpu", now - timedelta(seconds=5)),
            worker_row("gpu-only", "training.gpu", now),
            worker_row("stale", "training", now - timedelta(seconds=31)),
            worker_row("stopping", "training", now, stopping=True),
        ]
    )
    session.flush()
    assert repository.live_consumers(session, "training", now, STALE_AFTER) == 1
    assert repository.live_consumers(session, "training.gpu", now, STALE_AFTER) == 2
    assert repository.live_consumers(session, "train", now, STALE_AFTER) == 0


def test_queued_jobs_are_counted_per_queue(session: Session) -> None:
    session.add_all(
        [
            job_row(queue="training"),
            job_row(queue="training"),
            job_row(queue="training.gpu"),
            job_row(queue="training.gpu", status=JobStatus.RUNNING),
            job_row(queue="other", status=JobStatus.SUCCEEDED),
        ]
    )
    session.flush()
    assert repository.queued_jobs_by_queue(session) == {"training": 2, "training.gpu": 1}


def test_the_most_devices_one_job_can_get_comes_from_live_workers_that_know_theirs(session: Session) -> None:
    now = database_now(session)
    session.add_all(
        [
            worker_row("two-per-job", "training.gpu", now, devices=["0", "1", "2", "3"], per_job=2),
            worker_row("one-per-job", "training,training.gpu", now, devices=["0"], per_job=1),
            worker_row("unknown", "training.gpu", now),
            worker_row("stale-big", "training.gpu", now - timedelta(seconds=31), devices=["0"] * 8, per_job=8),
            worker_row("cpu-big", "training", now, devices=["0"] * 8, per_job=8),
        ]
    )
    session.flush()
    assert repository.devices_per_job(session, "training.gpu", now, STALE_AFTER) == 2
    assert repository.devices_per_job(session, "other", now, STALE_AFTER) is None
