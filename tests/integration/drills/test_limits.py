"""Drills: jobs past their runtime, jobs that stop making progress, and cancels in every state."""

import errno
import os
import re
from pathlib import Path

import psycopg
import pytest

from app import queue
from app.config import Settings
from app.db.session import session_limits_options
from app.events.log import APPEND_LOCK_ID
from tests.factories import wait_for
from tests.integration.drills.harness import (
    FINAL,
    Jobs,
    ServeProcess,
    WorkerPool,
    alive,
    artifact_files,
    frozen,
    pid_of,
)

pytestmark = pytest.mark.integration

LONG = {"epochs": 500, "batch_size": 8}


def skipped_in_log(workers: WorkerPool, job_id: str) -> bool:
    return any(job_id in line and "skipped" in line for line in workers.log().splitlines())


def release_readers(fifo: Path) -> None:
    """Open the FIFO for writing and close it: every reader blocked on it gets EOF."""
    for _ in range(20):
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # ENXIO: nobody is reading (any more)
                raise
            return


def test_a_job_past_its_max_runtime_ends_timed_out_and_keeps_its_checkpoint(
    jobs: Jobs, drill_settings: Settings
) -> None:
    job = jobs.submit(register_as="too-long", max_runtime_s=10, fit=LONG)
    done = jobs.wait_final(job["id"])

    assert done["status"] == "timed_out", done
    assert done["error"] and re.search(r"max_runtime_s|runtime", done["error"]), done["error"]
    assert "10" in done["error"], done["error"]
    assert done["checkpoint"] is not None and done["checkpoint"]["epoch"] >= 1, done["checkpoint"]
    assert artifact_files(drill_settings, job["id"]), "the checkpoint files are gone"
    assert done["model"] is None and jobs.model_versions("too-long") == []
    assert done["attempt"] == 1  # final: not retried
    assert [e["to_status"] for e in jobs.events(job["id"])][-1] == "timed_out"


def test_a_job_whose_batches_stop_finishing_is_given_up_after_its_stall_timeout(jobs: Jobs) -> None:
    """A stall through the API alone: one batch of a wide model takes far longer than the
    job's stall_timeout_s, so no batch finishes in time. Each attempt is given up as lost and
    its process ended; after max_attempts the job fails saying why."""
    wide = [{"type": "Dense", "units": 4096, "activation": "relu"} for _ in range(3)]
    job = jobs.submit(
        register_as="stalled",
        model={"layers": [*wide, {"type": "Dense", "units": 3, "activation": "softmax"}]},
        fit={"epochs": 2, "batch_size": 2048},
        stall_timeout_s=2,
    )
    pids: set[int] = set()

    def ended() -> dict | None:
        current = jobs.get(job["id"])
        if current["status"] == "running" and current["worker"]:
            pids.add(pid_of(current))
        return current if current["status"] in FINAL else None

    done = wait_for(ended, 300, interval=0.1, what="the stalled job to end")
    assert done["status"] == "failed", done
    assert done["error"] and "no progress for 2 s" in done["error"], done["error"]
    assert done["attempt"] == 2 and jobs.model_versions("stalled") == []
    wait_for(lambda: not any(alive(pid) for pid in pids), 60, what="the stalled processes to be ended")


@pytest.mark.slow
def test_a_job_stuck_loading_its_data_is_given_up_after_its_stall_timeout(jobs: Jobs, drill_settings: Settings) -> None:
    """A stall before the first batch: the dataset's features file becomes a FIFO nobody
    writes, so loading it blocks forever (a hung network volume) while the process and its
    heartbeat stay alive. max_runtime_s bounds the drill if the stall goes unnoticed."""
    dataset_id = jobs.upload()
    features = drill_settings.datasets_dir / dataset_id / "features.npy"
    features.unlink()
    os.mkfifo(features)
    try:
        job = jobs.submit(dataset_id, register_as="stuck-loading", stall_timeout_s=3, max_runtime_s=30)
        running = jobs.wait_until(job["id"], lambda j: j["status"] == "running", what="running")
        done = jobs.wait_final(job["id"])
        wait_for(lambda: not alive(pid_of(running)), 60, what="the stuck process to be ended")
    finally:
        release_readers(features)

    assert done["status"] == "failed", f"{done['status']}: {done['error']}"
    assert done["error"] and re.search(r"stall|no progress", done["error"], re.IGNORECASE), done["error"]
    assert jobs.model_versions("stuck-loading") == []


