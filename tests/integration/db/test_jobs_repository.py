"""Job transitions on SQLite and PostgreSQL: claims, leases, cancels, versions, pagination."""

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.jobs import repository
from app.jobs.repository import Heartbeat
from app.models import Dataset, Job, JobStatus

pytestmark = pytest.mark.integration
LEASE = timedelta(seconds=30)


def make_job(session: Session, **values: object) -> Job:
    dataset = Dataset(
        name="d",
        format="csv",
        sha256="0" * 64,
        size_bytes=1,
        n_rows=1,
        features={},
        target={},
        storage_path="x",
    )
    session.add(dataset)
    session.flush()
    fields: dict[str, object] = {
        "name": "j",
        "spec": {},
        "register_as": "m",
        "queue": "training",
        "request_hash": "h",
        "epochs": 1,
    }
    job = Job(dataset_id=dataset.id, **{**fields, **values})
    session.add(job)
    session.commit()
    return job


def test_a_queued_job_is_claimed_once(session: Session) -> None:
    job = make_job(session)
    claimed = repository.claim(session, job.id, "w1", LEASE, max_attempts=3)
    assert claimed is not None and claimed.status == JobStatus.RUNNING and claimed.attempt == 1
    assert repository.claim(session, job.id, "w2", LEASE, max_attempts=3) is None
    assert [e.to_status for e in repository.events(session, job.id)] == [JobStatus.RUNNING]


def test_a_running_job_with_an_expired_lease_can_be_reclaimed(session: Session) -> None:
    job = make_job(
        session,
        status=JobStatus.RUNNING,
        attempt=1,
        lease_expires_at=utcnow() - timedelta(seconds=1),
    )
    claimed = repository.claim(session, job.id, "w2", LEASE, max_attempts=3)
    assert claimed is not None and claimed.attempt == 2 and claimed.worker == "w2"


def test_no_claim_past_max_attempts_or_after_a_cancel(session: Session) -> None:
    assert repository.claim(session, make_job(session, attempt=3).id, "w", LEASE, max_attempts=3) is None
    assert repository.claim(session, make_job(session, cancel_requested=True).id, "w", LEASE, max_attempts=3) is None


def test_the_heartbeat_reports_cancel_and_loss(session: Session) -> None:
    job = make_job(session)
    claimed = repository.claim(session, job.id, "w", LEASE, max_attempts=3)
    assert claimed is not None
    assert repository.renew_lease(session, job.id, 1, LEASE) is Heartbeat.KEEP_GOING
    assert repository.request_cancel(session, claimed)
    session.commit()
    assert repository.renew_lease(session, job.id, 1, LEASE) is Heartbeat.CANCEL
    assert repository.renew_lease(session, job.id, 2, LEASE) is Heartbeat.LOST


def test_success_registers_increasing_versions_per_name(session: Session) -> None:
    versions = []
    for _ in range(2):
        job = repository.claim(session, make_job(session).id, "w", LEASE, max_attempts=3)
        assert job is not None
        registered = repository.succeed_and_register(session, job, "a/model.keras", {"inputs": []}, {"loss": 0.1})
        assert registered is not None
        versions.append(registered.version)
    assert versions == [1, 2]


def test_a_cancel_wins_over_a_late_success(session: Session) -> None:
    job = repository.claim(session, make_job(session).id, "w", LEASE, max_attempts=3)
    assert job is not None
    repository.request_cancel(session, job)
    session.commit()
    assert repository.succeed_and_register(session, job, "a/model.keras", {}, {}) is None
    assert repository.get(session, job.id).status == JobStatus.RUNNING  # the worker then ends it cancelled


def test_epochs_are_kept_per_attempt(session: Session) -> None:
    job = repository.claim(session, make_job(session).id, "w", LEASE, max_attempts=3)
    assert job is not None
    repository.record_epoch(session, job.id, 1, 1, {"loss": 1.0})
    repository.record_epoch(session, job.id, 1, 2, {"loss": 0.5})
    assert [e.logs["loss"] for e in repository.epochs(session, job.id, 1)] == [1.0, 0.5]
    assert repository.get(session, job.id).metrics == {"loss": 0.5}


def test_pages_are_newest_first_without_gaps_or_repeats(session: Session) -> None:
    ids = [make_job(session, name=f"p{i}").id for i in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        page = repository.list_page(session, 2, cursor)
        seen += [job.id for job in page.items]  # only ours: each test is rolled back
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == ids[::-1]
