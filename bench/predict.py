"""How fast does trainyard serve predictions, against an empty endpoint, a naive FastAPI +
`model.predict` server and MLflow's `mlflow models serve`, all on the same model?

In one run on this machine:
  * trains the seed MLP (100 → 64 relu → 64 relu → 10 softmax) through `trainyard serve`
    (embedded mode), so the model is registered, exported to ONNX and checked by the worker;
  * starts `trainyard serve --serving-only` (one process, access log off) and records its start
    time (to ready, and to the first prediction) and RSS, against the full app's;
  * drives it with `wrk` (a separate process, one thread) at 1, 16 and 64 connections for
    `--duration` seconds each: TF Serving predict and V2 infer (one row), and, as ceilings, the
    V2 liveness probe (answered ahead of FastAPI, like predict) and an empty FastAPI route;
  * the same for the baselines: a naive FastAPI app calling `model.predict` (bench/naive_server.py)
    and, with `--mlflow-venv`, MLflow serving the same Keras model, default and with
    `save_exported_model=True` (bench/mlflow_model.py; MLflow lives only in that throwaway venv);
  * measures the in-process floor: ONNX Runtime alone on one row, against trainyard's predict
    path (arrays in, arrays out, and the TF Serving body in, body out);
and appends the figures, with date, machine and versions, to bench/RESULTS.md.

    apt-get install -y wrk
    python3 -m venv /tmp/mlflow-venv
    /tmp/mlflow-venv/bin/pip install mlflow==3.17.2 tensorflow-cpu
    .venv/bin/python bench/predict.py [--duration 20] [--mlflow-venv /tmp/mlflow-venv] [--no-write]
"""

import argparse
import asyncio
import csv
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"
LAYERS = [
    {"type": "Dense", "units": 64, "activation": "relu"},
    {"type": "Dense", "units": 64, "activation": "relu"},
    {"type": "Dense", "units": 10, "activation": "softmax"},
]
ROW = np.random.default_rng(7).random(100, dtype=np.float32).round(4).tolist()


