"""fit.performance: what auto decides from the spec, the device and the timed steps, and why."""

from typing import Any

import pytest

from app.ml import performance
from app.ml.performance import Device, plan, size_steps
from app.ml.spec import FitSpec

CPU = Device("cpu", "cpu (2 cores)", memory_bytes=8 << 30, bfloat16=False)
H200 = Device("gpu", "NVIDIA H200", memory_bytes=140 << 30, bfloat16=True)
T4 = Device("gpu", "Tesla T4", memory_bytes=15 << 30, bfloat16=False)


@pytest.fixture
def on(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Plan as if training ran on `device` (the real device query is the backend's)."""

    def use(device: Device) -> None:
        monkeypatch.setattr(performance, "current_device", lambda: device)

    return use


def test_off_is_kerass_defaults(on: Any) -> None:
    on(H200)
    chosen = plan(FitSpec(performance="off"), data_bytes=1 << 20, device_data_share=0.5, measurable=True)
    record = chosen.record()
    assert (chosen.steps_per_execution, chosen.jit_compile, chosen.dtype_policy, chosen.data_placement) == (
        1,
        "auto",
        "float32",
        "host",
    )
    assert record.mode == "off" and "off" in record.steps_per_execution.reason
    assert record.fused_steps is not None and record.fused_steps.value is False
    assert "off" in record.fused_steps.reason


def test_auto_on_a_cpu_times_steps_compiles_keeps_float32_and_fuses_groups_over_the_rows_in_memory(on: Any) -> None:
    on(CPU)
    chosen = plan(FitSpec(), data_bytes=1 << 30, device_data_share=0.5, measurable=True)
    assert chosen.steps_per_execution is None  # sized once the first steps are timed
    assert chosen.jit_compile is True
    assert chosen.dtype_policy == "float32" and "bfloat16" in chosen.reasons["dtype"]
    # A fused group gathers its batches in place: the rows go "on the device", the CPU's memory.
    assert chosen.data_placement == "device" and "1.0 GiB" in chosen.reasons["placement"]
    assert chosen.fused_steps is True and "one compiled loop" in chosen.reasons["fused"]
    assert chosen.record().fused_steps is not None and chosen.record().fused_steps.value is True

    too_big = plan(FitSpec(), data_bytes=5 << 30, device_data_share=0.5, measurable=True)
    assert too_big.data_placement == "pipeline" and "exceed 50% of 8.0 GiB" in too_big.reasons["placement"]
    assert too_big.fused_steps is False and "not on the device (pipeline)" in too_big.reasons["fused"]


def test_where_groups_cannot_be_fused_a_cpu_keeps_the_rows_on_kerass_array_path(
    on: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    on(CPU)
    unfused = plan(FitSpec(fused_steps=False), data_bytes=1 << 20, device_data_share=0.5, measurable=True)
    assert unfused.data_placement == "host" and "the CPU is the device" in unfused.reasons["placement"]
    assert unfused.fused_steps is False and unfused.reasons["fused"] == "given in fit"

    one_call = plan(FitSpec(), data_bytes=1 << 20, device_data_share=0.5, measurable=False)
    assert one_call.fused_steps is False and "without checkpoints" in one_call.reasons["fused"]

    monkeypatch.setattr(performance.keras.backend, "backend", lambda: "jax")
    no_xla = plan(FitSpec(jit_compile=False), data_bytes=1 << 20, device_data_share=0.5, measurable=True)
    assert no_xla.data_placement == "host" and no_xla.fused_steps is False and "XLA" in no_xla.reasons["fused"]

    monkeypatch.setattr(performance.keras.backend, "backend", lambda: "torch")
    torch = plan(FitSpec(), data_bytes=1 << 20, device_data_share=0.5, measurable=True)
    assert torch.data_placement == "host" and torch.fused_steps is False and "torch" in torch.reasons["fused"]


def test_jax_on_a_cpu_does_not_fuse_convolutions_and_keeps_their_rows_on_kerass_path(
    on: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    on(CPU)
    monkeypatch.setattr(performance.keras.backend, "backend", lambda: "jax")
    chosen = plan(FitSpec(), 1 << 20, 0.5, True, layer_types=frozenset({"Conv2D", "Dense"}))
    assert chosen.fused_steps is False and "convolutions inside a compiled loop" in chosen.reasons["fused"]
    assert chosen.data_placement == "host"
    assert plan(FitSpec(), 1 << 20, 0.5, True, layer_types=frozenset({"LSTM", "Dense"})).fused_steps is True
    on(H200)  # a GPU's convolutions are fused
    assert plan(FitSpec(), 1 << 20, 0.5, True, layer_types=frozenset({"Conv2D"})).fused_steps is True


def test_jax_class_weights_are_fused_and_one_step_a_group_given_keeps_the_host_path(
    on: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    on(CPU)
    monkeypatch.setattr(performance.keras.backend, "backend", lambda: "jax")
    weighted = plan(FitSpec(class_weight={0: 1.0, 1: 3.0}), 1 << 20, 0.5, True)
    assert weighted.data_placement == "device" and weighted.fused_steps is True  # the feeds weigh rows
    single = plan(FitSpec(steps_per_execution=1), 1 << 20, 0.5, True)
    assert single.data_placement == "host" and single.fused_steps is False


def test_fused_groups_asked_for_with_rows_off_the_device_are_not_fused_and_say_why(on: Any) -> None:
    on(CPU)
    chosen = plan(FitSpec(fused_steps=True, data_placement="host"), 1 << 20, 0.5, True)
    assert chosen.fused_steps is False and "not on the device (host)" in chosen.reasons["fused"]


def test_auto_on_a_gpu_copies_rows_that_fit_there_once(on: Any) -> None:
    on(H200)
    chosen = plan(FitSpec(), data_bytes=1 << 30, device_data_share=0.5, measurable=True)
    assert chosen.data_placement == "device" and "copied there once" in chosen.reasons["placement"]


def test_tensorflow_on_a_cpu_leaves_xla_off_for_convolutions(on: Any) -> None:
    on(CPU)
    chosen = plan(FitSpec(), 1 << 20, 0.5, True, layer_types=frozenset({"Conv2D", "Dense"}))
    assert chosen.jit_compile is False and "oneDNN" in chosen.reasons["jit"]
    on(H200)
    assert plan(FitSpec(), 1 << 20, 0.5, True, layer_types=frozenset({"Conv2D"})).jit_compile is True


def test_auto_picks_bfloat16_only_on_gpus_that_compute_it(on: Any) -> None:
    on(H200)
    assert plan(FitSpec(), 1 << 20, 0.5, True).dtype_policy == "mixed_bfloat16"
    on(T4)
    assert plan(FitSpec(), 1 << 20, 0.5, True).dtype_policy == "float32"


def test_an_lstm_on_a_jax_gpu_stays_float32_where_cudnn_cannot_take_bfloat16(
    on: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    on(H200)
    monkeypatch.setattr(performance.keras.backend, "backend", lambda: "jax")
    chosen = plan(FitSpec(), 1 << 20, 0.5, True, layer_types=frozenset({"Bidirectional", "LSTM", "Dense"}))
    assert chosen.dtype_policy == "float32" and "cuDNN" in chosen.reasons["dtype"]
    assert plan(FitSpec(), 1 << 20, 0.5, True, layer_types=frozenset({"GRU", "Dense"})).dtype_policy == "mixed_bfloat16"
    assert plan(
        FitSpec(dtype_policy="mixed_bfloat16"), 1 << 20, 0.5, True, layer_types=frozenset({"LSTM"})
    ).dtype_policy == ("mixed_bfloat16")  # given in fit: kept


def test_every_choice_given_in_fit_is_kept_and_says_so(on: Any) -> None:
    on(H200)
    fit = FitSpec(
        steps_per_execution=7, jit_compile=False, dtype_policy="float32", data_placement="device", fused_steps=False
    )
    chosen = plan(fit, 1 << 20, 0.5, True)
    assert (
        chosen.steps_per_execution,
        chosen.jit_compile,
        chosen.dtype_policy,
        chosen.data_placement,
        chosen.fused_steps,
    ) == (7, False, "float32", "device", False)
    assert set(chosen.reasons.values()) == {"given in fit"}


def test_a_run_that_cannot_time_its_steps_keeps_one_step_per_call(on: Any) -> None:
    on(CPU)
    chosen = plan(FitSpec(), 1 << 20, 0.5, measurable=False)
    assert chosen.steps_per_execution == 1 and "no steps to time" in chosen.reasons["spe"]


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ([0.001] * 10, 100),  # 1 ms steps: 100 make the 100 ms group
        ([0.001, 0.002, 0.001, 0.050, 0.001], 100),  # the median, not an outlier, sizes it
        ([0.5] * 4, 1),  # a step longer than the target: one per call
        ([1e-7] * 4, performance.MAX_STEPS_PER_EXECUTION),  # capped
        ([], 1),  # nothing timed: Keras's default
    ],
)
def test_step_groups_are_sized_from_the_median_step(steps: list[float], expected: int) -> None:
    chosen, reason = size_steps(steps)
    assert chosen == expected
    assert reason


def test_a_performance_value_other_than_auto_or_off_is_refused() -> None:
    with pytest.raises(ValueError, match="performance"):
        FitSpec.model_validate({"performance": "turbo"})
    with pytest.raises(ValueError, match="data_placement"):
        FitSpec.model_validate({"data_placement": "gpu"})
