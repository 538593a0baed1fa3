"""The job state machine: every status transition, who may make it, and what it writes.

`TRANSITIONS` is the table; `apply` is the only code that changes a job's status. Each move is
one conditional UPDATE (`… WHERE status = :read AND attempt = :read`): when another process moved
the job meanwhile, nothing is written and the caller learns it lost the race. Every move that
happens writes a JobEvent, the job's audit trail.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.session import database_now
from app.events import log as event_log
from app.jobs import repository
from app.models import Job, JobEpoch, JobEvent, JobStatus, ModelVersion


class Actor(StrEnum):
    """Who makes a move: the HTTP API, a worker running the job, or the recovery sweep (which
    runs in every `serve` and every worker main process)."""

    API = "api"
    WORKER = "worker"
    SWEEP = "sweep"


class Move(StrEnum):
    SUBMIT = "submit"
    CLAIM = "claim"  # a queued job taken by a worker (resuming from a checkpoint when there is one)
    RECLAIM = "reclaim"  # a running job whose lease expired, taken directly by another worker
    CANCEL_QUEUED = "cancel_queued"
    SUCCEED = "succeed"
    FAIL = "fail"
    CANCEL = "cancel"  # a running job stopped on request
    TIME_OUT = "time_out"
    HAND_BACK = "hand_back"  # a worker told to stop gives the job back: not a failed attempt
    REQUEUE = "requeue"  # the attempt was lost (process died, lease expired, no progress)


@dataclass(frozen=True)
class Transition:
    move: Move
    source: JobStatus | None
    target: JobStatus
    actors: frozenset[Actor]
    writes: str  # what the move writes besides status and the event (for readers and docs)


def _t(move: Move, source: JobStatus | None, target: JobStatus, actors: set[Actor], writes: str) -> Transition:
    return Transition(move, source, target, frozenset(actors), writes)


Q, R = JobStatus.QUEUED, JobStatus.RUNNING
TRANSITIONS: dict[Move, Transition] = {
    t.move: t
    for t in (
        _t(Move.SUBMIT, None, Q, {Actor.API}, "the job row, enqueued_at and send_count=1 (before publishing)"),
        _t(
            Move.CLAIM,
            Q,
            R,
            {Actor.WORKER},
            "attempt+1, worker, lease, started_at, resumed_from_epoch; epoch rows past the checkpoint deleted",
        ),
        _t(Move.RECLAIM, R, R, {Actor.WORKER}, "as CLAIM, plus the lost attempt's runtime"),
        _t(Move.CANCEL_QUEUED, Q, JobStatus.CANCELLED, {Actor.API, Actor.WORKER}, "cancel_requested, finished_at"),
        _t(Move.SUCCEED, R, JobStatus.SUCCEEDED, {Actor.WORKER}, "the model version (same transaction), runtime"),
        _t(Move.FAIL, R, JobStatus.FAILED, {Actor.WORKER, Actor.SWEEP}, "error, finished_at, runtime"),
        _t(Move.CANCEL, R, JobStatus.CANCELLED, {Actor.WORKER, Actor.SWEEP}, "finished_at, runtime"),
        _t(Move.TIME_OUT, R, JobStatus.TIMED_OUT, {Actor.WORKER, Actor.SWEEP}, "error, finished_at, runtime"),
        _t(Move.HAND_BACK, R, Q, {Actor.WORKER}, "handbacks+1, runtime, enqueued_at (before publishing)"),
        _t(Move.REQUEUE, R, Q, {Actor.WORKER, Actor.SWEEP}, "runtime, last_exit, enqueued_at (before publishing)"),
    )
}


class IllegalTransition(RuntimeError):
    """A move the table does not allow from the job's status, or not for this actor: a bug."""


def check(move: Move, source: JobStatus | None, actor: Actor) -> Transition:
    """The transition for `move` from `source` by `actor`; raises IllegalTransition otherwise."""
    transition = TRANSITIONS[move]
    if transition.source != source:
        raise IllegalTransition(f"{move.value} moves a {transition.source} job, not a {source} one")
    if actor not in transition.actors:
        raise IllegalTransition(f"{actor.value} may not {move.value} a job")
    return transition


