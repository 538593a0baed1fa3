"""Dataset lifecycle: stream an upload in, parse it once, store arrays, record it; delete."""

import logging
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.config import Settings
from app.cpu_pool import Ticket
from app.datasets import repository
from app.datasets.inspection import preview_rows, stats_from_arrays
from app.datasets.parsing import ParseOptions, parse_file
from app.datasets.schema import DatasetError, ParseLimits, StoredDataset
from app.datasets.upload import BadUpload, ReceivedUpload, UploadTooLarge, receive_upload
from app.db.pagination import Page
from app.errors import BadRequest, Conflict, InvalidInput, NotFound, PayloadTooLarge
from app.models import DEFAULT_PROJECT, Dataset

log = logging.getLogger(__name__)

# parse_file's signature: (the upload, its options, the limits, the directory to write arrays to).
Parser = Callable[[Path, ParseOptions, ParseLimits, Path], StoredDataset]


def incoming_dir(settings: Settings) -> Path:
    path = settings.datasets_dir / ".incoming"
    path.mkdir(parents=True, exist_ok=True)
    return path


async def receive(settings: Settings, content_type: str, body: AsyncIterator[bytes]) -> ReceivedUpload:
    """Stream the request body to a temporary file; nothing is left behind on failure."""
    destination = incoming_dir(settings) / f"{uuid.uuid4().hex}.part"
    try:
        return await receive_upload(content_type, body, destination, settings.max_upload_bytes)
    except UploadTooLarge as exc:
        destination.unlink(missing_ok=True)
        raise PayloadTooLarge(f"the upload is larger than the limit of {exc.limit} bytes") from exc
    except BadUpload as exc:
        destination.unlink(missing_ok=True)
        raise BadRequest(str(exc)) from exc
    except BaseException:
        destination.unlink(missing_ok=True)
        raise


def ingest(
    session: Session,
    settings: Settings,
    upload: ReceivedUpload,
    project: str = DEFAULT_PROJECT,
    ticket: Ticket | None = None,
    parse: Parser = parse_file,
) -> tuple[Dataset, bool]:
    """Parse the received file into stored arrays and commit the dataset row, in `project`
    (unless `ticket` says the request gave up first: then nothing is kept).

    `parse`: parse_file, here or elsewhere (the API runs it in a pool process, so that parsing
    holds neither its event loop nor its GIL).

    Returns the dataset and whether it was created: the same bytes uploaded before to the same
    project with the same parse options give back that dataset, and nothing new is stored.
    Blocking (parsing is CPU work): call it from a worker thread.
    """
    try:
        options = ParseOptions.from_form(upload.filename, upload.fields)
    except DatasetError as exc:
        _discard(upload.path)
        raise InvalidInput(f"{upload.filename}: {exc}") from exc
    existing = repository.find_by_content(session, project, upload.sha256, options.digest())
    if existing is not None:
        _discard(upload.path)
        log.info("dataset %s uploaded again: same bytes and parse options", existing.id)
        return existing, False

    dataset_id = uuid.uuid4().hex
    staging = incoming_dir(settings) / dataset_id
    final = settings.datasets_dir / dataset_id
    try:
        staging.mkdir()
        started = time.perf_counter()
        stored = parse(upload.path, options, parse_limits(settings), staging)
        parse_s = time.perf_counter() - started
        if ticket is not None:
            ticket.check()  # the request gave up (503): keep nothing
        upload.path.rename(staging / f"source.{options.format}")
        staging.rename(final)  # atomic: the dataset directory appears whole or not at all
        dataset = Dataset(
            id=dataset_id,
            name=(upload.fields.get("name") or Path(upload.filename).stem or dataset_id)[:200],
            project=project,
            format=options.format,
            sha256=upload.sha256,
            options_hash=options.digest(),
            size_bytes=upload.size_bytes,
            n_rows=stored.n_rows,
            features=stored.features,
            target=stored.target,
            stats=stored.stats,
            warnings=stored.warnings,
            storage_path=dataset_id,
        )
        session.add(dataset)
        session.commit()
    except DatasetError as exc:
        _discard(upload.path, staging, final)
        raise InvalidInput(f"{upload.filename}: {exc}") from exc
    except IntegrityError:
        # A concurrent upload of the same bytes and options committed first: return that one.
        session.rollback()
        _discard(upload.path, staging, final)
        winner = repository.find_by_content(session, project, upload.sha256, options.digest())
        if winner is None:
            raise
        return winner, False
    except BaseException:
        session.rollback()
        _discard(upload.path, staging, final)
        raise
    log.info(
        "dataset %s stored: %s rows, features %s, parsed in %.2f s",
        dataset_id,
        stored.n_rows,
        stored.features["shape"],
        parse_s,
    )
    return dataset, True


def parse_limits(settings: Settings) -> ParseLimits:
    return ParseLimits(
        max_columns=settings.max_columns,
        max_categories=settings.max_categories,
        max_archive_files=settings.max_archive_files,
        max_unpacked_bytes=settings.max_upload_bytes * settings.max_unpack_factor,
    )


def get(session: Session, dataset_id: str, project: str | None = None) -> Dataset:
    """The dataset; NotFound also when it belongs to another project than `project` (None: any)."""
    dataset = repository.get(session, dataset_id, project=project)
    if dataset is None:
        raise NotFound(f"dataset {dataset_id} does not exist")
    return dataset


def list_page(session: Session, limit: int, cursor: str | None, project: str | None = None) -> Page[Dataset]:
    return repository.list_page(session, limit, cursor, project)


def delete(session: Session, settings: Settings, dataset_id: str, project: str | None = None) -> None:
    """Delete the dataset unless a queued or running job still needs it."""
    dataset = repository.get(session, dataset_id, project=project, for_update=True)
    if dataset is None:
        raise NotFound(f"dataset {dataset_id} does not exist")
    active = repository.count_active_jobs(session, dataset_id)
    if active:
        raise Conflict(f"dataset {dataset_id} is used by {active} queued or running job(s)")
    session.delete(dataset)
    session.commit()
    shutil.rmtree(settings.datasets_dir / dataset.storage_path, ignore_errors=True)


def storage_dir(settings: Settings, dataset: Dataset) -> Path:
    return settings.datasets_dir / dataset.storage_path


def preview(
    session: Session, settings: Settings, dataset_id: str, rows: int, project: str | None = None
) -> dict[str, Any]:
    """The dataset's first `rows` rows, decoded back to category strings and class names."""
    dataset = get(session, dataset_id, project)
    shown = preview_rows(storage_dir(settings, dataset), dataset.features, dataset.target, rows)
    return {"dataset_id": dataset.id, "n_rows": dataset.n_rows, **shown}


def stats(session: Session, settings: Settings, dataset_id: str, project: str | None = None) -> dict[str, Any]:
    """Per-column statistics and the target's class histogram (or value range)."""
    dataset = get(session, dataset_id, project)
    if dataset.stats is None:  # stored before statistics were kept: compute them once
        dataset.stats = stats_from_arrays(storage_dir(settings, dataset), dataset.features, dataset.target)
        session.commit()
    return {"dataset_id": dataset.id, "n_rows": dataset.n_rows, **dataset.stats}


def _discard(*paths: Path) -> None:
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
