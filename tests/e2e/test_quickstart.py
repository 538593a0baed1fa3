"""The README's quick start, pasted into bash, against a real embedded `trainyard serve`."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def quickstart_script() -> str:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- quickstart:begin -->\n```bash\n(.*?)```\n<!-- quickstart:end -->", readme, re.S)
    assert block, "README.md lost its quickstart block"
    return block.group(1)


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
