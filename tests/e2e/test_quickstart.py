"""The README's quick starts (curl, then the CLI), pasted into bash, against a real embedded
`trainyard serve`."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def readme_block(marker: str) -> str:
    readme = (ROOT / "README.md").read_text()
    block = re.search(rf"<!-- {marker}:begin -->\n```bash\n(.*?)```\n<!-- {marker}:end -->", readme, re.S)
    assert block, f"README.md lost its {marker} block"
    return block.group(1)


def quickstart_script() -> str:
    return readme_block("quickstart")


def test_the_readme_quickstart_trains_the_classic_example_and_predicts(server: Server, tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    script = quickstart_script().replace("http://127.0.0.1:8000", server.url)
    script = script.replace(".venv/bin/python", sys.executable)
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    outputs = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    job, metrics, prediction = outputs[-3:]
    assert job["status"] == "succeeded", job["error"]
    assert job["model"] == {"name": "classic", "version": 1}
    epochs = metrics["epochs"]
    assert len(epochs) == 10 and epochs[-1]["accuracy"] > epochs[0]["accuracy"]
    rows = prediction["predictions"]
    assert len(rows) == 2 and all(len(row) == 10 and abs(sum(row) - 1) < 1e-4 for row in rows)


def test_the_readme_cli_quickstart_uploads_trains_watches_and_predicts(server: Server, tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    script = readme_block("cli-quickstart").replace(
        ".venv/bin/trainyard", str(Path(sys.executable).with_name("trainyard"))
    )
    script = script.replace(".venv/bin/python", sys.executable)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINYARD_")} | {"TRAINYARD_URL": server.url}
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    # -e: any command that exits non-zero (a watched job that failed exits 1) fails the script.
    assert result.returncode == 0, output
    # Not a terminal: the watch prints one line per epoch (on stderr), then the outcome.
    assert re.findall(r"^epoch (\d+)/10 ", result.stderr, re.M) == [str(n) for n in range(1, 11)], output
    assert re.search(r"^job \w+ succeeded: model classic version \d+$", result.stdout, re.M), output
    prediction = json.loads(result.stdout[result.stdout.rindex('{"predictions"') :])
    rows = prediction["predictions"]
    assert len(rows) == 2 and all(len(row) == 10 and abs(sum(row) - 1) < 1e-4 for row in rows)
