"""`trainyard datasets|jobs|models|predict`: the client commands, built on the SDK.

Exit codes (also in README.md): 0 done (a watched job succeeded); 1 the job failed or timed
out; 2 bad usage or an unreadable input file; 3 the job was cancelled; 4 the server refused the
request (4xx: unknown id, invalid spec, missing scope); 5 the server could not be reached or
failed (5xx, after retries); 130 stopped watching with Ctrl-C (the job keeps running)."""

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import BaseModel
from rich.console import Console

if TYPE_CHECKING:  # imported when a client command runs: `serve` and `worker` start without them
    from app.client.client import Client, Job
    from app.client.types import JobInfo


class Exit(IntEnum):
    OK = 0
    JOB_FAILED = 1
    USAGE = 2
    JOB_CANCELLED = 3
    REFUSED = 4
    UNAVAILABLE = 5
    INTERRUPTED = 130


datasets_cli = typer.Typer(help="Upload and inspect datasets (on a trainyard server).", no_args_is_help=True)
jobs_cli = typer.Typer(help="Submit, watch, list and cancel training jobs.", no_args_is_help=True)
models_cli = typer.Typer(help="List models, their versions, and move labels.", no_args_is_help=True)

Url = Annotated[
    str | None, typer.Option("--url", envvar="TRAINYARD_URL", help="The server [default: http://127.0.0.1:8000].")
]
ApiKey = Annotated[str | None, typer.Option("--api-key", envvar="TRAINYARD_API_KEY", help="An API key (Bearer).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts) instead of tables.")]

out = Console()
err = Console(stderr=True)


@contextmanager
def connected(url: str | None, api_key: str | None) -> Iterator["Client"]:
    """A client, with the SDK's errors turned into a one-line message and an exit code."""
    import httpx

    from app.client.client import Client
    from app.client.transport import TrainyardError

    try:
        # Three retries (about 4 s of backoff): a person at a terminal should not wait 20 s to
        # learn that the server is down; 429/503 with Retry-After still wait what they say.
        with Client(url, api_key, retries=3) as client:
            yield client
    except TrainyardError as error:
        detail = f" ({_short(error.detail)})" if error.detail else ""
        err.print(f"error: HTTP {error.status}: {error.error}{detail}", markup=False, highlight=False)
        raise typer.Exit(Exit.REFUSED if error.status < 500 else Exit.UNAVAILABLE) from None
    except httpx.TransportError as error:
        err.print(f"error: cannot reach {url or 'the server'}: {error}", markup=False, highlight=False)
        raise typer.Exit(Exit.UNAVAILABLE) from None
    except (OSError, ValueError) as error:  # an input file that is missing or unreadable
        err.print(f"error: {error}", markup=False, highlight=False)
        raise typer.Exit(Exit.USAGE) from None


def _short(detail: Any) -> str:
    text = detail if isinstance(detail, str) else json.dumps(detail)
    return text if len(text) < 300 else text[:300] + "…"


