"""Drills: training processes and workers killed, stopped and frozen mid-job."""

import os
import re
import signal
import subprocess

import pytest

from app.config import Settings
from tests.factories import wait_for
from tests.integration.drills.harness import (
    DRILL_SETTINGS,
    FINAL,
    Jobs,
    WorkerPool,
    alive,
    artifact_files,
    assert_attempt_one_wrote_nothing_after,
    frozen,
    pid_of,
)

pytestmark = pytest.mark.integration

KILLED_BY_SIGKILL = re.compile(r"SIGKILL|signal 9\b")


def resume_details(jobs: Jobs, job_id: str) -> list[str]:
    return [e["detail"] for e in jobs.events(job_id) if "resumed from epoch" in (e["detail"] or "")]


def test_a_training_child_killed_mid_epoch_resumes_from_its_checkpoint(jobs: Jobs) -> None:
    job = jobs.submit(register_as="child-killed")
    running = jobs.wait_running(job["id"], epoch=3)
    os.kill(pid_of(running), signal.SIGKILL)  # the OOM killer, say

    done = jobs.wait_final(job["id"])
    jobs.assert_ran_once(done, resumed=True)
    assert done["attempt"] == 2 and done["handbacks"] == 0
    assert any(f"resumed from epoch {done['resumed_from_epoch']}" in d for d in resume_details(jobs, job["id"]))
    assert done["last_exit"] and KILLED_BY_SIGKILL.search(done["last_exit"]), done["last_exit"]


def test_a_lost_worker_is_recovered_by_the_other_worker_without_any_serve(jobs: Jobs, workers: WorkerPool) -> None:
    """The whole worker (main process and child) is SIGKILLed: a machine lost. No `serve`
    runs (the in-process API has no sweep): the surviving worker's sweep must recover it."""
    job = jobs.submit(register_as="worker-killed")
    running = jobs.wait_running(job["id"], epoch=3)
    workers.kill(workers.owner_of(pid_of(running)))
    workers.start(1)  # the replacement machine; the job need not wait for it

    done = jobs.wait_final(job["id"])
    jobs.assert_ran_once(done, resumed=True)
    assert done["attempt"] == 2
    assert any("lease" in (e["detail"] or "") for e in jobs.events(job["id"]))


