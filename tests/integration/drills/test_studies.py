"""Studies on PostgreSQL + Redis with two real workers: every trial a job, the best registered,
nothing lost or run twice when the API and a worker die midway, and the median pruner stopping
a poor trial early. The workers drive the studies (the in-process API has no lifespan here), so
the study goes on with no API at all."""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.factories import wait_for
from tests.integration.drills.harness import Jobs, ServeProcess, WorkerPool, pid_of
from tests.studies import base_request, study_request

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def settings_overrides() -> dict[str, Any]:
    return {"study_interval_s": 0.3}


def wait_study(api: httpx.Client | TestClient, study_id: str, timeout: float) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        study = api.get(f"/v1/studies/{study_id}").json()
        return study if study["status"] != "running" else None

    return dict(wait_for(ended, timeout, interval=0.5, what=f"study {study_id} to end"))


@pytest.fixture
def serve_process(drill_settings: Any, log_dir: Any) -> Iterator[ServeProcess]:
    process = ServeProcess(drill_settings, log_dir / "serve-studies.log")
    try:
        yield process
    finally:
        process.stop()


@pytest.mark.timeout(1200)  # 12 jobs, each a fresh Keras child: minutes on a busy 2-core machine
def test_a_12_trial_study_survives_the_api_and_a_worker_dying_midway(
    jobs: Jobs, api: TestClient, workers: WorkerPool, serve_process: ServeProcess
) -> None:
    dataset_id = jobs.upload(rows=1024)
    request = study_request(
        dataset_id, name="drill-study", register_as="drill-best", sampler="tpe", max_trials=12, parallelism=3
    )
    request["base"] = base_request(epochs=4, batch_size=8)  # about half a second an epoch
    created = serve_process.http.post("/v1/studies", json=request)
    assert created.status_code == 202, created.text
    study_id = created.json()["id"]

    def a_trial_training() -> dict[str, Any] | None:
        study = api.get(f"/v1/studies/{study_id}").json()
        if not any(t["status"] == "succeeded" for t in study["trials"]):
            return None
        for trial in study["trials"]:
            job = jobs.get(trial["job_id"]) if trial["job_id"] else None
            if job is not None and job["status"] == "running" and job["progress"]["epoch"] >= 1:
                return job
        return None

    job = wait_for(a_trial_training, 480, interval=0.2, what="a trial done and another one training")
    serve_process.kill()  # the API is gone; the workers' drivers carry on
    try:
        victim, killed_mid_trial = workers.owner_of(pid_of(job)), True
    except AssertionError:  # its child ended meanwhile: a busy worker all the same
        victim, killed_mid_trial = workers.alive()[0], False
    workers.kill(victim)  # with its driver, if it held the lock
    workers.ensure(2)

    study = wait_study(api, study_id, timeout=1100)
    assert study["status"] == "succeeded", study
    if killed_mid_trial:  # the trial was retried as the same job, not asked again
        assert jobs.get(job["id"])["attempt"] >= 2
    trials = study["trials"]
    assert [t["number"] for t in trials] == list(range(12))
    assert all(t["status"] == "succeeded" for t in trials), [(t["status"], t["error"]) for t in trials]
    listed = api.get("/v1/jobs", params={"study_id": study_id, "limit": 100}).json()["items"]
    assert sorted(j["id"] for j in listed) == sorted(t["job_id"] for t in trials)  # one job per trial
    for job in listed:
        to_statuses = [e["to_status"] for e in jobs.events(job["id"])]
        assert to_statuses.count("succeeded") == 1, to_statuses  # none ran to the end twice
    versions = api.get("/v1/models/drill-best-trials").json()["model_version_status"]
    assert len(versions) == 12  # each trial registered once
    best = study["best_trial"]
    assert best["value"] == max(t["value"] for t in trials)
    assert study["model"] == {"name": "drill-best", "version": 1}
    registered = api.get("/v1/models/drill-best/versions/1/metadata")
    assert registered.status_code == 200, registered.text


def test_the_median_pruner_stops_a_poor_trial_early(jobs: Jobs, api: TestClient) -> None:
    # Epochs long enough (~0.3 s) that a pruned trial's job is cut short: on 256 rows its twelve
    # epochs took about as long as a cancel takes to reach it (the driver's pass, then a heartbeat),
    # and one CI run saw the poor trial's job cancelled only after its last epoch.
    dataset_id = jobs.upload(rows=2048)
    request = study_request(
        dataset_id,
        name="prunable",
        register_as="prunable-best",
        sampler="grid",
        pruner="median",
        # seed 4: the grid's first point is a good learning rate; 2 of the 3 others hold a poor one
        max_trials=3,
        parallelism=1,
        seed=4,
        search_space={
            # 1e-7 learns nothing in 12 epochs: made to be pruned
            "/compile/optimizer/learning_rate": {"type": "categorical", "choices": [0.05, 1e-7]},
            "/fit/seed": {"type": "categorical", "choices": [1, 2]},
        },
    )
    # Keras's defaults: auto's fused step groups train these epochs several times faster.
    request["base"] = base_request(epochs=12, batch_size=16, performance="off")
    created = api.post("/v1/studies", json=request)
    assert created.status_code == 202, created.text

    study = wait_study(api, created.json()["id"], timeout=400)
    # With one finished trial to compare with, a good trial a little below it may be pruned too
    # (Optuna's median rule); the poor ones must be.
    poor = [t for t in study["trials"] if t["params"]["/compile/optimizer/learning_rate"] == 1e-7]
    assert poor and all(t["status"] == "pruned" for t in poor), [
        (t["params"], t["status"], t["intermediate"]) for t in study["trials"]
    ]
    for trial in poor:
        assert len(trial["intermediate"]) < 12  # stopped before its last epoch
        job = jobs.wait_final(trial["job_id"])
        assert job["status"] == "cancelled" and job["progress"]["epoch"] < 12
    assert study["status"] == "succeeded"
    assert study["best_trial"]["params"]["/compile/optimizer/learning_rate"] == 0.05
