"""Placing a job on its devices, on the TensorFlow backend the unit tests run on."""

import json
import subprocess
import sys
import textwrap

import pytest

from app.ml import distribution

# In a fresh process: TensorFlow splits its CPU into two logical devices only before it starts.
MIRRORED_FIT = textwrap.dedent(
    """
    import json
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras, numpy as np
    from app.ml import distribution

    with distribution.placed(2) as placement:
        layers = [keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dense(3, activation="softmax")]
        model = keras.Sequential(layers)
        model.compile("adam", "sparse_categorical_crossentropy")
        rng = np.random.default_rng(0)
        x, y = placement.whole_batches((rng.random((37, 4), dtype=np.float32), rng.integers(0, 3, 37)), "training")
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)
        placement.note_trained(model)
    print("REPORT" + json.dumps(placement.report.as_dict()))
    """
)


def test_two_devices_on_tensorflow_train_mirrored_and_keep_every_row() -> None:
    result = subprocess.run([sys.executable, "-c", MIRRORED_FIT], capture_output=True, text=True, timeout=240)

    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("REPORT"))[6:])
    assert report["strategy"] == "MirroredStrategy" and report["devices"] == ["cpu:0", "cpu:1"]
    assert report["replicas"] == 2  # one copy of the weights per device
    assert report["rows_left_out"] == {}  # MirroredStrategy splits the uneven last batch itself


def test_more_devices_than_the_process_sees_is_refused_by_name() -> None:
    with pytest.raises(distribution.DevicesUnavailable, match=r"^resources\.gpus: the job asks for 2 devices"):
        distribution.Placement(2)


def test_a_gpu_job_without_a_gpu_says_it_trains_on_the_cpu() -> None:
    with distribution.placed(1) as placement:
        pass

    assert placement.report.strategy == "single" and placement.report.devices == ["cpu:0"]
    assert placement.report.warning == "no GPU visible to this worker: trained on 1 CPU device(s) instead"
