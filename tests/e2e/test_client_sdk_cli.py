"""The SDK and the `trainyard` client commands against a real `trainyard serve` (embedded):
upload → submit → wait → predict with numpy arrays; `jobs submit --watch` under a
pseudo-terminal draws a live progress bar and exits 0 for a job that succeeds, 1 for one that
fails; `--json` for scripts; Ctrl-C stops watching and leaves the job running."""

import io
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from app.cli import cli as trainyard
from app.client import Client
from tests.e2e.conftest import Server
from tests.factories import classification_arrays, job_request, write_csv

pytestmark = pytest.mark.e2e


def test_sdk_round_trip_upload_submit_wait_predict(server: Server, tmp_path: Path) -> None:
    data = write_csv(tmp_path / "sdk.csv", rows=192, seed=4101)
    lines = io.StringIO()

    with Client(server.url) as client:
        dataset = client.datasets.upload(data, target="label", name="sdk-data")
        spec = job_request(dataset.id, name="sdk-mlp", register_as="sdk-mlp", fit={"epochs": 3, "batch_size": 16})
        job = client.jobs.submit(spec)
        final = job.wait(progress=True, console=Console(file=lines, force_terminal=False, width=200))
        metrics = job.metrics()
        x, _ = classification_arrays(5, 4, 3, seed=4102)
        predictions = client.models.predict("sdk-mlp", x.astype(np.float32))
        listed = [d.id for d in client.datasets.list()]

    assert final.status == "succeeded" and final.model is not None and final.model.name == "sdk-mlp"
    assert [e.epoch for e in metrics.epochs] == [1, 2, 3] and "loss" in metrics.epochs[0].logs
    assert isinstance(predictions, np.ndarray) and predictions.shape == (5, 3)
    assert np.allclose(predictions.sum(axis=1), 1.0, atol=1e-4)  # softmax rows
    assert dataset.id in listed
    # Not a terminal: a plain line per epoch, in order.
    epochs = [line.split()[1] for line in lines.getvalue().splitlines() if line.startswith("epoch ")]
    assert epochs == ["1/3", "2/3", "3/3"], lines.getvalue()


