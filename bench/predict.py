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
  * measures what API keys cost predict: two serving processes on the same model, one with
    TRAINYARD_AUTH=off and one with TRAINYARD_AUTH=on and a `predict` key, driven in turns
    (off, on, off, on, …) so both see the same machine load (`--auth-only` runs just this);
and appends the figures, with date, machine and versions, to bench/RESULTS.md.

    apt-get install -y wrk
    python3 -m venv /tmp/mlflow-venv
    /tmp/mlflow-venv/bin/pip install mlflow==3.17.2 tensorflow-cpu
    .venv/bin/python bench/predict.py [--duration 20] [--mlflow-venv /tmp/mlflow-venv] [--no-write]
    .venv/bin/python bench/predict.py --auth-only [--rounds 3] [--connections 64]
"""

import argparse
import asyncio
import contextlib
import csv
import json
import os
import platform
import re
import shutil
import socket
import statistics
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
    requests: int = 0
    server_cpu_us: float = float("nan")  # the server process's CPU time per request served


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
            # Generous: right after start the spec-check process may still be loading Keras.
            dataset = httpx.post(f"{url}/v1/datasets", files={"file": ("seed.csv", handle)}, timeout=120).json()
        job = {
            "name": "seed",
            "dataset_id": dataset["id"],
            "model": {"layers": LAYERS},
            "compile": {"optimizer": "adam", "loss": "sparse_categorical_crossentropy"},
            "fit": {"epochs": 2, "batch_size": 32},
            "register_as": "seed",
        }
        job_id = httpx.post(f"{url}/v1/jobs", json=job, timeout=120).json()["id"]
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


def wrk(url: str, connections: int, seconds: int, body: bytes | None, workdir: Path, key: str | None = None) -> Run:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "30s"]
    if body is not None:
        script = workdir / f"post-{abs(hash((body, key)))}.lua"
        auth = f'wrk.headers["Authorization"] = "Bearer {key}"\n' if key else ""
        script.write_text(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f"{auth}wrk.body = {json.dumps(body.decode())}\n"
        )
        cmd += ["-s", str(script)]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = re.search(r"(\d+) requests in", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(int(n) for n in sockets.groups()) if sockets else 0)
    run = Run(url, connections, rps, _latency(out, "50%"), _latency(out, "99%"), errors)
    run.requests = int(total.group(1)) if total else 0
    return run


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


def auth_overhead(home: Path, workdir: Path, duration: int, connections: list[int], rounds: int) -> list[Run]:
    """TF Serving predict (one row) with no auth and with a `predict` key, in alternating turns."""
    from app.auth import service
    from app.auth.principal import Scope
    from app.config import Settings
    from app.db.session import session_scope

    with session_scope(Settings(home=home).sqlalchemy_url) as session:
        key = service.create_key(session, "default", [Scope.PREDICT], name="bench")[1]
    body = json.dumps({"instances": [ROW]}).encode()
    modes = {"no auth (TRAINYARD_AUTH=off)": "off", "predict key (TRAINYARD_AUTH=on)": "on"}
    runs: list[Run] = []
    with contextlib.ExitStack() as stack:
        urls: dict[str, str] = {}
        pids: dict[str, int] = {}
        for label, mode in modes.items():
            port = free_port()
            env = trainyard_env(home, TRAINYARD_ACCESS_LOG="false", TRAINYARD_LOG_LEVEL="WARNING", TRAINYARD_AUTH=mode)
            cmd = [sys.executable, "-m", "app.cli", "serve", "--serving-only", "--port", str(port)]
            pids[label] = stack.enter_context(process(cmd, env, workdir / f"auth-{mode}.log")).pid
            urls[label] = f"http://127.0.0.1:{port}/v1/models/seed:predict"
            headers = {"Authorization": f"Bearer {key}"}
            wait_http(urls[label].replace("/v1/models/seed:predict", "/v2/health/ready"), 120)
            if httpx.post(urls[label], json={"instances": [ROW]}, headers=headers, timeout=60).status_code != 200:
                raise RuntimeError(f"predict with a key failed on the {mode} server")
        for label in modes:
            wrk(urls[label], 4, 2, body, workdir, key if modes[label] == "on" else None)  # warm up
        for round_ in range(rounds):
            for c in connections:
                for label, mode in modes.items():
                    cpu_before = cpu_seconds(pids[label])
                    run = wrk(urls[label], c, duration, body, workdir, key if mode == "on" else None)
                    run.server_cpu_us = (cpu_seconds(pids[label]) - cpu_before) / max(run.requests, 1) * 1e6
                    run.target = label
                    runs.append(run)
                    print(
                        f"  round {round_ + 1} {label:<34} c={c:<3} {run.rps:>8.0f} req/s"
                        f"  p50 {run.p50_ms:.2f} ms  p99 {run.p99_ms:.2f} ms  errors {run.errors}"
                        f"  server CPU {run.server_cpu_us:.0f} us/request",
                        flush=True,
                    )
    return runs


def auth_floor() -> dict[str, float]:
    """µs per resolution of a cached key (what auth adds to each request in-process)."""
    import tempfile as tmp

    import uvloop

    from app.auth import service
    from app.auth.authenticator import Authenticator
    from app.auth.principal import Scope
    from app.config import Settings
    from app.db.migrate import upgrade_to_head
    from app.db.session import session_scope

    settings = Settings(home=Path(tmp.mkdtemp(prefix="bench-auth-")), key_cache_s=3600)
    upgrade_to_head(settings)
    with session_scope(settings.sqlalchemy_url) as session:
        key = service.create_key(session, "default", [Scope.PREDICT])[1]
    header = f"Bearer {key}"
    on, off = Authenticator(settings, required=True), Authenticator(settings, required=False)
    n = 20000

    async def measure(authenticator: Authenticator) -> float:
        await authenticator.principal(header)  # the one database read; the rest hit the cache
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(n):
                await authenticator.principal(header)
            best = min(best, (time.perf_counter() - t0) / n)
        return best * 1e6

    return {"key resolved from the cache": uvloop.run(measure(on)), "auth off": uvloop.run(measure(off))}


def auth_app_cpu(home: Path, rounds: int) -> dict[str, float]:
    """CPU µs per TF Serving predict through the whole ASGI app (fast path: guard or key, parse,
    batch, ONNX Runtime, encode), auth off against a predict key, in one process.

    CPU time (`time.process_time`) of this one process, not wall time: on a shared machine a
    wall-clock A/B swings 2-3x with the neighbours' load; CPU time per request does not.
    uvicorn's HTTP parsing, the same in both, is left out, so the ratio is a pessimistic one.
    """
    import uvloop

    from app.auth import service
    from app.auth.principal import Scope
    from app.config import Settings
    from app.db.session import session_scope
    from app.main import create_serving_app

    settings = Settings(home=home, access_log=False)
    with session_scope(settings.sqlalchemy_url) as session:
        key = service.create_key(session, "default", [Scope.PREDICT], name="bench-asgi")[1]
    body = json.dumps({"instances": [ROW]}).encode()
    base = [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json")]
    apps = {
        "auth off": (create_serving_app(settings.model_copy(update={"auth": "off"})), base),
        "predict key": (
            create_serving_app(settings.model_copy(update={"auth": "on"})),
            [*base, (b"authorization", f"Bearer {key}".encode())],
        ),
    }
    n = 2000

    async def call(app: Any, headers: list[tuple[bytes, bytes]]) -> int:
        scope = {"type": "http", "method": "POST", "path": "/v1/models/seed:predict", "headers": headers}
        status = 0

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(scope, receive, send)
        return status

    async def measure() -> dict[str, float]:
        best = {name: float("inf") for name in apps}
        for name, (app, headers) in apps.items():
            if await call(app, headers) != 200:
                raise RuntimeError(f"predict through the app failed ({name})")
        for _ in range(rounds):
            for name, (app, headers) in apps.items():
                t0 = time.process_time()
                for _ in range(n):
                    await call(app, headers)
                best[name] = min(best[name], (time.process_time() - t0) / n * 1e6)
        return best

    return uvloop.run(measure())


def render_auth(
    started: datetime, header: str, runs: list[Run], floor: dict[str, float], app_cpu: dict[str, float], duration: int
) -> str:
    lines = [
        f"## predict with API keys — {started:%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {header}; {versions()}.",
        "Seed MLP, TF Serving predict, one row per request; two `trainyard serve --serving-only` "
        "processes on the same model, one with `TRAINYARD_AUTH=off`, one with `TRAINYARD_AUTH=on` "
        f"and a `predict` key in every request; wrk, 1 thread, {duration} s per run, the two driven "
        "in turns so both see the same load.",
        "",
        "| target | connections | req/s | p50 ms | p99 ms | errors | server CPU µs/request |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        lines.append(
            f"| {run.target} | {run.connections} | {run.rps:,.0f} | {run.p50_ms:.2f} | "
            f"{run.p99_ms:.2f} | {run.errors} | {run.server_cpu_us:.0f} |"
        )
    labels = list(dict.fromkeys(r.target for r in runs))
    lines += [""]
    for c in sorted({r.connections for r in runs}):
        cpu = [
            statistics.median(r.server_cpu_us for r in runs if r.target == label and r.connections == c)
            for label in labels
        ]
        lines.append(
            f"- c={c}: the server's CPU per request (uvicorn included; what bounds throughput on a "
            f"busy core), median: {cpu[0]:.0f} µs without auth, {cpu[1]:.0f} µs with a key: "
            f"throughput with a key / without = **{cpu[0] / cpu[1]:.3f}** ({(cpu[1] / cpu[0] - 1) * 100:+.1f}% CPU)"
        )
    lines += [""]
    for c in sorted({r.connections for r in runs}):
        medians = [
            statistics.median(r.rps for r in runs if r.target == label and r.connections == c) for label in labels
        ]
        off, on = medians
        lines.append(
            f"- c={c}: median {off:,.0f} req/s without auth, {on:,.0f} with a key: "
            f"with a key / without = **{on / off:.3f}** ({(1 - on / off) * 100:+.1f}% cost)"
        )
    for c in sorted({r.connections for r in runs}):
        pairs = [r for r in runs if r.connections == c]
        ratios = [on.rps / off.rps for off, on in zip(pairs[::2], pairs[1::2], strict=True)]
        lines.append(
            f"- c={c}: median of the per-turn ratios (key / no auth, {len(ratios)} turns): "
            f"**{statistics.median(ratios):.3f}** (range {min(ratios):.2f}-{max(ratios):.2f})"
        )
    lines += ["", "In-process, µs per `Authenticator.principal` call (best of 5 x 20000):", ""]
    lines += [f"- {name}: {value:.2f}" for name, value in floor.items()]
    off, on = app_cpu["auth off"], app_cpu["predict key"]
    lines += [
        "",
        "In-process, CPU µs per TF Serving predict through the ASGI app (best of the turns x 2000):",
        "",
        *(f"- {name}: {value:.1f}" for name, value in app_cpu.items()),
        f"- throughput with a key / without (CPU-bound, uvicorn left out): **{off / on:.3f}** "
        f"({(on / off - 1) * 100:+.1f}% CPU per request)",
    ]
    return "\n".join(lines) + "\n"


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
    parser.add_argument("--auth-only", action="store_true", help="only the API-key cost on predict")
    parser.add_argument("--rounds", type=int, default=3, help="turns of the auth comparison")
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
    auth_runs = auth_overhead(home, workdir, args.duration, connections, args.rounds)
    app_cpu = auth_app_cpu(home, max(args.rounds, 3))
    auth_report = render_auth(started, header, auth_runs, auth_floor(), app_cpu, args.duration)
    print(auth_report)
    if args.auth_only:
        if not args.no_write:
            with RESULTS.open("a") as handle:
                handle.write("\n" + auth_report)
        return
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
    report = render(started, header, metadata, runs, rss, starts, floor, args.duration) + "\n" + auth_report
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
