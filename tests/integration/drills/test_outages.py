"""Drills: the broker lost and restarted empty, down at submit time, and a worker cut off from
the database while it trains (its lease expires while it is alive: fencing).

This module brings its own `redis-server` (the shared one is never stopped) and starts its
workers with their database connections through proxies a drill can cut.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config import Settings
from tests.factories import wait_for
from tests.integration.drills.harness import (
    Jobs,
    RedisServer,
    WorkerPool,
    alive,
    artifact_files,
    assert_attempt_one_wrote_nothing_after,
    pid_of,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def own_redis(log_dir: Path) -> Iterator[RedisServer]:
    server = RedisServer(log_dir / "redis-server.log")
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="module")
def broker_url(own_redis: RedisServer) -> str:
    return own_redis.url


@pytest.fixture(scope="module")
def proxied() -> bool:
    return True


def test_redis_restarted_empty_loses_neither_the_running_job_nor_the_queued_ones(
    jobs: Jobs, own_redis: RedisServer
) -> None:
    running = jobs.submit(register_as="through-restart", fit={"epochs": 24, "batch_size": 8})
    jobs.wait_running(running["id"], epoch=2)
    queued = [jobs.submit(register_as=f"queued-{i}", fit={"epochs": 2, "batch_size": 16}) for i in range(3)]

    own_redis.kill()  # every message in the broker is gone, the unacknowledged ones too
    own_redis.start()

    for job in [running, *queued]:
        jobs.assert_ran_once(jobs.wait_final(job["id"]))


def test_a_job_submitted_while_the_broker_is_down_runs_once_it_is_back(jobs: Jobs, own_redis: RedisServer) -> None:
    dataset_id = jobs.upload()
    own_redis.kill()
    try:
        job = jobs.submit(dataset_id, register_as="submitted-blind", fit={"epochs": 2, "batch_size": 16})
        assert job["status"] == "queued"
    finally:
        own_redis.start()
    jobs.assert_ran_once(jobs.wait_final(job["id"]))


def test_a_worker_cut_off_from_the_database_loses_its_lease_and_writes_nothing_after(
    jobs: Jobs, workers: WorkerPool, drill_settings: Settings
) -> None:
    """The cut-off worker is alive and keeps training until it notices: once its lease is
    gone, another worker owns the job, and when the partition heals the old attempt must not
    record an epoch, a checkpoint or a model. (Enough epochs that the lease runs out first.)"""
    job = jobs.submit(register_as="partitioned", fit={"epochs": 30, "batch_size": 8})
    running = jobs.wait_running(job["id"], epoch=3)
    child = pid_of(running)
    proxy = workers.proxy_of(workers.owner_of(child))

    proxy.cut()
    try:
        moved = jobs.wait_until(
            job["id"],
            lambda j: j["status"] == "running" and j["worker"] != running["worker"],
            timeout=90,
            what="reclaimed by the other worker",
        )
        before_heal = artifact_files(drill_settings, job["id"])
    finally:
        proxy.restore()  # the partition heals: the stale attempt could write again now
    wait_for(lambda: not alive(child), 120, what="the cut-off attempt to stop")
    # Before the job ends: a success removes the checkpoints.
    after = artifact_files(drill_settings, job["id"])

    done = jobs.wait_final(job["id"])
    assert moved["attempt"] == 2
    assert_attempt_one_wrote_nothing_after(drill_settings, done, before_heal, after)
    jobs.assert_ran_once(done, resumed=True)  # last: the fencing checks above say more when it fails