def test_cancelling_a_queued_job_ends_it_before_any_worker_runs_it(jobs: Jobs, workers: WorkerPool) -> None:
    blockers = [jobs.submit(register_as=f"blocker-{i}", fit=LONG) for i in range(2)]
    for blocker in blockers:
        jobs.wait_running(blocker["id"], epoch=0)
    waiting = jobs.submit(register_as="never-queued")  # both workers are busy

    response = jobs.cancel(waiting["id"])
    assert response.status_code == 202 and response.json()["status"] == "cancelled"
    for blocker in blockers:
        jobs.cancel(blocker["id"])
    wait_for(lambda: skipped_in_log(workers, waiting["id"]), 120, what="its message to be skipped")
    done = jobs.get(waiting["id"])
    assert done["status"] == "cancelled" and done["attempt"] == 0
    assert [e["to_status"] for e in jobs.events(waiting["id"])] == ["queued", "cancelled"]


def test_cancelling_a_running_job_stops_it_and_registers_nothing(jobs: Jobs) -> None:
    job = jobs.submit(register_as="stopped", fit=LONG)
    jobs.wait_running(job["id"], epoch=1)

    assert jobs.cancel(job["id"]).status_code == 202
    done = jobs.wait_final(job["id"], timeout=60)
    assert done["status"] == "cancelled" and done["model"] is None
    assert done["progress"]["epoch"] < LONG["epochs"]
    assert jobs.model_versions("stopped") == []


def test_cancelling_a_stuck_job_ends_it_and_the_thawed_process_writes_nothing(jobs: Jobs) -> None:
    job = jobs.submit(register_as="stuck", fit={"epochs": 12, "batch_size": 8})
    running = jobs.wait_running(job["id"], epoch=2)
    child = pid_of(running)
    with frozen(child):  # the process can neither train nor hear the cancel
        # Frozen inside a write, it holds locks the cancel needs: answered 503 until the server
        # ends its session (db_idle_transaction_timeout_s), never left hanging.
        assert jobs.cancel(job["id"]).status_code == 202
        cancelled = jobs.wait_final(job["id"], timeout=90)
    wait_for(lambda: not alive(child), 120, what="the thawed child to give up")

    done = jobs.get(job["id"])
    assert cancelled["status"] == "cancelled" and done["status"] == "cancelled"
    assert done["attempt"] == 1  # not handed to another worker
    assert done["model"] is None and jobs.model_versions("stuck") == []
    assert "succeeded" not in [e["to_status"] for e in jobs.events(job["id"])]


def test_cancelling_a_job_no_worker_consumes_ends_it_and_a_late_delivery_is_skipped(
    jobs: Jobs, workers: WorkerPool, drill_settings: Settings
) -> None:
    """No worker listens on `training.gpu` in the drills: the job waits for a worker that
    never comes. Cancelled, it stays cancelled when its id is delivered late after all."""
    job = jobs.submit(register_as="no-worker", gpu=True)
    response = jobs.api.post(f"/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 202 and response.json()["status"] == "cancelled"

    queue.enqueue(drill_settings, job["id"])  # a worker that does listen gets the id anyway
    wait_for(lambda: skipped_in_log(workers, job["id"]), 60, what="the late delivery to be skipped")
    done = jobs.get(job["id"])
    assert done["status"] == "cancelled" and done["attempt"] == 0 and done["model"] is None


def test_a_process_frozen_inside_a_write_holds_up_a_cancel_for_seconds_not_for_ever(
    jobs: Jobs, serve: ServeProcess, drill_settings: Settings
) -> None:
    """A trainyard process stopped halfway through a write (SIGSTOP, a paused VM, a cut network)
    holds what that write locked: the job's row and the event log's append lock. The API answers
    a cancel of that job 503 with Retry-After instead of waiting for ever (db_lock_timeout_s);
    the database ends the frozen session (db_idle_transaction_timeout_s), and the retried cancel
    goes through. Over real HTTP to `trainyard serve`, as a client would see it."""
    job = jobs.submit(register_as="held", fit=LONG)
    jobs.wait_running(job["id"], epoch=1)
    dsn = str(drill_settings.database_url).replace("postgresql+psycopg://", "postgresql://")
    # The locks a worker's epoch write holds, taken by a session with a trainyard process's limits.
    frozen_writer = psycopg.connect(dsn, options=session_limits_options(drill_settings))
    try:
        frozen_writer.execute("SELECT id FROM jobs WHERE id = %s FOR UPDATE", (job["id"],))
        frozen_writer.execute("SELECT pg_advisory_xact_lock(%s)", (APPEND_LOCK_ID,))

        held = serve.http.post(f"/v1/jobs/{job['id']}/cancel")
        assert held.status_code == 503, held.text
        assert held.headers["Retry-After"] and "another process" in held.json()["error"]

        cancelled = Jobs(serve.http, drill_settings).cancel(job["id"])
        assert cancelled.status_code == 202 and cancelled.json()["status"] in ("running", "cancelled")
        with pytest.raises(psycopg.errors.IdleInTransactionSessionTimeout):  # the server ended it
            frozen_writer.execute("SELECT 1")
    finally:
        frozen_writer.close()
    done = jobs.wait_final(job["id"], timeout=60)
    assert done["status"] == "cancelled" and jobs.model_versions("held") == []