def apply(
    session: Session,
    job: Job,
    move: Move,
    actor: Actor,
    detail: str | None = None,
    unless_cancel_requested: bool = False,
    **values: Any,
) -> bool:
    """Make `move` on `job` as read (same status and attempt), writing `values` and an event.

    Does not commit. Returns False, writing nothing, when the row moved on since it was read, or
    when `unless_cancel_requested` and a cancel was asked for. Raises IllegalTransition when the
    table does not allow the move (a programming error, never a race).
    """
    transition = check(move, job.status, actor)
    attempt = values.get("attempt", job.attempt)
    query = update(Job).where(Job.id == job.id, Job.status == job.status, Job.attempt == job.attempt)
    if unless_cancel_requested:
        query = query.where(Job.cancel_requested.is_(False))
    result = session.execute(
        query.values(status=transition.target, **values).execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    event = JobEvent(job_id=job.id, from_status=job.status, to_status=transition.target, attempt=attempt, detail=detail)
    event_log.append_status(session, event, move, actor, resumed_from_epoch=values.get("resumed_from_epoch"))
    return True


def record_submitted(session: Session, job: Job) -> None:
    """Add the first event of a job (SUBMIT has no row to move: it inserts one). No commit."""
    check(Move.SUBMIT, None, Actor.API)
    event = JobEvent(job_id=job.id, from_status=None, to_status=JobStatus.QUEUED, attempt=0, detail="submitted")
    event_log.append_status(session, event, Move.SUBMIT, Actor.API)


# --- The moves, as the rest of the code makes them -------------------------------------------


@dataclass(frozen=True)
class ResumePoint:
    """Where a claimed attempt starts: a checkpoint of an earlier (or the lost) attempt."""

    attempt: int
    epoch: int  # epochs fully trained
    batch: int | None  # batches trained inside epoch `epoch + 1`; None at an epoch boundary
    saved_at: datetime
    # epoch → logs of every epoch up to the checkpoint, as the checkpoint recorded them
    history: dict[int, dict[str, Any]] = field(default_factory=dict)

    def describe(self) -> str:
        at = f"epoch {self.epoch}" + (f", batch {self.batch}" if self.batch else "")
        return f"resumed from {at} of attempt {self.attempt}"


def counted_attempts(job: Job) -> int:
    """Attempts that count against max_attempts: hand-backs (a deploy's SIGTERM) do not."""
    return job.attempt - job.handbacks


def attempt_seconds(job: Job, now: datetime, lease: timedelta | None = None) -> float:
    """How long the current attempt has trained: until now, or, for an attempt whose lease
    expired, until its last renewal (`lease` ago before the expiry)."""
    if job.started_at is None:
        return 0.0
    end = now
    if lease is not None and job.lease_expires_at is not None:
        end = min(now, job.lease_expires_at - lease)
    return max(0.0, (end - job.started_at).total_seconds())


def runtime_limit(job: Job, server_max: int) -> int:
    return min(job.max_runtime_s or server_max, server_max)


def claim(
    session: Session,
    job_id: str,
    worker: str,
    lease: timedelta,
    max_attempts: int,
    resume: ResumePoint | None = None,
) -> Job | None:
    """Take the job for this worker: queued, or running with an expired lease. Commits.

    Returns None when another delivery or worker owns it, or it is final: a duplicate message
    therefore does nothing. With `resume`, the attempt starts after that checkpoint, and the
    epoch rows past it (trained by an attempt whose weights were not kept) are deleted, so the
    rows left are one history.
    """
    job = session.get(Job, job_id, populate_existing=True)
    if job is None:
        return None
    now = database_now(session)
    if job.status == JobStatus.QUEUED and job.cancel_requested:
        # A cancel that raced a requeue: end it here rather than leave it queued forever.
        if apply(session, job, Move.CANCEL_QUEUED, Actor.WORKER, "cancelled before it ran", finished_at=now):
            session.commit()
        return None
    if not claimable(job, now, max_attempts):
        return None
    reclaim = job.status == JobStatus.RUNNING
    detail = f"claimed by {worker}" + (" after its lease expired" if reclaim else "")
    if resume is not None:
        detail += f"; {resume.describe()}"
    values: dict[str, Any] = {
        "attempt": job.attempt + 1,
        "worker": worker,
        "started_at": now,
        "lease_expires_at": now + lease,
        "epoch": resume.epoch if resume else 0,
        "metrics": _logs_of_epoch(session, job.id, resume.epoch) if resume else {},
        "error": None,
        "resumed_from_epoch": resume.epoch if resume else None,
    }
    if resume is not None:
        values |= {
            "checkpoint_attempt": resume.attempt,
            "checkpoint_epoch": resume.epoch,
            "checkpoint_batch": resume.batch,
            "checkpoint_saved_at": resume.saved_at,
        }
    if reclaim:
        values["runtime_s"] = job.runtime_s + attempt_seconds(job, now, lease)
    if not apply(session, job, Move.RECLAIM if reclaim else Move.CLAIM, Actor.WORKER, detail, **values):
        session.rollback()
        return None
    session.execute(delete(JobEpoch).where(JobEpoch.job_id == job.id, JobEpoch.epoch > (resume.epoch if resume else 0)))
    if resume is not None:
        _restore_unrecorded_epochs(session, job.id, resume)
    session.commit()
    return session.get(Job, job_id, populate_existing=True)


def _restore_unrecorded_epochs(session: Session, job_id: str, resume: ResumePoint) -> None:
    """Epochs in the checkpoint that have no row (the attempt that trained them was cut off from
    the database while its lease lasted): recorded now, as that attempt's."""
    recorded = set(session.scalars(select(JobEpoch.epoch).where(JobEpoch.job_id == job_id)))
    for epoch, logs in sorted(resume.history.items()):
        if epoch <= resume.epoch and epoch not in recorded:
            session.add(JobEpoch(job_id=job_id, attempt=resume.attempt, epoch=epoch, logs=logs))
            # News to the streams too: that attempt could not write it.
            event_log.append_epoch(session, job_id, resume.attempt, epoch, logs)


def claimable(job: Job, now: datetime, max_attempts: int) -> bool:
    """Whether a delivery of this job may start an attempt (cheap: read by the worker's main
    process before it spends a child process on the message)."""
    if job.cancel_requested or counted_attempts(job) >= max_attempts:
        return False
    if job.status == JobStatus.QUEUED:
        return True
    return job.status == JobStatus.RUNNING and job.lease_expires_at is not None and job.lease_expires_at < now


def _logs_of_epoch(session: Session, job_id: str, epoch: int) -> dict[str, Any]:
    row = session.get(
        JobEpoch, {"job_id": job_id, "attempt": _attempt_of_epoch(session, job_id, epoch), "epoch": epoch}
    )
    return dict(row.logs) if row is not None else {}


def _attempt_of_epoch(session: Session, job_id: str, epoch: int) -> int:
    query = select(func.max(JobEpoch.attempt)).where(JobEpoch.job_id == job_id, JobEpoch.epoch == epoch)
    return session.scalar(query) or 0


def hand_back(session: Session, job: Job, detail: str) -> bool:
    """A worker told to stop gives its running attempt back: queued again, the message recorded
    as sent (publish after commit), and the attempt not counted against max_attempts. Commits."""
    now = database_now(session)
    moved = apply(
        session,
        job,
        Move.HAND_BACK,
        Actor.WORKER,
        f"handed back by {job.worker}: {detail}",
        handbacks=job.handbacks + 1,
        runtime_s=job.runtime_s + attempt_seconds(job, now),
        lease_expires_at=None,
        enqueued_at=now,
        send_count=Job.send_count + 1,
    )
    _commit_or_rollback(session, moved)
    return moved


def finish(
    session: Session,
    job: Job,
    move: Move,
    actor: Actor = Actor.WORKER,
    error: str | None = None,
    detail: str | None = None,
    lease: timedelta | None = None,
) -> bool:
    """End a running attempt as failed, cancelled or timed out. Commits.

    `lease`: given by the sweep for an attempt whose lease expired (its runtime ends at its last
    renewal, not now)."""
    if move not in (Move.FAIL, Move.CANCEL, Move.TIME_OUT):
        raise IllegalTransition(f"finish() does not {move.value}")
    now = database_now(session)
    moved = apply(
        session,
        job,
        move,
        actor,
        detail or error,
        error=error,
        finished_at=now,
        lease_expires_at=None,
        runtime_s=job.runtime_s + attempt_seconds(job, now, lease),
    )
    _commit_or_rollback(session, moved)
    return moved


def release_lost(
    session: Session,
    job: Job,
    reason: str,
    actor: Actor,
    max_attempts: int,
    server_max_runtime_s: int,
    lease: timedelta | None = None,
    last_exit: str | None = None,
) -> Move | None:
    """An attempt that will not finish (its process died, its lease expired, it made no progress):
    cancelled if a cancel was asked, timed out past its runtime, failed after max_attempts, else
    queued again (recorded as sent; publish after commit). Commits; returns the move made."""
    now = database_now(session)
    runtime = job.runtime_s + attempt_seconds(job, now, lease)
    exit_note = f" ({last_exit})" if last_exit else ""
    if job.cancel_requested:
        return Move.CANCEL if finish(session, job, Move.CANCEL, actor, detail=reason + exit_note, lease=lease) else None
    limit = runtime_limit(job, server_max_runtime_s)
    if runtime >= limit:
        error = f"{reason}{exit_note}; ran {runtime:.0f} s of its max_runtime_s {limit}"
        return Move.TIME_OUT if finish(session, job, Move.TIME_OUT, actor, error=error, lease=lease) else None
    if counted_attempts(job) >= max_attempts:
        error = f"{reason}{exit_note}; gave up after {counted_attempts(job)} attempts"
        if job.last_exit and not last_exit:
            error += f"; the last process {job.last_exit}"
        return Move.FAIL if finish(session, job, Move.FAIL, actor, error=error, lease=lease) else None
    moved = apply(
        session,
        job,
        Move.REQUEUE,
        actor,
        f"{reason}{exit_note}; queued again",
        unless_cancel_requested=True,
        runtime_s=runtime,
        lease_expires_at=None,
        last_exit=last_exit or job.last_exit,
        enqueued_at=now,
        send_count=Job.send_count + 1,
    )
    _commit_or_rollback(session, moved)
    return Move.REQUEUE if moved else None


def cancel_queued(session: Session, job: Job) -> bool:
    """Cancel a job nobody runs yet. Commits."""
    moved = apply(
        session,
        job,
        Move.CANCEL_QUEUED,
        Actor.API,
        "cancelled while queued",
        finished_at=utcnow(),
        cancel_requested=True,
    )
    _commit_or_rollback(session, moved)
    return moved


def succeed_and_register(
    session: Session,
    job: Job,
    artifact_path: str,
    signature: dict[str, Any],
    metrics: dict[str, Any],
    retries: int = 5,
    serving: dict[str, Any] | None = None,
    importance: dict[str, Any] | None = None,
) -> ModelVersion | None:
    """Mark the running attempt succeeded and register its model, in one transaction.

    Returns None (nothing written) when the attempt no longer owns the job or a cancel was asked
    for meanwhile. `serving` holds the ModelVersion's `serving_*` columns (and, for a compressed
    or distilled version, `lineage` and `bill`).
    """
    for _ in range(retries):
        version = repository.next_version(session, job.register_as)
        now = database_now(session)
        model_version = ModelVersion(
            name=job.register_as,
            project=job.project,
            version=version,
            job_id=job.id,
            artifact_path=artifact_path,
            signature=signature,
            metrics=metrics,
            importance=importance,
            **(serving or {}),
        )
        if not apply(
            session,
            job,
            Move.SUCCEED,
            Actor.WORKER,
            unless_cancel_requested=True,
            finished_at=now,
            lease_expires_at=None,
            model_name=job.register_as,
            model_version=version,
            metrics=metrics,
            runtime_s=job.runtime_s + attempt_seconds(job, now),
        ):
            session.rollback()
            return None
        session.add(model_version)
        try:
            session.commit()
            return model_version
        except IntegrityError:  # another job registered the same version first: take the next
            session.rollback()
    raise RuntimeError(f"could not register a version of {job.register_as} after {retries} tries")


def _commit_or_rollback(session: Session, moved: bool) -> None:
    if moved:
        session.commit()
    else:
        session.rollback()
