"""A training job's checkpoints on disk: one directory each, written whole or not at all.

Layout, under the directory the caller gives (`artifacts/jobs/<id>/checkpoints/`)::

    a0002-e000010/              after epoch 10 of attempt 2 (an epoch boundary)
    a0002-e000010-b000000123/   123 batches into epoch 11 of attempt 2
        model.weights.npz       the model's and the optimizer's variables, in their Keras order
                                (checkpoints written before that change hold `model.weights.h5`,
                                Keras `save_weights`; both are read)
        state.json              position, shuffle seed, callback states, anything a resume needs
    .tmp-<uuid>/                a checkpoint being written, or one a crash left behind: ignored

Names sort by (attempt, epoch, batch), the attempt first: the newest attempt's lineage wins, and
a writer only ever deletes checkpoints that sort before the one it has just completed, so a
fenced-off older attempt can never remove or overwrite a newer attempt's work.
No Keras here: the caller hands in the function that writes the weights. `BackgroundWriter`
runs writes on a thread of its own, so that a training loop only pays for copying its state.
"""

import json
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

WEIGHTS_FILE = "model.weights.npz"
LEGACY_WEIGHTS_FILE = "model.weights.h5"
STATE_FILE = "state.json"
TMP_PREFIX = ".tmp-"
# A temp directory untouched for this long belongs to a writer that died: the next writer removes it.
STALE_TMP_S = 60.0

_NAME = re.compile(r"^a(\d+)-e(\d+)(?:-b(\d+))?$")

FileWriter = Callable[[Path], None]


@dataclass(frozen=True)
class CheckpointInfo:
    attempt: int
    epoch: int  # epochs fully trained
    batch: int | None  # batches trained inside epoch `epoch + 1`; None at an epoch boundary
    saved_at: datetime
    path: Path

    @property
    def key(self) -> tuple[int, int, int]:
        return _key(self.attempt, self.epoch, self.batch)


def checkpoint_name(attempt: int, epoch: int, batch: int | None) -> str:
    """`a0002-e000010` at an epoch boundary, `a0002-e000010-b000000123` inside an epoch."""
    name = f"a{attempt:04d}-e{epoch:06d}"
    return name if batch is None else f"{name}-b{batch:09d}"


def parse_name(name: str) -> tuple[int, int, int | None] | None:
    """(attempt, epoch, batch) of a checkpoint directory's name; None for anything else."""
    match = _NAME.match(name)
    if match is None:
        return None
    attempt, epoch, batch = match.groups()
    return int(attempt), int(epoch), None if batch is None else int(batch)


def _key(attempt: int, epoch: int, batch: int | None) -> tuple[int, int, int]:
    # An epoch boundary comes before any batch of the next epoch.
    return attempt, epoch, -1 if batch is None else batch


def _complete(directory: Path) -> list[tuple[tuple[int, int, int], Path]]:
    """Complete checkpoints (renamed into place, so whole) in `directory`, oldest first."""
    if not directory.is_dir():
        return []
    found = []
    for entry in directory.iterdir():
        parsed = parse_name(entry.name)
        if parsed is not None and entry.is_dir():
            found.append((_key(*parsed), entry))
    return sorted(found)


def latest_checkpoint(directory: Path, max_attempt: int) -> CheckpointInfo | None:
    """The newest complete checkpoint in `directory` whose attempt is at most `max_attempt`.

    A resuming attempt N passes N (or N - 1): checkpoints of later attempts, written by a newer
    claim of the same job, are never read by an older one.
    """
    for (attempt, _, _), path in reversed(_complete(directory)):
        if attempt > max_attempt:
            continue
        try:
            return info_of(path)
        except (OSError, ValueError, KeyError):
            continue  # removed by a newer writer between the listing and this read: take the next
    return None


def info_of(path: Path) -> CheckpointInfo:
    """The CheckpointInfo of the checkpoint directory `path` (reads its state.json)."""
    parsed = parse_name(path.name)
    if parsed is None:
        raise ValueError(f"{path}: not a checkpoint directory name (expected a0001-e000001[-b000000001])")
    state = read_state(path)
    attempt, epoch, batch = parsed
    return CheckpointInfo(attempt, epoch, batch, datetime.fromisoformat(state["saved_at"]), path)


def read_state(path: Path) -> dict[str, Any]:
    """The state.json of the checkpoint directory `path`."""
    state: dict[str, Any] = json.loads((path / STATE_FILE).read_text())
    return state