def run_in_pty(
    args: list[str], server: Server, timeout: float = 240, interrupt_after: str | None = None
) -> tuple[int, str]:
    """`trainyard ARGS` with a pseudo-terminal as its stdin, stdout and stderr: (exit code, output).
    `interrupt_after`: send SIGINT (Ctrl-C) once this text has been drawn."""
    primary, secondary = os.openpty()
    env = os.environ | {"TRAINYARD_URL": server.url, "TERM": "xterm-256color", "COLUMNS": "150"}
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", *args], stdin=secondary, stdout=secondary, stderr=secondary, env=env
    )
    os.close(secondary)
    output = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(primary, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
                if interrupt_after and interrupt_after.encode() in output:
                    process.send_signal(signal.SIGINT)
                    interrupt_after = None
            elif process.poll() is not None:
                break
        return process.wait(timeout=max(1.0, deadline - time.monotonic())), output.decode(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
        os.close(primary)


def cli(args: list[str], server: Server, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`trainyard ARGS` with no terminal."""
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=os.environ | {"TRAINYARD_URL": server.url},
        capture_output=True,
        text=True,
        timeout=180,
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


def cli_json(args: list[str], server: Server) -> object:
    """`trainyard ARGS --json`, run in this process (the same typer app, over HTTP to the
    server; it saves a Python start per call): its stdout as JSON."""
    result = CliRunner().invoke(trainyard, [*args, "--json"], env={"TRAINYARD_URL": server.url})
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_cli_story_submit_watch_inspect_predict_interrupt_cancel_and_a_failure(server: Server, tmp_path: Path) -> None:
    data = write_csv(tmp_path / "cli.csv", rows=192, seed=4201)
    dataset = cli_json(["datasets", "upload", str(data), "--target", "label", "--name", "cli-data"], server)
    assert isinstance(dataset, dict)
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "name: cli-mlp\nregister_as: cli-mlp\n"
        "model: {layers: [{type: Dense, units: 8, activation: relu}, {type: Dense, units: 3, activation: softmax}]}\n"
        "compile: {optimizer: adam, loss: sparse_categorical_crossentropy, metrics: [accuracy]}\n"
        "fit: {epochs: 3, batch_size: 16}\n"
    )

    # 1. Submit and watch in a terminal: a live progress bar, exit 0 for a job that succeeds.
    code, screen = run_in_pty(["jobs", "submit", str(spec), "--dataset", dataset["id"], "--watch"], server)

    assert code == 0, screen
    assert "\x1b[?25l" in screen  # rich's live display hid the cursor: a progress bar, not lines
    assert "━" in screen and "3/3" in screen and "loss=" in screen and "ETA" in screen
    assert "succeeded: model cli-mlp version 1" in screen

    # 2. Scripts read --json.
    listed = cli_json(["jobs", "list", "--name", "cli-mlp"], server)
    assert isinstance(listed, list) and len(listed) == 1 and listed[0]["status"] == "succeeded"
    job_id = listed[0]["id"]
    shown = cli_json(["jobs", "show", job_id], server)
    models = cli_json(["models", "list"], server)
    labelled = cli_json(["models", "label", "cli-mlp", "production", "1"], server)
    versions = cli_json(["models", "show", "cli-mlp"], server)
    assert isinstance(shown, dict) and shown["model"] == {"name": "cli-mlp", "version": 1}
    assert isinstance(models, list) and any(m["name"] == "cli-mlp" for m in models)
    assert isinstance(labelled, dict) and labelled["version"] == 1
    assert isinstance(versions, list) and versions[0]["job_id"] == job_id

    # 3. Predict a CSV by column name, into a CSV.
    rows = tmp_path / "rows.csv"
    rows.write_text("f0,f1,f2,f3\n0.1,0.2,0.3,0.4\n1,2,3,4\n")
    out = tmp_path / "predictions.csv"
    cli(["predict", "cli-mlp", str(rows), "--label", "production", "--out", str(out)], server)
    header, *predicted = out.read_text().splitlines()
    assert header == "prediction_0,prediction_1,prediction_2" and len(predicted) == 2

    # 4. Ctrl-C stops watching, not the job; cancelling it makes `watch` exit 3.
    long_spec = tmp_path / "long.yaml"
    long_spec.write_text(spec.read_text().replace("epochs: 3", "epochs: 500"))
    long = cli_json(["jobs", "submit", str(long_spec), "--dataset", dataset["id"], "--name", "cli-long"], server)
    assert isinstance(long, dict)
    code, screen = run_in_pty(["jobs", "watch", long["id"]], server, interrupt_after="cli-long")
    assert code == 130, screen
    assert f"job {long['id']} is still" in screen and f"trainyard jobs cancel {long['id']}" in screen
    still = cli_json(["jobs", "show", long["id"]], server)
    assert isinstance(still, dict) and still["status"] in ("queued", "running", "succeeded")
    cli_json(["jobs", "cancel", long["id"]], server)
    watched = cli(["jobs", "watch", long["id"]], server, check=False)
    assert watched.returncode == 3, watched.stderr

    # 5. A job that fails (its dataset's arrays are gone from the store): exit 1.
    lost = cli_json(["datasets", "upload", str(write_csv(tmp_path / "lost.csv", rows=96, seed=4202))], server)
    assert isinstance(lost, dict)
    shutil.rmtree(server.settings.datasets_dir / lost["id"])
    code, screen = run_in_pty(["jobs", "submit", str(spec), "--dataset", lost["id"], "--watch"], server)

    assert code == 1, screen
    assert "failed" in screen


def test_an_unknown_job_is_exit_code_4_with_the_servers_message(server: Server) -> None:
    done = cli(["jobs", "show", "no-such-job"], server, check=False)
    assert done.returncode == 4 and "HTTP 404" in done.stderr
