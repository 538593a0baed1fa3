"""Job transitions on SQLite and PostgreSQL: claims, leases, cancels, versions, pagination."""

from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.jobs import repository, states
from app.jobs.repository import Heartbeat
from app.jobs.states import Actor, Move, ResumePoint
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
    claimed = states.claim(session, job.id, "w1", LEASE, max_attempts=3)
    assert claimed is not None and claimed.status == JobStatus.RUNNING and claimed.attempt == 1
    assert states.claim(session, job.id, "w2", LEASE, max_attempts=3) is None
    assert [e.to_status for e in repository.events(session, job.id)] == [JobStatus.RUNNING]


def test_a_running_job_with_an_expired_lease_can_be_reclaimed(session: Session) -> None:
    job = make_job(
        session,
        status=JobStatus.RUNNING,
        attempt=1,
        lease_expires_at=utcnow() - timedelta(seconds=1),
    )
    claimed = states.claim(session, job.id, "w2", LEASE, max_attempts=3)
    assert claimed is not None and claimed.attempt == 2 and claimed.worker == "w2"


def test_no_claim_past_max_attempts_or_after_a_cancel(session: Session) -> None:
    assert states.claim(session, make_job(session, attempt=3).id, "w", LEASE, max_attempts=3) is None
    assert states.claim(session, make_job(session, cancel_requested=True).id, "w", LEASE, max_attempts=3) is None


def test_the_heartbeat_reports_cancel_and_loss(session: Session) -> None:
    job = make_job(session)
    claimed = states.claim(session, job.id, "w", LEASE, max_attempts=3)
    assert claimed is not None
    assert repository.renew_lease(session, job.id, 1, LEASE) is Heartbeat.KEEP_GOING
    assert repository.request_cancel(session, claimed)
    session.commit()
    assert repository.renew_lease(session, job.id, 1, LEASE) is Heartbeat.CANCEL
    assert repository.renew_lease(session, job.id, 2, LEASE) is Heartbeat.LOST


def test_success_registers_increasing_versions_per_name(session: Session) -> None:
    versions = []
    for _ in range(2):
        job = states.claim(session, make_job(session).id, "w", LEASE, max_attempts=3)
        assert job is not None
        registered = states.succeed_and_register(session, job, "a/model.keras", {"inputs": []}, {"loss": 0.1})
        assert registered is not None
        versions.append(registered.version)
    assert versions == [1, 2]


def test_a_cancel_wins_over_a_late_success(session: Session) -> None:
    job = states.claim(session, make_job(session).id, "w", LEASE, max_attempts=3)
    assert job is not None
    repository.request_cancel(session, job)
    session.commit()
    assert states.succeed_and_register(session, job, "a/model.keras", {}, {}) is None
    assert repository.get(session, job.id).status == JobStatus.RUNNING  # the worker then ends it cancelled


def test_epochs_are_recorded_as_the_jobs_progress(session: Session) -> None:
    job = states.claim(session, make_job(session).id, "w", LEASE, max_attempts=3)
    assert job is not None
    assert repository.record_epoch(session, job.id, 1, 1, {"loss": 1.0})
    assert repository.record_epoch(session, job.id, 1, 2, {"loss": 0.5})
    assert [e.logs["loss"] for e in repository.epochs(session, job.id)] == [1.0, 0.5]
    assert repository.get(session, job.id).metrics == {"loss": 0.5}


def test_a_resumed_attempt_keeps_the_epochs_up_to_its_checkpoint_and_drops_the_rest(session: Session) -> None:
    job = states.claim(session, make_job(session, epochs=5).id, "w1", LEASE, max_attempts=3)
    assert job is not None
    for epoch in (1, 2, 3):
        repository.record_epoch(session, job.id, 1, epoch, {"loss": float(epoch)})
    repository.record_checkpoint(session, job.id, 1, 2, None, utcnow())
    expire_lease(session, job.id)
    # Epoch 3 finished, but the process died before its checkpoint: attempt 2 resumes after epoch 2.
    resumed = states.claim(
        session, job.id, "w2", LEASE, 3, ResumePoint(attempt=1, epoch=2, batch=None, saved_at=utcnow())
    )
    assert resumed is not None and resumed.attempt == 2 and resumed.resumed_from_epoch == 2 and resumed.epoch == 2
    repository.record_epoch(session, job.id, 2, 3, {"loss": 0.3})
    history = [(e.epoch, e.attempt) for e in repository.epochs(session, job.id)]
    assert history == [(1, 1), (2, 1), (3, 2)]
    claim_event = repository.events(session, job.id)[-1]
    assert claim_event.detail is not None and "resumed from epoch 2 of attempt 1" in claim_event.detail


