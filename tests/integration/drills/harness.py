"""What the fault drills act with: a pool of real workers, a Redis server of their own, a TCP
proxy that can cut a worker off its database, a `trainyard serve` subprocess, and the checks
every drill ends with (one success, one model version, each epoch once)."""

import asyncio
import contextlib
import itertools
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import redis

from app.config import Settings
from tests.factories import csv_bytes, job_request, wait_for
from tests.services import TrainyardProcess

# Short enough that a lost worker is noticed in seconds, long enough for a busy 2-core machine.
DRILL_SETTINGS: dict[str, Any] = {
    "job_lease_s": 4.0,
    "heartbeat_s": 0.5,
    "sweep_interval_s": 0.5,
    "max_attempts": 2,
    "shutdown_grace_s": 20,
    # Above a child's start-up (Keras import: 10-20 s on a busy 2-core machine), so that only
    # the drill that asserts it meets a message waiting for a child (test_delivery.py).
    "lost_message_after_s": 20.0,
    # A process frozen inside a transaction (test_limits.py) holds its locks this long at most.
    "db_idle_transaction_timeout_s": 5.0,
    "db_lock_timeout_s": 2.0,
}
FINAL = {"succeeded", "failed", "cancelled", "timed_out"}
# Identical dataset bytes would be deduplicated into one dataset: each upload gets a seed.
SEEDS = itertools.count(1000)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def children_of(pid: int) -> set[int]:
    """The direct children of `pid` (Linux /proc)."""
    found: set[int] = set()
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                found.update(int(child) for child in (task / "children").read_text().split())
    return found


