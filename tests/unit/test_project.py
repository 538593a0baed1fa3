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


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_time_imports(path: Path) -> set[str]:
    """What importing `path` imports at once: its statements outside functions and outside
    `if TYPE_CHECKING:` (relative imports resolved), with `from m import x` as `m` and `m.x`."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue  # runs when called, not when imported
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
                continue
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                module = ".".join([*base, *([node.module] if node.module else [])])
                found.add(module)
                found.update(f"{module}.{alias.name}" for alias in node.names)
            for field in ("body", "orelse", "finalbody"):  # class, with, try, if, for blocks
                visit(getattr(node, field, []))
            for handler in getattr(node, "handlers", []):
                visit(handler.body)

    visit(ast.parse(path.read_text()).body)
    return found


def keras_import_chains(without: tuple[str, str] | None = None) -> dict[str, list[str]]:
    """Each project module whose import loads Keras or TensorFlow → one chain of imports that
    gets there (`app.api.jobs → app.jobs.service → … → keras`); `without`: an import
    (importer, imported) left out of the graph."""
    paths = {module_name(p): p for package in ("app", "workers") for p in (ROOT / package).rglob("*.py")}
    graph = {name: import_time_imports(path) for name, path in paths.items()}
    if without is not None:
        importer, imported = without
        graph[importer] = {name for name in graph[importer] if not name.startswith(imported)}
    chains: dict[str, list[str]] = {}
    for start in graph:
        parents: dict[str, str | None] = {start: None}
        frontier = [start]
        while frontier:
            current = frontier.pop(0)
            if current.split(".")[0] in ("keras", "tensorflow"):
                chain = [current]
                while (parent := parents[chain[-1]]) is not None:
                    chain.append(parent)
                chains[start] = chain[::-1]
                break
            parts = current.split(".")
            # Importing a.b.c runs a/__init__ and a/b/__init__ first.
            nexts = [".".join(parts[:i]) for i in range(1, len(parts))] + sorted(graph.get(current, ()))
            for following in nexts:
                if following not in parents and (
                    following in graph or following.split(".")[0] in ("keras", "tensorflow")
                ):
                    parents[following] = current
                    frontier.append(following)
    return chains


def outside_ml_and_serving(module: str) -> bool:
    return not module.startswith(("app.ml", "app.serving"))


def test_no_module_outside_ml_and_serving_loads_keras_through_what_it_imports() -> None:
    """DESIGN.md: only app/ml and app/serving import Keras, directly or through other modules
    (the API and the worker's parent process must not pay for, or fork with, TensorFlow)."""
    chains = keras_import_chains()
    assert {"app.ml.builder", "app.ml.training"} <= set(chains)  # the search finds real chains
    assert {m: " → ".join(c) for m, c in chains.items() if outside_ml_and_serving(m)} == {}


def test_the_job_door_does_not_load_keras_at_import() -> None:
    # The spec checks run in pool processes (app.ml.door); the API process never imports Keras.
    chains = keras_import_chains()
    assert " → ".join(chains.get("app.jobs.service", [])) == ""


def test_the_full_app_loads_no_keras_or_tensorflow() -> None:
    # The API process answers every route without Keras: start time and memory (issue 10 item 8).
    code = (
        "import sys, tempfile, pathlib; from app.config import Settings; from app.main import create_app; "
        "create_app(Settings(home=pathlib.Path(tempfile.mkdtemp()))); "
        "print(sorted({'keras', 'tensorflow'} & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_a_serving_only_app_loads_no_keras_or_tensorflow() -> None:
    # app/main.py and the README promise it: versions exported to ONNX need neither.
    code = (
        "import sys, tempfile, pathlib; from app.config import Settings; from app.main import create_serving_app; "
        "create_serving_app(Settings(home=pathlib.Path(tempfile.mkdtemp()))); "
        "print(sorted({'keras', 'tensorflow'} & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


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


def test_compose_gives_workers_longer_than_the_hand_back_grace_to_stop() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    grace = Settings().shutdown_grace_s
    for name in ("worker", "worker-gpu"):
        period = compose["services"][name]["stop_grace_period"]
        assert period.endswith("s") and float(period[:-1]) > grace, name


def test_the_broker_visibility_timeout_outlasts_the_longest_job_everywhere_celery_reads_it() -> None:
    from app.queue import celery_config

    settings = Settings(broker_url="redis://127.0.0.1:6379/0", max_job_runtime_s=10 * 24 * 3600)
    config = celery_config(settings)
    for key in ("broker_transport_options", "result_backend_transport_options"):
        assert config[key]["visibility_timeout"] > settings.max_job_runtime_s + settings.shutdown_grace_s


def test_the_docker_files_run_with_auth_on() -> None:
    assert "TRAINYARD_AUTH=on" in (ROOT / "Dockerfile").read_text()
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name in ("api", "worker"):
        assert compose["services"][name]["environment"]["TRAINYARD_AUTH"] == "on", name
