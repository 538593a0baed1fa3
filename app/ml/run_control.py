"""How the caller steers a durable training run: where checkpoints go, fencing, why it stopped.

No Keras import: the jobs side may import this in any process.
"""

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel

from app.ml.checkpoints import CheckpointInfo

T = TypeVar("T")


class StopReason(StrEnum):
    """Why training was asked to stop; each takes effect at the next batch end."""

    CANCEL = "cancel"  # stop at once, write no checkpoint
    HAND_BACK = "hand_back"  # write a checkpoint at this batch boundary, then stop
    LEASE_LOST = "lease_lost"  # stop at once, write nothing more (fencing)
    TIMED_OUT = "timed_out"  # stop at once; the last checkpoint is kept (one at an epoch end may still be written)


# When several stops are asked for, the strictest about writing wins: a lost lease after a hand-back
# must still write nothing.
STOP_PRECEDENCE = (StopReason.HAND_BACK, StopReason.TIMED_OUT, StopReason.CANCEL, StopReason.LEASE_LOST)


class TrainingStopped(Exception):
    """Raised out of `train()` when a stop was requested (only when it was given a RunControl).

    Attributes:
        reason: the stop that took effect.
        epochs_done: epochs fully trained, counted from the job's start (across resumes).
        last_checkpoint: the last checkpoint this attempt wrote, if any.
    """

    def __init__(self, reason: StopReason, epochs_done: int, last_checkpoint: CheckpointInfo | None = None) -> None:
        super().__init__(f"training stopped ({reason.value}) after {epochs_done} epoch(s)")
        self.reason = reason
        self.epochs_done = epochs_done
        self.last_checkpoint = last_checkpoint


class Choice(BaseModel, Generic[T]):
    """One performance setting as it was used, and why."""

    value: T
    reason: str


class PerformanceRecord(BaseModel):
    """What `fit.performance` chose for an attempt (shown on the job as `performance`): each value
    can be given back in `fit` to reproduce the run."""

    mode: Literal["auto", "off"]
    backend: str
    device: str
    steps_per_execution: Choice[int]
    jit_compile: Choice[bool | Literal["auto"]]
    dtype_policy: Choice[str]
    data_placement: Choice[Literal["host", "pipeline", "device"]]
    # None on records written before step groups could be fused.
    fused_steps: Choice[bool] | None = None


@dataclass
class RunControl:
    """What `train()` needs to checkpoint a run and resume it.

    Args:
        attempt: this claim's attempt number; it leads every checkpoint name.
        checkpoint_dir: the job's checkpoint directory (created when missing).
        checkpoint_every_s: also checkpoint inside an epoch, at a batch end, when this much time
            passed since the last checkpoint (checkpoints are written after every epoch anyway).
        resume_from: the checkpoint to continue from, chosen with `latest_checkpoint()`; None for
            a fresh start.
        may_write: fencing, called on the training thread before a checkpoint's state is
            copied, and again right before it is published and before older ones are removed
            (for an epoch's checkpoint, on the thread that writes it in the background): False
            means write nothing (the lease is gone). Must be thread-safe.
        on_checkpoint: called on the training thread once a checkpoint is complete (the caller
            records it); for one written in the background, at the next batch end or stop after it
            completed, always in the order checkpoints were taken. Should not raise: an
            exception ends training.
        on_performance: called on the training thread once the attempt's performance settings are
            final (after the first steps were timed). Should not raise.
        device_data_share: the share of the device's memory the training rows may take to be
            copied there once (fit.data_placement "device").
    """

    attempt: int
    checkpoint_dir: Path
    checkpoint_every_s: float
    resume_from: CheckpointInfo | None
    may_write: Callable[[], bool]
    on_checkpoint: Callable[[CheckpointInfo], None]
    on_performance: Callable[[PerformanceRecord], None] = lambda record: None
    device_data_share: float = 0.5
