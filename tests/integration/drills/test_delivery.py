"""Drills: duplicate and hostile messages, concurrent retried submits, and an API that dies
right after it answered."""

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from kombu import Connection

from app import queue
from app.config import Settings
from tests.factories import job_request, wait_for
from tests.integration.drills.harness import Jobs, ServeProcess, WorkerPool, children_of, pid_of

pytestmark = pytest.mark.integration


class CreatesAFileWhenUnpickled:
    """A payload whose unpickling calls open(marker, "w"): proof that a worker unpickled it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def test_a_duplicate_delivery_runs_nothing_and_costs_no_child_process(
    jobs: Jobs, workers: WorkerPool, drill_settings: Settings
) -> None:
    job = jobs.submit(register_as="delivered-twice", fit={"epochs": 8, "batch_size": 8})
    running = jobs.wait_running(job["id"], epoch=1)
    busy = workers.owner_of(pid_of(running))
    idle = next(w for w in workers.alive() if w is not busy)
    idle_children = children_of(idle.process.pid)

    queue.enqueue(drill_settings, job["id"])  # the same id delivered twice more, to the idle worker
    queue.enqueue(drill_settings, job["id"])

    def skips() -> int:
        return sum(job["id"] in line and "skipped" in line for line in idle.log().splitlines())

    wait_for(lambda: skips() >= 2, 60, what="both duplicates skipped")
    assert children_of(idle.process.pid) == idle_children, "a duplicate cost a new child process"
    done = jobs.wait_final(job["id"])
    jobs.assert_ran_once(done)
    assert done["attempt"] == 1
    assert [e["to_status"] for e in jobs.events(job["id"])] == ["queued", "running", "succeeded"]


def test_a_job_waiting_for_a_starting_child_is_not_resent_as_lost(jobs: Jobs, workers: WorkerPool) -> None:
    """A worker holds the message while its child imports Keras: the worker is busy, not idle,
    and the message is not lost. A sweep that re-sends it anyway (every lost_message_after_s)
    floods the queue with duplicates while the job waits."""
    dataset_id = jobs.upload()
    # The only worker of training.gpu; its main process consumes before its child is ready.
    [starting] = workers.start(1, queues=queue.GPU_TRAINING_QUEUE, ready_line=" ready.", lost_message_after_s=2.0)
    try:
        job = jobs.submit(dataset_id, register_as="waited", gpu=True, fit={"epochs": 2, "batch_size": 16})
        done = jobs.wait_final(job["id"])
    finally:
        starting.stop()
    jobs.assert_ran_once(done)
    resent = [line for line in workers.log().splitlines() if job["id"] in line and "re-sent" in line]
    assert resent == [], "\n".join(resent)


def test_a_pickled_message_is_refused_unopened_and_the_worker_keeps_working(
    jobs: Jobs, workers: WorkerPool, drill_settings: Settings, tmp_path: Path
) -> None:
    marker = tmp_path / "unpickled"
    with Connection(drill_settings.broker_url) as connection:
        connection.Producer().publish(
            CreatesAFileWhenUnpickled(marker),
            exchange="",
            routing_key=queue.TRAINING_QUEUE,
            serializer="pickle",  # content_type application/x-python-serialize
            headers={"task": queue.TRAIN_TASK, "id": f"job-evil-{uuid.uuid4().hex[:8]}", "lang": "py"},
        )
    wait_for(lambda: "Refusing to deserialize" in workers.log(), 60, what="the message to be refused")

    done = jobs.wait_final(jobs.submit(register_as="after-pickle", fit={"epochs": 2, "batch_size": 16})["id"])
    jobs.assert_ran_once(done)
    assert not marker.exists(), "a worker unpickled a message"
    assert len(workers.alive()) == 2


def test_ten_concurrent_submits_with_one_idempotency_key_make_one_job(jobs: Jobs, serve: ServeProcess) -> None:
    request = job_request(jobs.upload(), name="once", register_as="once", fit={"epochs": 2, "batch_size": 16})
    key = f"drill-{uuid.uuid4().hex}"
    start = threading.Barrier(10)

    def submit(_: int) -> httpx.Response:
        start.wait()  # all ten at once
        return serve.http.post("/v1/jobs", json=request, headers={"Idempotency-Key": key})

    with ThreadPoolExecutor(max_workers=10) as pool:
        responses = list(pool.map(submit, range(10)))

    assert [r.status_code for r in responses] == [202] * 10, [(r.status_code, r.text[:200]) for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    listed = serve.http.get("/v1/jobs", params={"name": "once"}).json()["items"]
    assert len(listed) == 1
    jobs.assert_ran_once(jobs.wait_final(listed[0]["id"]))


def test_a_job_survives_the_api_killed_right_after_it_answered(jobs: Jobs, serve: ServeProcess) -> None:
    request = job_request(jobs.upload(), register_as="orphaned", fit={"epochs": 3, "batch_size": 16})
    response = serve.http.post("/v1/jobs", json=request)
    serve.kill()  # SIGKILL: no shutdown hook, no sweep, nothing after the 202

    assert response.status_code == 202, response.text
    jobs.assert_ran_once(jobs.wait_final(response.json()["id"]))