@dataclass
class Run:
    target: str
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float, method: str = "GET", body: Any = None) -> float:
    """Poll until `url` answers 200; returns when it did (time.monotonic)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.request(method, url, json=body, timeout=5).status_code == 200:
                return time.monotonic()
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer 200 within {timeout}s")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextmanager
def process(cmd: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def trainyard_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINYARD_")}
    env |= {"TRAINYARD_HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "2", **extra}
    return env


def train_seed_model(home: Path, workdir: Path) -> dict[str, Any]:
    """The seed MLP, trained and registered as `seed` by a real embedded service."""
    rng = np.random.default_rng(0)
    x = rng.random((2000, 100), dtype=np.float32)
    y = np.argmax((x - 0.5) @ np.random.default_rng(1).normal(size=(100, 10)), axis=1)
    data = workdir / "seed.csv"
    with data.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([f"f{i}" for i in range(100)] + ["label"])
        writer.writerows([*row, int(label)] for row, label in zip(x.tolist(), y, strict=True))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "app.cli", "serve", "--port", str(port)]
    with process(cmd, trainyard_env(home), workdir / "train.log"):
        wait_http(f"{url}/readyz", 120)
        with data.open("rb") as handle:
            dataset = httpx.post(f"{url}/v1/datasets", files={"file": ("seed.csv", handle)}).json()
        job = {
            "name": "seed",
            "dataset_id": dataset["id"],
            "model": {"layers": LAYERS},
            "compile": {"optimizer": "adam", "loss": "sparse_categorical_crossentropy"},
            "fit": {"epochs": 2, "batch_size": 32},
            "register_as": "seed",
        }
        job_id = httpx.post(f"{url}/v1/jobs", json=job).json()["id"]
        deadline = time.monotonic() + 300
        while (state := httpx.get(f"{url}/v1/jobs/{job_id}").json())["status"] not in (
            "succeeded",
            "failed",
            "cancelled",
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("training the seed model took over 300 s")
            time.sleep(0.5)
        if state["status"] != "succeeded":
            raise RuntimeError(f"training the seed model failed: {state['error']}")
        artifact = httpx.get(f"{url}/v1/models/seed/versions/1/artifact")
        (workdir / "seed.keras").write_bytes(artifact.content)
        metadata: dict[str, Any] = httpx.get(f"{url}/v1/models/seed/metadata").json()
    return metadata


def wrk(url: str, connections: int, seconds: int, body: bytes | None, workdir: Path) -> Run:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "30s"]
    if body is not None:
        script = workdir / f"post-{abs(hash(body))}.lua"
        script.write_text(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = {json.dumps(body.decode())}\n"
        )
        cmd += ["-s", str(script)]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(int(n) for n in sockets.groups()) if sockets else 0)
    return Run(url, connections, rps, _latency(out, "50%"), _latency(out, "99%"), errors)


def _latency(out: str, pct: str) -> float:
    match = re.search(rf"{pct}\s+([\d.]+)(us|ms|s)\b", out)
    if match is None:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def in_process_floor(home: Path) -> dict[str, float]:
    """µs per one-row call: ONNX Runtime alone, and trainyard's predict path around it."""
    import orjson
    import uvloop

    from app.config import Settings
    from app.serving.lookup import registry_lookup
    from app.serving.service import ServingService

    settings = Settings(home=home)
    serving = ServingService(settings, registry_lookup(settings))
    x = np.asarray([ROW], dtype=np.float32)
    raw = orjson.dumps({"instances": x.tolist()})
    n = 5000

    async def measure() -> dict[str, float]:
        model = await serving.model("seed")

        def best(fn: Any) -> float:
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                for _ in range(n):
                    fn()
                times.append((time.perf_counter() - t0) / n)
            return min(times) * 1e6

        async def best_async(fn: Any) -> float:
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                for _ in range(n):
                    await fn()
                    await asyncio.sleep(0)  # a request per loop turn, as under a server
                times.append((time.perf_counter() - t0) / n)
            return min(times) * 1e6

        async def noop() -> None:
            return None

        loop_turn = await best_async(noop)
        return {
            "onnxruntime": best(lambda: model.runtime.run([x])),
            "loop turn (subtracted)": loop_turn,
            "predict (arrays)": await best_async(lambda: serving.predict(model, [x])) - loop_turn,
            "predict (TF Serving body)": await best_async(lambda: serving.predict_tfserving(model, raw)) - loop_turn,
        }

    return uvloop.run(measure())