def test_sigterm_hands_the_job_back_and_another_worker_resumes_it(
    jobs: Jobs, workers: WorkerPool, drill_settings: Settings
) -> None:
    job = jobs.submit(register_as="handed-back", fit={"epochs": 12, "batch_size": 8})
    running = jobs.wait_running(job["id"], epoch=3)
    owner = workers.owner_of(pid_of(running))

    owner.process.send_signal(signal.SIGTERM)  # a deploy, a scale-down, a spot reclaim
    # Exits within the grace period (the slack is for a 2-core machine under load).
    grace = DRILL_SETTINGS["shutdown_grace_s"]
    try:
        owner.process.wait(timeout=grace + 10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker still runs {grace + 10} s after SIGTERM (shutdown_grace_s={grace})")
    elsewhere = jobs.wait_until(
        job["id"],
        lambda j: j["status"] == "running" and j["worker"] != running["worker"],
        timeout=30,
        what="running on the other worker",
    )
    assert elsewhere["handbacks"] == 1
    assert elsewhere["resumed_from_epoch"] is not None
    assert elsewhere["resumed_from_epoch"] >= running["progress"]["epoch"]
    events = jobs.events(job["id"])
    handed_back = [e for e in events if "handed back" in (e["detail"] or "")]
    assert len(handed_back) == 1 and handed_back[0]["to_status"] == "queued", events

    # The hand-back is not a failure: with max_attempts=2, one real crash still leaves a retry.
    resumed = jobs.wait_running(job["id"], epoch=elsewhere["resumed_from_epoch"] + 1)
    os.kill(pid_of(resumed), signal.SIGKILL)
    done = jobs.wait_final(job["id"])
    jobs.assert_ran_once(done, resumed=True)
    assert done["handbacks"] == 1


def test_a_frozen_child_loses_its_lease_and_writes_nothing_when_it_wakes(jobs: Jobs, drill_settings: Settings) -> None:
    """SIGSTOP freezes the heartbeat too: the lost-worker path. The job resumes elsewhere;
    the old child, thawed, must find its lease gone and write nothing more (fencing)."""
    job = jobs.submit(register_as="frozen", fit={"epochs": 12, "batch_size": 8})
    running = jobs.wait_running(job["id"], epoch=3)
    child = pid_of(running)
    with frozen(child):
        moved = jobs.wait_until(
            job["id"], lambda j: j["status"] == "running" and j["attempt"] == 2, timeout=60, what="reclaimed"
        )
        before_thaw = artifact_files(drill_settings, job["id"])
    wait_for(lambda: not alive(child), 120, what="the thawed child to give up")
    # Before the job ends: a success removes the checkpoints.
    after = artifact_files(drill_settings, job["id"])

    done = jobs.wait_final(job["id"])
    assert moved["worker"] != running["worker"]
    assert_attempt_one_wrote_nothing_after(drill_settings, done, before_thaw, after)
    jobs.assert_ran_once(done, resumed=True)  # last: the fencing checks above say more when it fails


def test_a_job_whose_process_dies_every_time_fails_after_max_attempts_saying_how(
    jobs: Jobs, drill_settings: Settings
) -> None:
    job = jobs.submit(register_as="crash-loop")
    killed: set[str] = set()

    def kill_each_attempt() -> dict | None:
        current = jobs.get(job["id"])
        if current["status"] in FINAL:
            return current
        trained = current["progress"]["epoch"] > (current["resumed_from_epoch"] or 0)
        if current["status"] == "running" and current["worker"] not in killed and trained:
            os.kill(pid_of(current), signal.SIGKILL)
            killed.add(current["worker"])
        return None

    done = wait_for(kill_each_attempt, 300, interval=0.1, what="the crash loop to end")
    assert done["status"] == "failed"
    assert len(killed) == drill_settings.max_attempts

    # When the sweep saw the last attempt's lease expire before its worker reported the SIGKILL
    # (a busy machine), the job failed for the lease, and the report adds how it died.
    def says_how_it_died() -> dict | None:
        current = jobs.get(job["id"])
        return current if KILLED_BY_SIGKILL.search(current["error"] or "") else None

    done = wait_for(says_how_it_died, 60, what="the error to say how the process died")
    assert re.search(r"epoch \d+", done["error"]), done["error"]
    assert jobs.model_versions("crash-loop") == []
    assert "succeeded" not in [e["to_status"] for e in jobs.events(job["id"])]


@pytest.mark.slow
def test_thirty_epochs_with_the_child_killed_at_epoch_ten_list_each_epoch_once(jobs: Jobs) -> None:
    """The acceptance check: epochs 1-30 once each, those up to the last checkpoint before the
    kill (at epoch 10: that epoch's, the one before when the kill beat its write, or the one
    after when its row was still queued) from attempt 1, the rest from attempt 2."""
    job = jobs.submit(register_as="thirty", rows=2048, fit={"epochs": 30, "batch_size": 8})
    running = jobs.wait_running(job["id"], epoch=10)
    os.kill(pid_of(running), signal.SIGKILL)
    # The last epoch recorded before the kill landed (10, or 11 when an epoch ended meanwhile).
    last_recorded = max(row["epoch"] for row in jobs.metrics(job["id"])["epochs"])

    done = jobs.wait_final(job["id"])
    jobs.assert_ran_once(done, resumed=True)
    start = done["resumed_from_epoch"]
    # Checkpoints and epoch rows are both written behind training, each by a thread of its own:
    # the newest checkpoint is within an epoch of the newest row. A row the kill lost is restored
    # from the checkpoint's history by the next claim (attempt 1's, in the rows checked below).
    assert last_recorded >= 10 and last_recorded - 1 <= start <= last_recorded + 1, (start, last_recorded)
    rows = jobs.metrics(job["id"])["epochs"]
    assert [(r["epoch"], r["attempt"]) for r in rows] == [(e, 1 if e <= start else 2) for e in range(1, 31)]