def write_checkpoint(
    directory: Path,
    attempt: int,
    epoch: int,
    batch: int | None,
    files: Mapping[str, FileWriter],
    state: dict[str, Any],
    may_write: Callable[[], bool] | None = None,
) -> CheckpointInfo | None:
    """Write one checkpoint atomically, then delete the checkpoints that sort before it.

    Everything goes into a hidden temp directory next to the final one; the files and the
    directory are fsynced, then the directory is renamed into place. A crash at any point leaves
    either the whole checkpoint or none of it (plus a temp directory readers ignore).

    Args:
        files: file name → a function that writes that file at the path it is given (e.g.
            `{"model.weights.npz": save_copied_variables}`).
        state: JSON-able resume state; `attempt`, `epoch`, `batch` and `saved_at` are added.
        may_write: fencing, asked again right before the rename and before older checkpoints
            are removed: a process frozen mid-write (SIGSTOP, a stalled volume) that wakes after
            another attempt took the job publishes nothing and removes nothing that attempt may
            be resuming from. Returns None when it said no.
    """
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / checkpoint_name(attempt, epoch, batch)
    if final.exists():  # the same position of the same attempt is already saved whole
        return info_of(final)
    saved_at = datetime.now(UTC)
    tmp = directory / f"{TMP_PREFIX}{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        for name, write in files.items():
            write(tmp / name)
        body = {**state, "attempt": attempt, "epoch": epoch, "batch": batch, "saved_at": saved_at.isoformat()}
        (tmp / STATE_FILE).write_text(json.dumps(body, indent=1))
        for written in tmp.iterdir():
            _fsync(written)
        _fsync(tmp)
        if may_write is not None and not may_write():
            shutil.rmtree(tmp, ignore_errors=True)
            return None
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync(directory)
    info = CheckpointInfo(attempt, epoch, batch, saved_at, final)
    if may_write is None or may_write():
        _remove_older_than(directory, info.key)
    _remove_stale_tmp(directory)
    return info


def _remove_older_than(directory: Path, key: tuple[int, int, int]) -> None:
    for other_key, path in _complete(directory):
        if other_key >= key:
            break
        # Renamed out of sight first: a reader never finds a half-deleted checkpoint.
        doomed = directory / f"{TMP_PREFIX}{uuid.uuid4().hex}"
        try:
            os.rename(path, doomed)
        except OSError:
            continue  # another writer got there first
        shutil.rmtree(doomed, ignore_errors=True)


def _remove_stale_tmp(directory: Path) -> None:
    now = time.time()
    for entry in directory.iterdir():
        if not entry.name.startswith(TMP_PREFIX):
            continue
        try:
            # A live writer keeps touching its files; the directory's own mtime stops early.
            touched = max([entry.stat().st_mtime, *(f.stat().st_mtime for f in entry.iterdir())])
        except OSError:
            continue
        if now - touched > STALE_TMP_S:
            shutil.rmtree(entry, ignore_errors=True)


def _fsync(path: Path) -> None:
    flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0)
    handle = os.open(path, flags)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


class CheckpointGone(RuntimeError):
    """The checkpoint a resume was to start from is no longer there (removed by an attempt that
    lost the job, or by hand): the attempt should be retried, not failed."""


Write = Callable[[], CheckpointInfo | None]


class BackgroundWriter:
    """Runs checkpoint writes (`write_checkpoint` calls, state already copied) on a thread of its
    own, one at a time.

    At most one write is in flight. One submitted while another is still writing waits in a single
    slot; a newer one replaces it there (it would be deleted by the newer one the moment that
    completed anyway). Results and errors are handed back by `collect()` / `wait()` on the
    caller's thread, so the caller reports checkpoints from its own thread, in order.
    The thread is started by the first write and kept until `close()`: starting one per write
    cost the training thread a GIL hand-off (~10 ms on a busy machine) every epoch.
    """

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._pending: Write | None = None
        self._busy = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._results: list[CheckpointInfo] = []
        self._error: BaseException | None = None
        self.replaced = 0  # writes dropped for a newer one before they started
        # Set by the writer thread when something waits in `collect()`: a plain attribute a
        # training loop may read per batch for the price of a load.
        self.ready = False

    def submit(self, write: Write) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("checkpoint writer closed: training has stopped")
            if self._pending is not None:
                self.replaced += 1
            self._pending = write
            self._busy = True
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="checkpoint-writer", daemon=True)
                self._thread.start()
            else:
                self._lock.notify_all()

    def _run(self) -> None:
        while True:
            with self._lock:
                self._lock.wait_for(lambda: self._pending is not None or self._closed)
                current, self._pending = self._pending, None
            if current is None:
                return  # closed with nothing left to write
            try:
                info = current()
            except BaseException as exc:  # handed to the training thread, which decides
                info = None
                with self._lock:
                    self._error = self._error or exc
            with self._lock:
                if info is not None:
                    self._results.append(info)
                self.ready = bool(self._results) or self._error is not None
                if self._pending is None:
                    self._busy = False
                    self._lock.notify_all()

    def close(self) -> None:
        """End the thread once what was submitted is written (`wait()` first to see the results)."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()

    @property
    def busy(self) -> bool:
        return self._busy

    def collect(self) -> list[CheckpointInfo]:
        """The checkpoints completed since the last call, oldest first; raises a write's error."""
        with self._lock:
            results, self._results = self._results, []
            error, self._error = self._error, None
            self.ready = False
        if error is not None:
            raise error
        return results

    def wait(self, timeout: float | None = None) -> list[CheckpointInfo]:
        """Wait until nothing is being written or waits to be, then `collect()`."""
        with self._lock:
            self._lock.wait_for(lambda: not self._busy, timeout)
        return self.collect()
