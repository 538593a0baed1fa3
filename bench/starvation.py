"""Can one client starve the others? /healthz and predict latency with and without a client that
sends the worst requests of issue 13 in a loop, and the API's memory growth per worst request.

In one run on this machine:
  * registers a small MLP and starts `trainyard serve` (no worker, access log off,
    MAX_UPLOAD_BYTES 4 MB; every other limit at its default);
  * for `--duration` seconds, one client alternates GET /healthz and a one-row predict: the
    baseline p50/p99;
  * the same again while a second client sends the worst requests (tests/attacks.py) back to
    back: p50/p99 under attack, and what the attacks were answered;
  * each worst request once more, alone, with the server's peak RSS reset before it
    (/proc/PID/clear_refs): how much resident memory one request made the API take;
and appends the figures, with date, machine and versions, to bench/RESULTS.md.

    .venv/bin/python bench/starvation.py [--duration 20] [--no-write]
"""

import argparse
import collections
import os
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import machine  # bench/machine.py (scripts run from bench/, so it is importable)
import numpy as np
from processes import free_port, wait_for_quiet  # bench/processes.py

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"
sys.path.insert(0, str(ROOT))

from app.config import Settings  # noqa: E402
from app.db.migrate import upgrade_to_head  # noqa: E402
from tests.attacks import Attack, attacks  # noqa: E402
from tests.factories import register_version, seed_mlp  # noqa: E402
from tests.services import TrainyardProcess  # noqa: E402

UPLOAD_LIMIT = 4_000_000
RSS_BOUND_MB = 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per phase")
    parser.add_argument("--no-write", action="store_true", help="print, do not append to bench/RESULTS.md")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        home = Path(directory) / "home"
        settings = Settings(home=home, embedded_worker=False, access_log=False, max_upload_bytes=UPLOAD_LIMIT)
        upgrade_to_head(settings)
        register_version(settings, "tiny", seed_mlp(features=4, classes=3, hidden=8))
        port = free_port()
        server = TrainyardProcess(["serve", "--port", str(port)], settings, Path(directory) / "serve.log")
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for_server(url, server)
            wait_for_quiet(server.process.pid)  # the pool processes have started (they import Keras)
            input_name = httpx.get(f"{url}/v2/models/tiny", timeout=60).json()["inputs"][0]["name"]
            worst = attacks("tiny", input_name, UPLOAD_LIMIT, settings.max_predict_bytes)
            idle = measure(url, args.duration, attack=None)
            attacked = measure(url, args.duration, attack=worst)
            growth = rss_growth(url, server.process.pid, worst)
        finally:
            server.stop()
    report = render(args.duration, idle, attacked, growth)
    print(report)
    if not args.no_write:
        with RESULTS.open("a") as out:
            out.write("\n" + report)


class Phase:
    """Latencies seen by the measuring client, and what the attacking client was answered."""

    def __init__(self) -> None:
        self.healthz: list[float] = []
        self.predict: list[float] = []
        self.answers: collections.Counter[tuple[str, int]] = collections.Counter()

    def figures(self, values: list[float]) -> str:
        p50, p99 = np.percentile(values, [50, 99]) * 1000
        return f"{len(values)} | {p50:.1f} | {p99:.1f} | {max(values) * 1000:.1f}"


def measure(url: str, duration: float, attack: list[Attack] | None) -> Phase:
    phase = Phase()
    stop = threading.Event()

    def attacker() -> None:
        assert attack is not None
        with httpx.Client(base_url=url, timeout=300) as client:
            while not stop.is_set():
                for spec in attack:
                    phase.answers[(spec.name, client.request(**spec.request()).status_code)] += 1
                    if stop.is_set():
                        break

    thread = threading.Thread(target=attacker) if attack else None
    if thread is not None:
        thread.start()
        time.sleep(1)  # the attack is under way before the first measurement
    deadline = time.monotonic() + duration
    with httpx.Client(base_url=url, timeout=300) as client:
        while time.monotonic() < deadline:
            phase.healthz.append(client.get("/healthz").elapsed.total_seconds())
            response = client.post("/v1/models/tiny:predict", json={"instances": [[0.5, 0.5, 0.5, 0.5]]})
            response.raise_for_status()
            phase.predict.append(response.elapsed.total_seconds())
    stop.set()
    if thread is not None:
        thread.join()
    return phase


def rss_growth(url: str, pid: int, worst: list[Attack]) -> list[tuple[str, int, float]]:
    """Each attack alone: (name, status, MB of resident memory above the level before it)."""
    rows = []
    with httpx.Client(base_url=url, timeout=300) as client:
        for spec in worst:
            kwargs = spec.request()
            client.get("/healthz")
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # the peak RSS restarts from now
            before = status_kb(pid, "VmRSS")
            status = client.request(**kwargs).status_code
            time.sleep(0.5)  # work on the pool may outlive the answer (a 503 past its budget)
            rows.append((spec.name, status, (status_kb(pid, "VmHWM") - before) / 1024))
    return rows


def status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def render(duration: float, idle: Phase, attacked: Phase, growth: list[tuple[str, int, float]]) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## starvation — {now}",
        "",
        f"Machine: {machine.describe('fastapi', 'uvicorn', 'numpy', 'pyarrow', 'httpx')}; "
        f"load average {os.getloadavg()[0]:.1f} at the end.",
        f"`trainyard serve` (no worker, access log off, MAX_UPLOAD_BYTES {UPLOAD_LIMIT}, other limits at their "
        f"defaults), a 4 → 8 → 3 MLP served by ONNX Runtime. One client alternates GET /healthz and a one-row "
        f"predict for {duration:g} s, alone and then while a second client sends the worst requests of "
        "tests/attacks.py back to back.",
        "",
        "| phase | request | count | p50 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|",
        f"| no attack | /healthz | {idle.figures(idle.healthz)} |",
        f"| no attack | predict | {idle.figures(idle.predict)} |",
        f"| under attack | /healthz | {attacked.figures(attacked.healthz)} |",
        f"| under attack | predict | {attacked.figures(attacked.predict)} |",
        "",
        "What the attacking client was answered, and the API's resident memory growth for each worst "
        f"request sent alone (peak RSS after it minus RSS before it; bound {RSS_BOUND_MB} MB):",
        "",
        "| worst request | answers under attack | alone: status | RSS growth MB |",
        "|---|---|---|---|",
    ]
    for name, status, mb in growth:
        answers = ", ".join(f"{code} x{n}" for (attack, code), n in sorted(attacked.answers.items()) if attack == name)
        flag = "" if mb < RSS_BOUND_MB else " **over**"
        lines.append(f"| {name} | {answers} | {status} | {mb:.1f}{flag} |")
    return "\n".join(lines) + "\n"


def wait_for_server(url: str, server: TrainyardProcess) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise SystemExit(f"serve exited:\n{server.log()[-3000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("serve did not answer /healthz within 120 s")


if __name__ == "__main__":
    main()