def emit(value: BaseModel | list[Any] | dict[str, Any]) -> None:
    """A result as JSON on stdout."""
    if isinstance(value, BaseModel):
        sys.stdout.write(value.model_dump_json() + "\n")
    else:
        sys.stdout.write(
            json.dumps(
                [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
                if isinstance(value, list)
                else value
            )
            + "\n"
        )


def table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    from rich.table import Table

    grid = Table(title=title)
    for column in columns:
        # Ids are what scripts and the next command need: never cut them short.
        grid.add_column(column, no_wrap=column in ("id", "job"), min_width=32 if column in ("id", "job") else None)
    for row in rows:
        grid.add_row(*["" if v is None else str(v) for v in row])
    out.print(grid)


# datasets ----------------------------------------------------------------------------------


@datasets_cli.command("upload")
def datasets_upload(
    file: Annotated[Path, typer.Argument(help="CSV, TSV, Parquet, JSONL, NPZ or a ZIP of images.")],
    target: Annotated[
        str | None, typer.Option(help="The label column(s), comma-separated [default: the last].")
    ] = None,
    name: Annotated[str | None, typer.Option(help="A name for the dataset.")] = None,
    url: Url = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Upload a data file; print the dataset's id and the schema the server found."""
    with connected(url, api_key) as client:
        dataset = client.datasets.upload(file, target=target, name=name)
    if as_json:
        return emit(dataset)
    out.print(f"[bold]{dataset.id}[/bold]  {dataset.name}  {dataset.format}, {dataset.n_rows} rows")
    out.print(f"features {dataset.features.get('shape')}  target {dataset.target.get('shape')}", highlight=False)
    for warning in dataset.warnings:
        err.print(f"warning: {warning}", markup=False)


@datasets_cli.command("list")
def datasets_list(url: Url = None, api_key: ApiKey = None, as_json: AsJson = False) -> None:
    """Every dataset, newest first."""
    with connected(url, api_key) as client:
        datasets = client.datasets.list()
    if as_json:
        return emit(datasets)
    rows = [[d.id, d.name, d.format, d.n_rows, d.created_at.strftime("%Y-%m-%d %H:%M")] for d in datasets]
    table("datasets", ["id", "name", "format", "rows", "created"], rows)


@datasets_cli.command("show")
def datasets_show(dataset_id: str, url: Url = None, api_key: ApiKey = None, as_json: AsJson = False) -> None:
    """One dataset's schema."""
    with connected(url, api_key) as client:
        dataset = client.datasets.get(dataset_id)
    if as_json:
        return emit(dataset)
    out.print_json(dataset.model_dump_json())


# jobs ----------------------------------------------------------------------------------------


@jobs_cli.command("submit")
def jobs_submit(
    spec: Annotated[Path, typer.Argument(help="The job spec: the POST /v1/jobs body as .json or .yaml.")],
    dataset: Annotated[str | None, typer.Option(help="The dataset id (overrides the spec's dataset_id).")] = None,
    name: Annotated[str | None, typer.Option(help="The job's name (overrides the spec's).")] = None,
    watch: Annotated[bool, typer.Option("--watch", help="Follow it until it ends; exit with its outcome.")] = False,
    url: Url = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Queue a training job; with --watch, show its progress and exit 0 only if it succeeds."""
    with connected(url, api_key) as client:
        job = client.jobs.submit(spec, dataset=dataset, name=name)
        if not watch:
            return emit(job.info) if as_json else out.print(f"[bold]{job.id}[/bold] {job.info.name} {job.status}")
        err.print(f"job {job.id} ({job.info.name}) {job.status}", markup=False, highlight=False)
        _watch(job, as_json)


@jobs_cli.command("watch")
def jobs_watch(job_id: str, url: Url = None, api_key: ApiKey = None, as_json: AsJson = False) -> None:
    """Follow a job live (a progress bar per epoch, the latest metrics, an ETA) until it ends.
    Ctrl-C stops watching; the job keeps running."""
    with connected(url, api_key) as client:
        _watch(client.jobs.get(job_id), as_json)


def _watch(job: "Job", as_json: bool) -> None:
    try:
        info = job.wait(progress=True, console=err)
    except KeyboardInterrupt:
        err.print(
            f"stopped watching; job {job.id} is still {job.status} on the server "
            f"(trainyard jobs watch {job.id} to follow it again, trainyard jobs cancel {job.id} to stop it)",
            markup=False,
            highlight=False,
        )
        raise typer.Exit(Exit.INTERRUPTED) from None
    _report(info, as_json)
    raise typer.Exit(exit_code(info))


def exit_code(info: "JobInfo") -> Exit:
    """What a job's final status means to a shell."""
    return {"succeeded": Exit.OK, "cancelled": Exit.JOB_CANCELLED}.get(info.status, Exit.JOB_FAILED)


def _report(info: "JobInfo", as_json: bool) -> None:
    if as_json:
        return emit(info)
    model = f": model {info.model.name} version {info.model.version}" if info.model else ""
    error = f": {info.error}" if info.error else ""
    out.print(f"job {info.id} {info.status}{model}{error}", markup=False, highlight=False)
    if info.metrics:
        out.print(
            "  " + " ".join(f"{k}={v:.4g}" for k, v in info.metrics.items() if isinstance(v, int | float)),
            highlight=False,
        )


@jobs_cli.command("list")
def jobs_list(
    status: Annotated[str | None, typer.Option(help="Only jobs in this status.")] = None,
    name: Annotated[str | None, typer.Option(help="Only jobs with this name.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="At most this many, newest first.")] = 50,
    url: Url = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Jobs, newest first."""
    with connected(url, api_key) as client:
        jobs = client.jobs.list(status=status, name=name, limit=limit)
    if as_json:
        return emit(jobs)
    rows = [
        [
            j.id,
            j.name,
            j.status,
            f"{j.progress.epoch}/{j.progress.epochs or '?'}",
            j.created_at.strftime("%Y-%m-%d %H:%M"),
        ]
        for j in jobs
    ]
    table("jobs", ["id", "name", "status", "epoch", "created"], rows)


@jobs_cli.command("show")
def jobs_show(job_id: str, url: Url = None, api_key: ApiKey = None, as_json: AsJson = False) -> None:
    """One job: its status, progress, latest metrics, error and model."""
    with connected(url, api_key) as client:
        info = client.jobs.get(job_id).info
    if as_json:
        return emit(info)
    out.print_json(info.model_dump_json(exclude={"spec"}))


@jobs_cli.command("cancel")
def jobs_cancel(job_id: str, url: Url = None, api_key: ApiKey = None, as_json: AsJson = False) -> None:
    """Ask a job to stop (it ends `cancelled` at its next batch)."""
    with connected(url, api_key) as client:
        info = client.jobs.get(job_id).cancel()
    if as_json:
        return emit(info)
    out.print(f"job {info.id} {info.status}" + (" (cancel requested)" if not info.done else ""), highlight=False)


# models --------------------------------------------------------------------------------------


@models_cli.command("list")
def models_list(url: Url = None, api_key: ApiKey = None, as_json: AsJson = False) -> None:
    """Every model: its latest version and labels."""
    with connected(url, api_key) as client:
        models = client.models.list()
    if as_json:
        return emit(models)
    rows = [[m.name, m.latest_version, " ".join(f"{k}→{v}" for k, v in m.labels.items())] for m in models]
    table("models", ["name", "latest", "labels"], rows)


@models_cli.command("show")
def models_show(name: str, url: Url = None, api_key: ApiKey = None, as_json: AsJson = False) -> None:
    """A model's versions with the job that trained each and its final metrics."""
    with connected(url, api_key) as client:
        versions = client.models.get(name)
    if as_json:
        return emit(versions)
    rows = [
        [
            v.version,
            v.state,
            v.job_id,
            " ".join(f"{k}={x:.4g}" for k, x in v.metrics.items() if isinstance(x, int | float)),
        ]
        for v in versions
    ]
    table(name, ["version", "state", "job", "metrics"], rows)


@models_cli.command("label")
def models_label(
    name: str, label: str, version: int, url: Url = None, api_key: ApiKey = None, as_json: AsJson = False
) -> None:
    """Point LABEL (say production) at VERSION of model NAME."""
    with connected(url, api_key) as client:
        moved = client.models.label(name, label, version)
    if as_json:
        return emit(moved)
    out.print(f"{name}: {label} → version {moved.version}", highlight=False)


# predict -------------------------------------------------------------------------------------


def predict(
    model: Annotated[str, typer.Argument(help="The model's name.")],
    file: Annotated[Path, typer.Argument(help="Rows: .csv (a header of column names, or numbers only) or .json.")],
    out_path: Annotated[
        Path | None, typer.Option("--out", help="Write here (.csv or .json) [default: stdout].")
    ] = None,
    version: Annotated[int | None, typer.Option(help="A version [default: the latest].")] = None,
    label: Annotated[str | None, typer.Option(help="A label, e.g. production.")] = None,
    output_format: Annotated[
        str | None, typer.Option("--format", help="csv or json [default: from --out, else json].")
    ] = None,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Predict FILE's rows with MODEL; write the predictions as CSV or JSON."""
    from app.client.rows import read_rows, write_predictions

    fmt = output_format or (out_path.suffix.lower().lstrip(".") if out_path else "json")
    if fmt not in {"csv", "json"}:
        err.print(f"error: --format/--out: csv or json, not {fmt!r}", markup=False)
        raise typer.Exit(Exit.USAGE)
    with connected(url, api_key) as client:
        predictions = client.models.predict(model, read_rows(file), version=version, label=label)
        text = write_predictions(predictions, fmt)
        if out_path is None:
            sys.stdout.write(text)
        else:
            out_path.write_text(text)
            err.print(f"wrote {out_path}", markup=False, highlight=False)