def descendants_of(pid: int) -> set[int]:
    found = children_of(pid)
    for child in list(found):
        found |= descendants_of(child)
    return found


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def pid_of(job: dict[str, Any]) -> int:
    """The training process of a running job: its `worker` field is `host:pid`."""
    return int(str(job["worker"]).rsplit(":", 1)[1])


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target address, in a thread of the test process.

    `cut()` refuses new connections and drops the open ones (a network partition as the
    client sees it); `restore()` listens again on the same port."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True).start()
        self.restore()

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    def restore(self) -> None:
        async def listen() -> asyncio.base_events.Server:
            return await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)

        self._server = self._run(listen())

    def cut(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
                self._server = None
            for writer in list(self._writers):
                writer.transport.abort()
            self._writers.clear()

        self._run(close())

    def close(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.transport.abort()
            return
        self._writers |= {client_writer, upstream_writer}
        await asyncio.gather(
            self._pipe(client_reader, upstream_writer),
            self._pipe(upstream_reader, client_writer),
            return_exceptions=True,
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            self._writers.discard(writer)
            writer.transport.abort()


class RedisServer:
    """A `redis-server` of the drill's own, on a free port, without persistence: killing and
    starting it again is a broker restarted empty. The shared Redis is never touched."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        wait_for(lambda: _pings(client), 30, interval=0.1, what=f"redis-server on port {self.port}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.exceptions.ConnectionError:
        return False


class WorkerPool:
    """Real `trainyard worker` subprocesses, each with one child, numbered in start order.

    With `proxied`, each worker reaches PostgreSQL through a TcpProxy of its own, so a drill
    can cut one worker off the database while the others keep it."""

    def __init__(self, settings: Settings, log_dir: Path, proxied: bool = False) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.proxied = proxied
        self.workers: list[TrainyardProcess] = []
        self.proxies: dict[int, TcpProxy] = {}  # by the worker's main pid
        self._numbers = itertools.count(1)

    def start(
        self, count: int = 1, queues: str = "training", ready_line: str = "child ready", **overrides: Any
    ) -> list[TrainyardProcess]:
        """Start `count` workers at once (settings `overrides` for these only); return when each
        one's log shows `ready_line` (by default: its child is ready to train)."""
        started = []
        for _ in range(count):
            settings = self.settings.model_copy(update=overrides)
            proxy = None
            if self.proxied:
                proxy = TcpProxy("127.0.0.1", 5432)
                database_url = str(settings.database_url).replace(":5432/", f":{proxy.port}/")
                settings = settings.model_copy(update={"database_url": database_url})
            number = next(self._numbers)
            log_path = self.log_dir / f"worker-{number}.log"
            process = TrainyardProcess(
                ["worker", "--concurrency", "1", "--queues", queues, "--name", f"drill-{number}@%h"],
                settings,
                log_path,
            )
            if proxy is not None:
                self.proxies[process.process.pid] = proxy
            self.workers.append(process)
            started.append(process)
        for process in started:
            process.wait_for_log(ready_line, timeout=240)
        return started

    def alive(self) -> list[TrainyardProcess]:
        return [w for w in self.workers if w.process.poll() is None]

    def ensure(self, count: int) -> None:
        """Start workers until `count` are alive (a drill may have killed some)."""
        missing = count - len(self.alive())
        if missing > 0:
            self.start(missing)

    def owner_of(self, child_pid: int) -> TrainyardProcess:
        """The worker whose child process is `child_pid`."""
        for worker in self.alive():
            if child_pid in descendants_of(worker.process.pid):
                return worker
        raise AssertionError(f"no live worker has a child {child_pid}")

    def proxy_of(self, worker: TrainyardProcess) -> TcpProxy:
        return self.proxies[worker.process.pid]

    def kill(self, worker: TrainyardProcess) -> None:
        """SIGKILL the worker's main process and every child at once (a machine lost)."""
        for pid in [worker.process.pid, *descendants_of(worker.process.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        worker.process.wait(timeout=30)
        worker.stop()

    def log(self) -> str:
        return "\n".join(w.log() for w in self.workers)

    def stop_all(self) -> None:
        for worker in self.workers:
            for pid in descendants_of(worker.process.pid):  # a SIGSTOP'd child would hold stop()
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)
        for worker in self.workers:
            try:
                worker.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill(worker)
            with contextlib.suppress(Exception):
                worker.stop()
        for proxy in self.proxies.values():
            proxy.close()


class ServeProcess:
    """`trainyard serve` on a free port, no embedded worker; `http` talks to it."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.port = free_port()
        settings = settings.model_copy(update={"embedded_worker": False})
        self.trainyard = TrainyardProcess(["serve", "--port", str(self.port)], settings, log_path)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=60)
        wait_for(self._ready, 240, interval=0.2, what=f"trainyard serve on port {self.port}")

    def _ready(self) -> bool:
        if self.trainyard.process.poll() is not None:
            raise AssertionError(f"serve exited:\n{self.trainyard.log()[-5000:]}")
        try:
            return self.http.get("/healthz").status_code == 200
        except httpx.TransportError:
            return False

    def alive(self) -> bool:
        return self.trainyard.process.poll() is None

    def kill(self) -> None:
        self.trainyard.process.kill()
        self.trainyard.process.wait()

    def stop(self) -> None:
        self.http.close()
        if self.alive():
            self.trainyard.stop()


class Jobs:
    """The drills' view of the API: submit, poll, and the checks every drill ends with.

    `api` is an httpx.Client: the in-process TestClient or a client of a `serve` subprocess."""

    def __init__(self, api: httpx.Client, settings: Settings) -> None:
        self.api = api
        self.settings = settings

    def upload(self, rows: int = 1024) -> str:
        response = self.api.post("/v1/datasets", files={"file": ("d.csv", csv_bytes(rows=rows, seed=next(SEEDS)))})
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def submit(self, dataset_id: str | None = None, rows: int = 1024, **overrides: Any) -> dict[str, Any]:
        """Submit a small MLP job (1024 rows in batches of 8: an epoch is about half a second)."""
        overrides.setdefault("fit", {"epochs": 10, "batch_size": 8})
        request = job_request(dataset_id or self.upload(rows), **overrides)
        response = self.api.post("/v1/jobs", json=request)
        assert response.status_code == 202, response.text
        return dict(response.json())

    def get(self, job_id: str) -> dict[str, Any]:
        response = self.api.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def cancel(self, job_id: str, timeout: float = 60) -> httpx.Response:
        """POST the cancel as a client should: a 503 (a lock held by a frozen process, say) is
        retried after its Retry-After until the API answers otherwise."""

        def answered() -> httpx.Response | None:
            response = self.api.post(f"/v1/jobs/{job_id}/cancel")
            if response.status_code == 503:
                assert response.headers.get("Retry-After"), response.headers
                return None
            return response

        return wait_for(answered, timeout, interval=1.0, what=f"job {job_id}'s cancel to be answered")

    def events(self, job_id: str) -> list[dict[str, Any]]:
        return list(self.api.get(f"/v1/jobs/{job_id}/events").json())

    def metrics(self, job_id: str) -> dict[str, Any]:
        return dict(self.api.get(f"/v1/jobs/{job_id}/metrics").json())

    def wait_until(
        self, job_id: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = 180, what: str = ""
    ) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            job = self.get(job_id)
            if predicate(job):
                return job
            if job["status"] in FINAL:  # it will not change any more: say how it ended
                raise AssertionError(f"job {job_id} ended {job['status']} ({job['error']}) before {what}")
            return None

        return wait_for(check, timeout, interval=0.1, what=f"job {job_id} {what}".strip())

    def wait_running(self, job_id: str, epoch: int = 1, timeout: float = 180) -> dict[str, Any]:
        """Wait until the job runs and its current attempt reached `epoch` (mid-training)."""
        return self.wait_until(
            job_id,
            lambda j: j["status"] == "running" and j["progress"]["epoch"] >= epoch,
            timeout,
            what=f"running at epoch {epoch}",
        )

    def wait_final(self, job_id: str, timeout: float = 300) -> dict[str, Any]:
        return self.wait_until(job_id, lambda j: j["status"] in FINAL, timeout, what="final")

    def model_versions(self, name: str) -> list[str]:
        response = self.api.get(f"/v1/models/{name}")
        if response.status_code == 404:
            return []
        return [status["version"] for status in response.json()["model_version_status"]]

    def assert_ran_once(self, job: dict[str, Any], resumed: bool = False) -> None:
        """One `succeeded` transition, one model version, every epoch once in /metrics; when
        `resumed`, the last attempt started after a checkpoint of an earlier one."""
        job_id = job["id"]
        assert job["status"] == "succeeded", f"{job['status']}: {job['error']}"
        to_statuses = [e["to_status"] for e in self.events(job_id)]
        assert to_statuses.count("succeeded") == 1, to_statuses
        assert self.model_versions(job["register_as"]) == ["1"]
        assert job["model"] == {"name": job["register_as"], "version": 1}
        metrics = self.metrics(job_id)
        epochs = [row["epoch"] for row in metrics["epochs"]]
        assert epochs == list(range(1, job["progress"]["epochs"] + 1)), epochs
        if resumed:
            start = job["resumed_from_epoch"]
            assert start is not None and start >= 1, job
            assert job["attempt"] >= 2, job
            by_epoch = {row["epoch"]: row["attempt"] for row in metrics["epochs"]}
            assert all(by_epoch[e] < job["attempt"] for e in range(1, start + 1)), by_epoch
            assert all(by_epoch[e] == job["attempt"] for e in range(start + 1, len(epochs) + 1)), by_epoch

    def leftovers(self) -> list[dict[str, Any]]:
        items = self.api.get("/v1/jobs", params={"limit": 500}).json()["items"]
        return [job for job in items if job["status"] not in FINAL]


@contextlib.contextmanager
def frozen(pid: int) -> Iterator[None]:
    """SIGSTOP `pid` for the block (every thread, the heartbeat too); SIGCONT after."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


def of_attempt(path: str, attempt: int) -> bool:
    """Whether a path under the job's artifact directory was written by `attempt`: its model
    (`attempt-N/…`) or one of its checkpoints (`checkpoints/aNNNN-eNNNNNN[-bNNNNNNNNN]/…`)."""
    return path.startswith((f"attempt-{attempt}/", f"checkpoints/a{attempt:04d}-"))


def artifact_files(settings: Settings, job_id: str) -> dict[str, tuple[int, int]]:
    """Every file under the job's artifact directory: relative path → (size, mtime_ns)."""
    root = settings.artifacts_dir / "jobs" / job_id
    if not root.exists():
        return {}
    return {
        str(path.relative_to(root)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in root.rglob("*")
        if path.is_file()
    }


def assert_attempt_one_wrote_nothing_after(
    settings: Settings, done: dict[str, Any], before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]
) -> None:
    """Fencing: attempt 1, cut off from its lease, recorded no epoch past where attempt 2 resumed
    and changed no file of its own (model or checkpoint) between `before` and `after`."""
    from sqlalchemy import select

    from app.db.session import session_scope
    from app.models import JobEpoch

    with session_scope(settings.sqlalchemy_url) as session:
        stale = session.scalars(
            select(JobEpoch.epoch).where(
                JobEpoch.job_id == done["id"], JobEpoch.attempt == 1, JobEpoch.epoch > (done["resumed_from_epoch"] or 0)
            )
        ).all()
    assert stale == [], f"attempt 1 recorded epochs {stale} after losing its lease"
    touched = sorted(p for p in after if of_attempt(p, 1) and after[p] != before.get(p))
    assert touched == [], f"attempt 1 wrote {touched} after losing its lease; files: {sorted(after)}"
