"""Fused step groups (fit.fused_steps): the same batches in the same order as Keras's own step loop,
so the same weights, logs and optimizer steps, on TensorFlow (here) and JAX (a child process)."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from app.ml import feeding, fused
from app.ml.resume import EpochOrder
from app.ml.run_control import StopReason
from app.ml.spec import TrainingSpec
from app.ml.training import train
from tests.unit.ml.catalog_examples import LAYER_EXAMPLES
from tests.unit.ml.test_checkpoints import (
    BATCHES_PER_EPOCH,
    Recorder,
    assert_same_weights,
    job_spec,
    stop_then_resume,
    stored_dataset,
    straight,
)
from tests.unit.ml.test_layers import regression_data

ROOT = Path(__file__).resolve().parents[3]
# 150 rows in batches of 4: 37 whole batches and a short one of 2.
ROWS, BATCH = 150, 4


def decoded(blocks: list[Any]) -> np.ndarray:
    """The row indices a list of Blocks trains on, in order."""
    rows: list[np.ndarray] = []
    for full, count, tail, has_tail in blocks:
        rows.extend(np.asarray(full)[: int(count)])
        if bool(has_tail):
            rows.append(np.asarray(tail))
    return np.concatenate(rows) if rows else np.array([], dtype=np.int32)


@pytest.mark.parametrize(("steps", "epoch", "first_batch"), [(5, 0, 0), (5, 1, 7), (8, 2, 36), (38, 0, 0), (1, 0, 30)])
def test_blocks_cover_the_epochs_batches_in_order_whatever_the_group_and_first_batch(
    steps: int, epoch: int, first_batch: int
) -> None:
    order = EpochOrder(ROWS, BATCH, seed=3, shuffle=True)
    grouping = fused.Grouping(order, steps)
    wanted = order.order_of(epoch)[first_batch * BATCH :]

    found = fused.blocks(grouping, order.order_of(epoch), first_batch, order.batches_per_epoch)

    assert len(found) == grouping.groups(first_batch, order.batches_per_epoch)
    assert {(b[0].shape, b[2].shape) for b in found} == {((steps, BATCH), (ROWS % BATCH,))}  # compiled once
    np.testing.assert_array_equal(decoded(found), wanted)
    if tensorflow_backend():  # the TensorFlow feed builds the same Blocks inside its pipeline
        x = np.arange(ROWS * 3, dtype=np.float32).reshape(ROWS, 3)
        feed = feeding._TensorFlowFeed(order, x, np.arange(ROWS), None)
        given = feed.group_args(grouping, epoch, first_batch)
        in_pipeline = [tuple(np.asarray(part) for part in block) for block in given["x"]]
        assert given["steps_per_epoch"] == order.batches_per_epoch - first_batch
        assert len(in_pipeline) == len(found)
        for theirs, ours in zip(in_pipeline, found, strict=True):
            for a, b in zip(theirs, ours, strict=True):
                np.testing.assert_array_equal(a, b)


def tensorflow_backend() -> bool:
    return keras.backend.backend() == "tensorflow"


def compare_fused_with_kerass_loop(workdir: Path) -> dict[str, Any]:
    """Train the same seeded spec with fused groups and with Keras's step loop over Keras's own
    input (4 steps a group, class weights, a short last batch); the largest weight difference,
    both runs' logs and optimizer steps, and what each recorded."""
    data = stored_dataset(workdir)
    runs = {}
    for fuse in (True, False):
        spec = job_spec(
            epochs=3,
            steps_per_execution=4,
            # Keras's loop over its own array input: it weighs the classes itself.
            data_placement="device" if fuse else "host",
            fused_steps=fuse,
            class_weight={0: 1.0, 1: 2.0, 2: 0.5},
        )
        runs[fuse] = straight(spec, data, workdir / f"fused-{fuse}")
    fused_run, kerass = runs[True], runs[False]
    assert fused_run.performance is not None and kerass.performance is not None
    return {
        "max_weight_difference": max(
            float(np.max(np.abs(a - b)))
            for a, b in zip(fused_run.model.get_weights(), kerass.model.get_weights(), strict=True)
        ),
        "logs": [fused_run.final_logs, kerass.final_logs],
        "iterations": [int(keras.ops.convert_to_numpy(r.model.optimizer.iterations)) for r in (fused_run, kerass)],
        "fused": [fused_run.performance.fused_steps.model_dump(), kerass.performance.fused_steps.model_dump()],
    }


def assert_the_same_training(found: dict[str, Any]) -> None:
    assert found["fused"][0] == {"value": True, "reason": "given in fit"}
    assert found["fused"][1] == {"value": False, "reason": "given in fit"}
    assert found["iterations"] == [3 * BATCHES_PER_EPOCH] * 2
    assert found["max_weight_difference"] < 1e-5
    fused_logs, kerass_logs = found["logs"]
    assert fused_logs.keys() == kerass_logs.keys() and "val_loss" in fused_logs
    assert fused_logs == pytest.approx(kerass_logs, abs=1e-5)


