"""The job state machine's table, walked: every allowed move works, every other is refused."""

import itertools

import pytest
from sqlalchemy.orm import Session

from app.jobs import repository, states
from app.jobs.states import TRANSITIONS, Actor, IllegalTransition, Move
from app.models import JobStatus
from tests.integration.db.test_jobs_repository import make_job

pytestmark = pytest.mark.integration

MOVES_ON_ROWS = [move for move in Move if move is not Move.SUBMIT]


@pytest.mark.parametrize("move", MOVES_ON_ROWS)
def test_every_move_works_only_from_its_status_and_for_its_actors(session: Session, move: Move) -> None:
    transition = TRANSITIONS[move]
    for source, actor in itertools.product(JobStatus, Actor):
        job = make_job(session, status=source)
        allowed = source == transition.source and actor in transition.actors
        if not allowed:
            with pytest.raises(IllegalTransition):
                states.apply(session, job, move, actor)
            session.rollback()
            assert repository.get(session, job.id).status == source
            continue
        assert states.apply(session, job, move, actor, detail=f"{move} by {actor}")
        session.commit()
        assert repository.get(session, job.id).status == transition.target
        event = repository.events(session, job.id)[-1]
        assert (event.from_status, event.to_status, event.detail) == (source, transition.target, f"{move} by {actor}")


def test_a_move_on_a_job_that_moved_meanwhile_writes_nothing(session: Session) -> None:
    job = make_job(session, status=JobStatus.RUNNING, attempt=1)
    stale = repository.get(session, job.id)
    assert states.apply(session, job, Move.FAIL, Actor.SWEEP, error="lost")
    session.commit()
    stale.status = JobStatus.RUNNING  # what the other process still believes
    assert not states.apply(session, stale, Move.SUCCEED, Actor.WORKER)
    assert repository.get(session, job.id).status == JobStatus.FAILED


def test_the_table_has_one_final_state_per_ending_and_timed_out_is_final() -> None:
    targets = {t.target for t in TRANSITIONS.values()}
    assert {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.TIMED_OUT} <= targets
    assert JobStatus.TIMED_OUT.is_final
    assert all(t.source is None or not t.source.is_final for t in TRANSITIONS.values())