def versions() -> str:
    import fastapi
    import onnxruntime
    import uvicorn

    names = [
        f"Python {platform.python_version()}",
        f"FastAPI {fastapi.__version__}",
        f"uvicorn {uvicorn.__version__}",
        f"ONNX Runtime {onnxruntime.__version__}",
        f"numpy {np.__version__}",
    ]
    try:
        import keras

        names.append(f"Keras {keras.__version__}")
    except ImportError:
        pass
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0]
    return ", ".join(names) + f", {wrk_version.split(' Copyright')[0].strip()}"


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    load = os.getloadavg()[0]
    return f"{os.cpu_count()} cores ({cpu}), load average {load:.1f} at the start"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=20, help="seconds per wrk run")
    parser.add_argument("--connections", default="1,16,64")
    parser.add_argument("--mlflow-venv", type=Path, help="a venv with mlflow and tensorflow")
    parser.add_argument("--no-write", action="store_true", help="print, don't append RESULTS.md")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    connections = [int(c) for c in args.connections.split(",")]
    started = datetime.now(UTC)
    header = machine()
    workdir = Path(tempfile.mkdtemp(prefix="bench-predict-"))
    home = workdir / "home"
    print(f"training the seed model in {home} …", flush=True)
    metadata = train_seed_model(home, workdir)
    runtime = metadata["metadata"]["serving"]
    print(f"registered: runtime {runtime['runtime']}, check {runtime['check']}", flush=True)
    predict_body = json.dumps({"instances": [ROW]}).encode()
    infer_body = json.dumps(
        {"inputs": [{"name": "features", "shape": [1, 100], "datatype": "FP32", "data": ROW}]}
    ).encode()
    runs: list[Run] = []
    rss: dict[str, float] = {}
    starts: dict[str, str] = {}

    def drive(label: str, url: str, body: bytes | None) -> None:
        wrk(url, 4, 2, body, workdir)  # warm connections and caches
        for c in connections:
            run = wrk(url, c, args.duration, body, workdir)
            run.target = label
            runs.append(run)
            print(
                f"  {label:<44} c={c:<3} {run.rps:>9.0f} req/s  p50 {run.p50_ms:.2f} ms"
                f"  p99 {run.p99_ms:.2f} ms  errors {run.errors}",
                flush=True,
            )

    # trainyard, serving only
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = trainyard_env(home, TRAINYARD_ACCESS_LOG="false", TRAINYARD_LOG_LEVEL="WARNING")
    cmd = [sys.executable, "-m", "app.cli", "serve", "--serving-only", "--port", str(port)]
    t0 = time.monotonic()
    with process(cmd, env, workdir / "serving.log") as proc:
        ready = wait_http(f"{url}/v2/health/ready", 120) - t0
        first = wait_http(f"{url}/v1/models/seed:predict", 120, "POST", {"instances": [ROW]}) - t0
        starts["trainyard --serving-only"] = f"ready {ready:.2f} s, first prediction {first:.2f} s"
        drive("trainyard: empty (V2 live, before FastAPI)", f"{url}/v2/health/live", None)
        drive("trainyard: empty FastAPI route (GET /v2)", f"{url}/v2", None)
        drive("trainyard: TF Serving predict, 1 row", f"{url}/v1/models/seed:predict", predict_body)
        drive("trainyard: V2 infer, 1 row", f"{url}/v2/models/seed/infer", infer_body)
        rss["trainyard --serving-only"] = rss_mb(proc.pid)
    # the full app, for its start time and memory (it imports TensorFlow to validate specs)
    port = free_port()
    env_full = trainyard_env(home, TRAINYARD_EMBEDDED_WORKER="false", TRAINYARD_ACCESS_LOG="false")
    cmd = [sys.executable, "-m", "app.cli", "serve", "--port", str(port)]
    t0 = time.monotonic()
    with process(cmd, env_full, workdir / "full.log") as proc:
        full_url = f"http://127.0.0.1:{port}"
        ready = wait_http(f"{full_url}/v2/health/ready", 120) - t0
        first = wait_http(f"{full_url}/v1/models/seed:predict", 120, "POST", {"instances": [ROW]}) - t0
        starts["trainyard (full app, no worker)"] = f"ready {ready:.2f} s, first prediction {first:.2f} s"
        rss["trainyard (full app, no worker)"] = rss_mb(proc.pid)
    # naive FastAPI + model.predict
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "--app-dir",
        "bench",
        "naive_server:app",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    naive_env = trainyard_env(home, MODEL_PATH=str(workdir / "seed.keras"))
    with process(cmd, naive_env, workdir / "naive.log") as proc:
        naive = f"http://127.0.0.1:{port}/predict"
        wait_http(naive, 120, "POST", {"instances": [ROW]})
        drive("naive FastAPI + model.predict", naive, predict_body)
        rss["naive FastAPI + model.predict"] = rss_mb(proc.pid)
    # MLflow, default and with save_exported_model=True
    if args.mlflow_venv is not None:
        python = args.mlflow_venv / "bin" / "python"
        mlflow_version = subprocess.run(
            [str(python), "-c", "import mlflow; print(mlflow.__version__)"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        header += f"; MLflow {mlflow_version} (its own venv)"
        for exported in (False, True):
            label = "MLflow serve" + (" (save_exported_model)" if exported else "")
            model_dir = workdir / ("mlflow-exported" if exported else "mlflow-default")
            subprocess.run(
                [
                    str(python),
                    str(ROOT / "bench" / "mlflow_model.py"),
                    str(workdir / "seed.keras"),
                    str(model_dir),
                    *(["--exported"] if exported else []),
                ],
                check=True,
                env=trainyard_env(home),
            )
            port = free_port()
            cmd = [
                str(args.mlflow_venv / "bin" / "mlflow"),
                "models",
                "serve",
                "-m",
                str(model_dir),
                "-p",
                str(port),
                "--env-manager",
                "local",
            ]
            mlflow_env = trainyard_env(home)
            mlflow_env["PATH"] = f"{args.mlflow_venv / 'bin'}:{mlflow_env['PATH']}"  # its uvicorn
            with process(cmd, mlflow_env, workdir / f"{model_dir.name}.log") as proc:
                mlflow_url = f"http://127.0.0.1:{port}/invocations"
                wait_http(mlflow_url, 180, "POST", {"inputs": [ROW]})
                drive(label, mlflow_url, json.dumps({"inputs": [ROW]}).encode())
                rss[label] = _tree_rss(proc.pid)
    floor = in_process_floor(home)
    report = render(started, header, metadata, runs, rss, starts, floor, args.duration)
    print(report)
    if not args.no_write:
        with RESULTS.open("a") as handle:
            handle.write("\n" + report)
        print(f"appended to {RESULTS.relative_to(ROOT)}")


def _tree_rss(pid: int) -> float:
    """RSS of a process and its children (MLflow serves from a uvicorn child)."""
    total = rss_mb(pid)
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        for child in children.read_text().split():
            total += _tree_rss(int(child))
    return total


def render(
    started: datetime,
    header: str,
    metadata: dict[str, Any],
    runs: list[Run],
    rss: dict[str, float],
    starts: dict[str, str],
    floor: dict[str, float],
    duration: int,
) -> str:
    lines = [
        f"## predict — {started:%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {header}; {versions()}.",
        f"Seed MLP (100 → 64 → 64 → 10) trained and registered by the worker: serving runtime "
        f"`{metadata['metadata']['serving']['runtime']}`, export check "
        f"`{json.dumps(metadata['metadata']['serving']['check'])}`. "
        f"Load: wrk, 1 thread, {duration} s per row, one row per request; the server is one "
        "process (`trainyard serve --serving-only`, access log off).",
        "",
        "| target | connections | req/s | p50 ms | p99 ms | errors |",
        "|---|---|---|---|---|---|",
    ]
    for run in runs:
        lines.append(
            f"| {run.target} | {run.connections} | {run.rps:,.0f} | {run.p50_ms:.2f} | "
            f"{run.p99_ms:.2f} | {run.errors} |"
        )
    by = {(r.target, r.connections): r for r in runs}
    top = max(r.connections for r in runs)
    predict = by.get(("trainyard: TF Serving predict, 1 row", top))
    lines += ["", "Ratios at the highest connection count:"]
    for ceiling in (
        "trainyard: empty (V2 live, before FastAPI)",
        "trainyard: empty FastAPI route (GET /v2)",
    ):
        if predict and (ref := by.get((ceiling, top))):
            lines.append(f"- predict / {ceiling}: **{predict.rps / ref.rps:.2f}**")
    for baseline in (
        "naive FastAPI + model.predict",
        "MLflow serve",
        "MLflow serve (save_exported_model)",
    ):
        if predict and (ref := by.get((baseline, top))):
            lines.append(f"- predict / {baseline}: **{predict.rps / ref.rps:,.0f}x**")
    lines += ["", "| process | RSS MB after the runs | start |", "|---|---|---|"]
    for name, mb in rss.items():
        lines.append(f"| {name} | {mb:.0f} | {starts.get(name, '')} |")
    lines += ["", "In-process, one row, µs per call (best of 5 x 5000):", ""]
    lines += [f"- {name}: {value:.1f}" for name, value in floor.items()]
    onnx = floor["onnxruntime"]
    lines.append(
        f"- predict (arrays) / onnxruntime: **{floor['predict (arrays)'] / onnx:.2f}x**; "
        f"with the TF Serving body parsed and written: "
        f"**{floor['predict (TF Serving body)'] / onnx:.2f}x**"
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
