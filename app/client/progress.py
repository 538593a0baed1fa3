"""How `job.wait(progress=True)` and `trainyard jobs watch` show a training job: a live rich
progress bar (epochs, latest metrics, ETA) on a terminal, one plain line per event elsewhere
(logs, CI, pipes), so that output read by a program is not full of cursor movements."""

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from app.client.types import EndEvent, EpochEvent, JobEvent, JobInfo, StatusEvent


def format_logs(logs: dict[str, float | None], limit: int = 6) -> str:
    """`loss=0.4213 accuracy=0.8750 …`: the first `limit` values of an epoch's logs."""
    shown = [f"{k}={v:.4g}" if v is not None else f"{k}=nan" for k, v in list(logs.items())[:limit]]
    return " ".join(shown)


class JobDisplay:
    """Shows a job's events as they arrive (a context manager: started and stopped around them)."""

    def __enter__(self) -> "JobDisplay":
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        return None

    def show(self, event: JobEvent) -> None:
        raise NotImplementedError


class ProgressBar(JobDisplay):
    """A rich progress bar: `name ━━━━━━ 3/10 loss=… 0:00:04 ETA 0:00:09`."""

    def __init__(self, job: JobInfo, console: Console) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TextColumn("{task.fields[logs]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._task: TaskID = self._progress.add_task(
            job.name, total=job.progress.epochs, completed=job.progress.epoch, status=job.status, logs=""
        )

    def __enter__(self) -> "ProgressBar":
        self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._progress.stop()

    def show(self, event: JobEvent) -> None:
        if isinstance(event, EpochEvent):
            self._progress.update(self._task, completed=event.epoch.epoch, logs=format_logs(event.epoch.logs))
        elif isinstance(event, StatusEvent):
            # A resumed attempt retrains the epochs after its checkpoint: the bar goes back there.
            self._progress.update(self._task, status=event.to_status)
            if event.resumed_from_epoch is not None:
                self._progress.update(self._task, completed=event.resumed_from_epoch)
        elif isinstance(event, EndEvent):
            self._progress.update(self._task, status=event.job.status)


class PlainLines(JobDisplay):
    """A line per event: `epoch 3/10 loss=… (2.1 s)`, `status running`."""

    def __init__(self, job: JobInfo, console: Console) -> None:
        self._console = console
        self._epochs = job.progress.epochs

    def show(self, event: JobEvent) -> None:
        if isinstance(event, EpochEvent):
            took = f" ({event.epoch.duration_s:.1f} s)" if event.epoch.duration_s is not None else ""
            line = f"epoch {event.epoch.epoch}/{self._epochs or '?'} {format_logs(event.epoch.logs)}{took}"
        elif isinstance(event, StatusEvent):
            line = f"status {event.to_status}" + (f": {event.detail}" if event.detail else "")
        else:
            return
        self._console.print(line, markup=False, highlight=False, soft_wrap=True)


def display_for(job: JobInfo, console: Console) -> JobDisplay:
    """A progress bar where the console is a terminal (or a notebook), plain lines otherwise."""
    if console.is_terminal or console.is_jupyter:
        return ProgressBar(job, console)
    return PlainLines(job, console)