def test_a_fenced_off_attempt_writes_no_epoch_and_no_checkpoint(session: Session) -> None:
    job = states.claim(session, make_job(session).id, "w1", LEASE, max_attempts=3)
    assert job is not None
    expire_lease(session, job.id)
    assert states.claim(session, job.id, "w2", LEASE, max_attempts=3) is not None
    assert not repository.record_epoch(session, job.id, 1, 1, {"loss": 1.0})
    assert not repository.record_checkpoint(session, job.id, 1, 1, None, utcnow())
    assert repository.epochs(session, job.id) == []
    assert repository.get(session, job.id).checkpoint_epoch is None


def test_a_hand_back_requeues_without_counting_an_attempt(session: Session) -> None:
    job = make_job(session)
    for attempt in range(1, 6):  # more hand-backs than max_attempts: never fails for them
        claimed = states.claim(session, job.id, "w", LEASE, max_attempts=3)
        assert claimed is not None and claimed.attempt == attempt
        assert states.hand_back(session, claimed, "the worker is shutting down")
    handed = repository.get(session, job.id)
    assert handed.status == JobStatus.QUEUED and handed.handbacks == 5 and handed.enqueued_at is not None
    assert "handed back" in (repository.events(session, job.id)[-1].detail or "")


def test_a_lost_attempt_fails_after_max_attempts_with_how_its_process_died(session: Session) -> None:
    job = make_job(session)
    for attempt in (1, 2, 3):
        claimed = states.claim(session, job.id, "w", LEASE, max_attempts=3)
        assert claimed is not None
        move = states.release_lost(
            session, claimed, "worker w lost", Actor.WORKER, 3, 3600, last_exit=f"signal 9 (SIGKILL) #{attempt}"
        )
        assert move is (Move.FAIL if attempt == 3 else Move.REQUEUE)
    failed = repository.get(session, job.id)
    assert failed.status == JobStatus.FAILED
    assert failed.error is not None and "signal 9 (SIGKILL) #3" in failed.error and "3 attempts" in failed.error


def test_a_lost_attempt_past_its_runtime_ends_timed_out(session: Session) -> None:
    job = make_job(session, max_runtime_s=60, runtime_s=59.0)
    claimed = states.claim(session, job.id, "w", LEASE, max_attempts=3)
    assert claimed is not None
    later = utcnow() - timedelta(seconds=5)  # the attempt ran five seconds
    session.execute(update(Job).where(Job.id == job.id).values(started_at=later))
    session.commit()
    claimed = repository.get(session, job.id)
    assert states.release_lost(session, claimed, "lost", Actor.SWEEP, 3, 3600) is Move.TIME_OUT
    ended = repository.get(session, job.id)
    assert ended.status == JobStatus.TIMED_OUT and ended.runtime_s >= 63.5 and "max_runtime_s 60" in (ended.error or "")


def expire_lease(session: Session, job_id: str) -> None:
    session.execute(update(Job).where(Job.id == job_id).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
    session.commit()


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


def test_a_resume_records_the_epochs_its_checkpoint_has_and_the_table_lacks(session: Session) -> None:
    job = states.claim(session, make_job(session, epochs=5).id, "w1", LEASE, max_attempts=3)
    assert job is not None
    repository.record_epoch(session, job.id, 1, 1, {"loss": 1.0})
    expire_lease(session, job.id)  # epochs 2 and 3 trained while cut off from the database
    history = {1: {"loss": 1.0}, 2: {"loss": 0.8}, 3: {"loss": 0.6}}
    checkpoint = ResumePoint(attempt=1, epoch=3, batch=None, saved_at=utcnow(), history=history)

    assert states.claim(session, job.id, "w2", LEASE, 3, checkpoint) is not None

    rows = [(e.epoch, e.attempt, e.logs["loss"]) for e in repository.epochs(session, job.id)]
    assert rows == [(1, 1, 1.0), (2, 1, 0.8), (3, 1, 0.6)]


def test_how_a_process_died_is_kept_when_the_sweep_released_its_attempt_first(session: Session) -> None:
    from app.config import Settings
    from app.jobs import recovery

    job = make_job(session)
    for _ in (1, 2, 3):
        claimed = states.claim(session, job.id, "host:41", LEASE, max_attempts=3)
        assert claimed is not None
        states.release_lost(session, claimed, "worker host:41 stopped renewing its lease", Actor.SWEEP, 3, 3600)
    failed = repository.get(session, job.id)
    assert failed.status == JobStatus.FAILED and "SIGKILL" not in (failed.error or "")

    recovery.release_dead_process(
        session, Settings(), job.id, "host:41", "Worker exited prematurely: signal 9 (SIGKILL) Job: 0."
    )

    failed = repository.get(session, job.id)
    assert failed.last_exit is not None and "signal 9 (SIGKILL)" in failed.last_exit
    assert failed.error is not None and "signal 9 (SIGKILL)" in failed.error
