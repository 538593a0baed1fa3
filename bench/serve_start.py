"""How fast does `trainyard serve` answer, and how much memory does it hold? (issue 10 item 8)

In one run on this machine, in alternating turns, the same `python -m app.cli serve` (no
embedded worker, SQLite, a fresh home each time) from two trees:
  * baseline: a git revision (default 8d9a6cc, before the spec checks moved into pool
    processes: the API process imported Keras and TensorFlow to check specs);
  * this tree;
and for each: seconds from the process start to the first 200 from /healthz, the API process's
resident memory then, and once start-up is over (CPU quiet) the API process's RSS and the whole
process tree's (the pool processes included: they hold Keras now). Figures, with date, machine
and versions, are appended to bench/RESULTS.md.

    .venv/bin/python bench/serve_start.py [--baseline 8d9a6cc] [--rounds 3] [--no-write]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import machine  # bench/machine.py (scripts run from bench/, so it is importable)
from processes import free_port, tree_pids, wait_for_quiet  # bench/processes.py

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"


@dataclass
class Start:
    ready_s: float
    api_rss_ready_mb: float
    api_rss_mb: float
    tree_rss_mb: float
    keras_in_api: bool


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="8d9a6cc", help="git revision to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print, do not append to bench/RESULTS.md")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        base = Path(directory) / "baseline"
        base.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.baseline], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive.stdout, check=True)
        trees = {f"baseline ({args.baseline})": base, "this tree": ROOT}
        starts: dict[str, list[Start]] = {label: [] for label in trees}
        for round_ in range(args.rounds):
            for index, (label, tree) in enumerate(trees.items()):
                starts[label].append(start_once(tree, Path(directory) / f"home-{round_}-{index}"))
                print(label, starts[label][-1], flush=True)
    report = render(args.rounds, starts)
    print(report)
    if not args.no_write:
        with RESULTS.open("a") as out:
            out.write("\n" + report)


def start_once(tree: Path, home: Path) -> Start:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINYARD_")}
    env |= {
        "PYTHONPATH": str(tree),
        "TRAINYARD_HOME": str(home),
        "TRAINYARD_EMBEDDED_WORKER": "false",
        "TRAINYARD_ACCESS_LOG": "false",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    log = (home.parent / f"{home.name}.log").open("wb")
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)], cwd=tree, env=env, stdout=log, stderr=log
    )
    try:
        ready_s = wait_ready(f"http://127.0.0.1:{port}/healthz", process, started)
        api_ready = rss_mb(process.pid)
        wait_for_quiet(process.pid)
        keras = has_keras(process.pid)
        return Start(ready_s, api_ready, rss_mb(process.pid), sum(rss_mb(p) for p in tree_pids(process.pid)), keras)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def wait_ready(url: str, process: subprocess.Popen[bytes], started: float) -> float:
    while time.monotonic() - started < 300:
        if process.poll() is not None:
            raise SystemExit(f"serve exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    raise SystemExit("serve did not answer within 300 s")


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


def has_keras(pid: int) -> bool:
    """Whether TensorFlow's shared library is mapped into the API process."""
    return "libtensorflow" in Path(f"/proc/{pid}/maps").read_text()


def render(rounds: int, starts: dict[str, list[Start]]) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## serve start — {now}",
        "",
        f"Machine: {machine.describe('fastapi', 'uvicorn', 'pebble')}; load average "
        f"{os.getloadavg()[0]:.1f} at the end. `python -m app.cli serve` (no embedded worker, SQLite, fresh "
        f"home), {rounds} alternating starts per tree; medians (min-max).",
        "",
        "| tree | to first /healthz 200, s | API RSS then, MB | API RSS settled, MB | whole tree RSS settled, MB "
        "| TensorFlow in the API process |",
        "|---|---|---|---|---|---|",
    ]
    for label, runs in starts.items():

        def fig(values: list[float], digits: int = 0) -> str:
            return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"

        lines.append(
            f"| {label} | {fig([r.ready_s for r in runs], 1)} | {fig([r.api_rss_ready_mb for r in runs])} | "
            f"{fig([r.api_rss_mb for r in runs])} | {fig([r.tree_rss_mb for r in runs])} | "
            f"{'yes' if any(r.keras_in_api for r in runs) else 'no'} |"
        )
    base, this = list(starts.values())
    ratio = statistics.median(r.ready_s for r in this) / statistics.median(r.ready_s for r in base)
    lines += ["", f"- time to first answer, this tree / baseline: **{ratio:.2f}**"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
