"""The study driver's pruning decisions, with real Optuna pruners rebuilt from trial rows the way
every driver pass rebuilds them (no database: the rows are plain objects here)."""

import pytest

from app.models import Study, StudyTrial, TrialStatus
from app.studies.driver import trials_to_prune
from app.studies.schemas import StudyCreate
from tests.studies import base_request

EPOCHS = 9
LEARNING_RATE = "/compile/optimizer/learning_rate"


def request(pruner: str) -> StudyCreate:
    return StudyCreate.model_validate(
        {
            "dataset_id": "d",
            "base": base_request(epochs=EPOCHS),
            "search_space": {LEARNING_RATE: {"type": "float", "low": 1e-4, "high": 0.1, "log": True}},
            "objective": {"metric": "val_accuracy", "direction": "maximize"},
            "pruner": pruner,
            "max_trials": 40,
        }
    )


def trial(number: int, status: TrialStatus, accuracy: float, epochs: int = EPOCHS) -> StudyTrial:
    curve = {str(epoch): accuracy * epoch / EPOCHS for epoch in range(1, epochs + 1)}
    return StudyTrial(
        study_id="s",
        number=number,
        params={LEARNING_RATE: 0.01},
        system_attrs={},
        intermediate=curve,
        status=status,
        value=curve[str(epochs)] if status is TrialStatus.SUCCEEDED else None,
    )


def run_study(pruner: str, good: float, poor: float) -> tuple[Study, StudyCreate, list[StudyTrial]]:
    """Thirty trials that ran to the end, each followed by the pruner while it ran (one driver
    pass per epoch), then six running 4 epochs in: three as good as the best (30-32), three far
    worse (33-35). Several of each, as Hyperband puts each trial in one of its brackets (by a
    hash of its number) and its last bracket judges no trial before the final epoch."""
    study = Study(id="s", name="s", project="default", dataset_id="d", request={}, seed=1)
    req = request(pruner)
    rows: list[StudyTrial] = []
    for number in range(30):
        accuracy = 0.5 + 0.4 * (number % 10) / 10
        running = trial(number, TrialStatus.RUNNING, accuracy, epochs=0)
        rows.append(running)
        for epoch in range(1, EPOCHS + 1):
            running.intermediate = {str(e): accuracy * e / EPOCHS for e in range(1, epoch + 1)}
            trials_to_prune(study, req, rows)
        running.status, running.value = TrialStatus.SUCCEEDED, running.intermediate[str(EPOCHS)]
    rows += [trial(n, TrialStatus.RUNNING, good, epochs=4) for n in (30, 31, 32)]
    rows += [trial(n, TrialStatus.RUNNING, poor, epochs=4) for n in (33, 34, 35)]
    return study, req, rows


@pytest.mark.parametrize("pruner", ["median", "hyperband"])
def test_a_poor_running_trial_is_pruned_and_a_good_one_is_not(pruner: str) -> None:
    study, req, rows = run_study(pruner, good=0.95, poor=0.05)
    finished, running = rows[:30], rows[30:]
    # Each judged alone against the finished trials (the running ones before it failed, so they
    # do not compete): what the finished ones recorded while they ran is what counts.
    pruned = set()
    for candidate in running:
        failed = [trial(n, TrialStatus.FAILED, 0.0, epochs=0) for n in range(30, candidate.number)]
        if trials_to_prune(study, req, [*finished, *failed, candidate]) == [candidate]:
            pruned.add(candidate.number)
    assert pruned and pruned <= {33, 34, 35}, pruned


def test_no_pruner_prunes_nothing() -> None:
    study = Study(id="s", name="s", project="default", dataset_id="d", request={}, seed=1)
    req = StudyCreate.model_validate({**request("median").model_dump(), "pruner": None})
    rows = [trial(n, TrialStatus.SUCCEEDED, 0.9) for n in range(10)] + [trial(10, TrialStatus.RUNNING, 0.01, 4)]
    assert trials_to_prune(study, req, rows) == []
