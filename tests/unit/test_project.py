"""Project-level promises: docs match settings, the dependency rules hold, deploy files parse."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from app.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(package: Path) -> dict[Path, set[str]]:
    found: dict[Path, set[str]] = {}
    for path in package.rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
        found[path] = names
    return found


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [name for name in Settings.model_fields if f"`TRAINYARD_{name.upper()}`" not in readme]
    assert missing == []


def test_app_ml_imports_no_other_project_module() -> None:
    for path, names in imported_modules(ROOT / "app" / "ml").items():
        outside = {n for n in names if n.startswith(("app.", "workers")) and not n.startswith("app.ml")}
        assert outside == set(), path


def test_app_never_imports_workers() -> None:
    for path, names in imported_modules(ROOT / "app").items():
        assert not {n for n in names if n.split(".")[0] == "workers"}, path


def test_keras_is_imported_only_by_ml_and_serving() -> None:
    for path, names in imported_modules(ROOT / "app").items():
        if {"keras", "tensorflow"} & {n.split(".")[0] for n in names}:
            assert path.parent.name in ("ml", "serving"), path


def test_the_worker_parent_process_does_not_import_tensorflow() -> None:
    # TensorFlow imported before the prefork pool forks makes the child's TF calls hang.
    code = "import sys, workers.tasks; print(sorted({'keras', 'tensorflow'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert result.stdout.strip() == "[]"


def test_the_dockerfile_runs_trainyard_as_a_non_root_user() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile
    assert "\nUSER trainyard\n" in dockerfile
    assert 'ENTRYPOINT ["trainyard"]' in dockerfile


def test_compose_has_the_production_topology_and_a_gpu_worker() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "api", "worker", "worker-gpu"} <= set(services)
    gpu = services["worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["driver"] == "nvidia"
    assert "training.gpu" in gpu["command"]


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is not installed")
def test_docker_compose_accepts_the_file() -> None:
    for profile in ([], ["--profile", "gpu"]):
        result = subprocess.run(
            ["docker-compose", *profile, "config", "--quiet"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr


def test_settings_with_per_model_batching_can_key_a_cache() -> None:
    settings = Settings(model_batching={"classic": {"max_batch_size": 16}})

    assert hash(settings) == hash(Settings(model_batching={"classic": {"max_batch_size": 16}}))
    assert settings.batching_for("classic").max_batch_size == 16
    assert settings.batching_for("other").max_batch_size == settings.max_batch_size