def test_fused_groups_train_to_the_weights_and_logs_of_kerass_step_loop(tmp_path: Path) -> None:
    if not tensorflow_backend():
        pytest.skip("this process runs TensorFlow; JAX is the next test's child process")
    assert_the_same_training(compare_fused_with_kerass_loop(tmp_path))


def test_on_jax_fused_groups_train_to_the_weights_and_logs_of_kerass_step_loop(tmp_path: Path) -> None:
    pytest.importorskip("jax", reason="the [jax] extra is not installed")
    script = (
        "import json, pathlib, sys\n"
        "from tests.unit.ml.test_fused import compare_fused_with_kerass_loop\n"
        "print(json.dumps(compare_fused_with_kerass_loop(pathlib.Path(sys.argv[1]))))\n"
    )
    child = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        env={**os.environ, "KERAS_BACKEND": "jax"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    assert_the_same_training(json.loads(child.stdout.strip().splitlines()[-1]))


def test_a_fused_run_handed_back_inside_an_epoch_resumes_to_the_weights_of_a_straight_run(tmp_path: Path) -> None:
    # Groups of 3 over 10 batches an epoch: a checkpoint at every group end; the hand-back is
    # asked for after the 5th (epoch 2, inside it), and attempt 2 starts mid-epoch, mid-group.
    data = stored_dataset(tmp_path)
    spec = job_spec(epochs=3, steps_per_execution=3, data_placement="device", fused_steps=True)
    expected = straight(spec, data, tmp_path / "straight")

    stopped, second, resumed = stop_then_resume(
        spec, data, tmp_path / "ck", ("checkpoint", 5, StopReason.HAND_BACK), every_s=0
    )

    assert stopped.last_checkpoint is not None and stopped.last_checkpoint.batch is not None
    assert resumed.performance is not None and resumed.performance.fused_steps.value is True
    assert second.epochs == [2, 3]
    assert_same_weights(resumed.model, expected.model)
    assert int(keras.ops.convert_to_numpy(resumed.model.optimizer.iterations)) == 3 * BATCHES_PER_EPOCH


@pytest.mark.parametrize(
    "fit",
    [
        {"performance": "off"},
        {"steps_per_execution": 4, "data_placement": "device", "fused_steps": True},
        {"steps_per_execution": 4, "data_placement": "device", "fused_steps": False},
    ],
    ids=["off", "fused", "device-unfused"],
)
def test_a_class_left_out_of_class_weight_weighs_one_on_every_feed(tmp_path: Path, fit: dict[str, Any]) -> None:
    # Keras's own tf.data weighting fails on a class above the largest given; arrays weigh it 1.0.
    if not tensorflow_backend():
        pytest.skip("the TensorFlow feeds run on TensorFlow")
    data = stored_dataset(tmp_path)
    left_out = straight(job_spec(epochs=2, class_weight={0: 1.0, 1: 2.0}, **fit), data, tmp_path / "left-out")
    spelled = straight(job_spec(epochs=2, class_weight={0: 1.0, 1: 2.0, 2: 1.0}, **fit), data, tmp_path / "spelled")
    assert_same_weights(left_out.model, spelled.model)
    assert left_out.final_logs == pytest.approx(spelled.final_logs, abs=1e-6)


# Trains differently from how it predicts (a crop only in training): no model can be built ahead of
# its first step from an inference pass, so it keeps Keras's loop, and says why.
UNBUILDABLE_AHEAD = {"RandomCrop"}


@pytest.mark.parametrize("layer_type", sorted(LAYER_EXAMPLES))
def test_every_catalog_layer_trains_fused_to_the_weights_of_kerass_step_loop(tmp_path: Path, layer_type: str) -> None:
    arguments, shape = LAYER_EXAMPLES[layer_type]
    features, target = regression_data(tmp_path, shape, integers=layer_type == "Embedding")
    layers = [{"type": layer_type, **arguments}, {"type": "Flatten"}, {"type": "Dense", "units": 1}]
    results, shown = {}, {}
    for fuse in (True, False):
        spec = TrainingSpec.model_validate(
            {
                "model": {"layers": layers},
                "compile": {"optimizer": "adam", "loss": "mse"},
                # 8 rows in batches of 3: groups of 2 batches, the second group's last batch short.
                "fit": {"epochs": 2, "batch_size": 3, "seed": 1, "steps_per_execution": 2, "fused_steps": fuse},
            }
        )
        recorder, shown[fuse] = Recorder(), []
        run = recorder.run(tmp_path / f"{fuse}")
        run.on_performance = shown[fuse].append  # what the job shows
        results[fuse] = train(spec, tmp_path, features, target, recorder.progress, run)

    record = results[True].performance
    assert record is not None and record.fused_steps is not None
    assert shown[True][-1] == record  # a fallback (XLA could not compile the loop) is shown too
    if layer_type in UNBUILDABLE_AHEAD:
        assert record.fused_steps.value is False and "could not be built" in record.fused_steps.reason
    else:
        assert record.fused_steps.value is True, record.fused_steps.reason
    assert_same_weights(results[True].model, results[False].model)
