"""How a worker shares its devices among its child processes, and pins each one."""

import pytest

from app.config import Settings
from app.worker_registry.devices import DeviceConfigError, plan_devices


def test_told_devices_are_split_evenly_among_the_children(settings: Settings) -> None:
    plan = plan_devices(settings.model_copy(update={"worker_devices": "0, 1,2,3"}), concurrency=2)

    assert plan.devices == ["0", "1", "2", "3"] and plan.per_job == 2
    assert [plan.slot(0), plan.slot(1)] == [["0", "1"], ["2", "3"]]
    assert plan.child_environment(1)["CUDA_VISIBLE_DEVICES"] == "2,3"


def test_each_child_shares_memory_unless_the_operator_said_otherwise(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = plan_devices(settings.model_copy(update={"worker_devices": "0"}), concurrency=1)
    assert plan.child_environment(0) == {
        "CUDA_VISIBLE_DEVICES": "0",
        "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
        "TF_FORCE_GPU_ALLOW_GROWTH": "true",
    }
    monkeypatch.setenv("XLA_PYTHON_CLIENT_PREALLOCATE", "true")
    assert plan.child_environment(0)["XLA_PYTHON_CLIENT_PREALLOCATE"] == "true"


def test_fewer_devices_than_children_is_refused(settings: Settings) -> None:
    with pytest.raises(DeviceConfigError, match="--concurrency 3"):
        plan_devices(settings.model_copy(update={"worker_devices": "0,1"}), concurrency=3)


def test_without_a_device_list_or_nvml_the_devices_are_not_known_and_nothing_is_pinned(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    plan = plan_devices(settings, concurrency=2)

    assert plan.devices is None and plan.per_job is None
    assert "CUDA_VISIBLE_DEVICES" not in plan.child_environment(0)


def test_a_bad_device_list_is_refused_by_the_settings(settings: Settings) -> None:
    with pytest.raises(ValueError, match="worker_devices"):
        Settings(home=settings.home, worker_devices="0;1")
