"""Run a compression job in a worker child: load the source version, compress it, measure both
bills in one run, register the new version with its lineage and bill.

Called by app.jobs.runner for jobs of kind "compress" after the claim; Keras is imported inside
the functions (the Celery prefork parent imports app.jobs.runner, DESIGN.md).
"""

import functools
import logging
import shutil
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from app.compress.schemas import Bill, Lineage
from app.compress.service import training_job_of
from app.config import Settings
from app.datasets import repository as datasets
from app.db.session import session_scope
from app.jobs import repository, states
from app.jobs.recorder import Recorder
from app.jobs.states import Move
from app.ml.spec import TrainingSpec
from app.models import Job, JobStatus, ModelVersion
from app.registry import repository as registry
from app.serving.signature import ServedVersion, TensorSpec

log = logging.getLogger(__name__)


class CompressError(RuntimeError):
    """The job cannot be done as asked; the message says why (the job fails with it)."""


def run_compress(settings: Settings, job: Job, lease: timedelta, shutdown: Any) -> JobStatus | None:
    """Compress the version `job.spec["source"]` names; the job's outcome is recorded."""
    from app.jobs import runner  # the attempt's watch and endings are the training jobs'
    from app.ml import training

    # The fine-tune's epoch rows are written by the recorder's thread, as a training job's are,
    # and all of them before the outcome (an outcome recorded first would fence them out).
    recorder = Recorder(name=f"recorder-{job.id}")

    def record_epoch(epoch: int, logs: dict[str, float | str]) -> None:
        recorder.submit(functools.partial(_record_epoch, settings, job, epoch, logs))

    progress = training.ProgressCallback(on_epoch=record_epoch)
    watch = runner._AttemptWatch(settings, job, lease, progress, recorder)
    watch.start()
    shutdown.attach(progress)
    try:
        try:
            return _compress(settings, job, progress, watch, recorder)
        except CompressError as exc:
            runner._close_recorder(settings, recorder)
            return runner._finish(settings, job, Move.FAIL, error=str(exc))
    finally:
        watch.stop()
        runner._close_recorder(settings, recorder)  # an error's outcome is recorded by the caller, after this


def _record_epoch(settings: Settings, job: Job, epoch: int, logs: dict[str, float | str]) -> None:
    try:
        with session_scope(settings.sqlalchemy_url) as session:
            repository.record_epoch(session, job.id, job.attempt, epoch, logs, 0.0, 0)
    except Exception:  # shown on the job only: the fine-tune goes on
        log.warning("could not record fine-tune epoch %s", epoch, exc_info=True)


def _compress(settings: Settings, job: Job, progress: Any, watch: Any, recorder: Recorder) -> JobStatus | None:
    from app.compress import bill
    from app.jobs import runner
    from app.ml import compression, export, training

    settings_ = dict(job.spec["compress"])
    source_ref = job.spec["source"]
    method = settings_["method"]
    with session_scope(settings.sqlalchemy_url) as session:
        source = registry.get_version(session, source_ref["model"], source_ref["version"])
        if source is None:
            raise CompressError(f"version {source_ref['version']} of {source_ref['model']!r} was deleted")
        source_job = training_job_of(session, source)
        dataset = datasets.get(session, job.dataset_id)
        session.expunge_all()
    held_out = None
    spec = _source_spec(source_job)
    if dataset is not None and spec is not None:
        held_out = bill.held_out_split(
            spec, settings.datasets_dir / dataset.storage_path, dataset.features, dataset.target
        )
    elif method == "prune":
        raise CompressError("method: prune fine-tunes on the source's dataset, which is gone")

    source_keras = settings.artifacts_dir / source.artifact_path
    model = compression.load_source(source_keras, compile=method == "prune")
    source_served = _served(source, settings.artifacts_dir)
    source_bill = bill.measure_bill(model, source_served, source_keras, held_out)
    log.info("source bill %s", source_bill.model_dump_json())

    relative = Path("jobs") / job.id / f"attempt-{job.attempt}" / "model.keras"
    artifact = settings.artifacts_dir / relative
    onnx_path = artifact.with_name("model.onnx")
    started = time.perf_counter()
    if method in ("int8", "float16"):
        done = compression.quantize_keras_int8(model) if method == "int8" else compression.cast_keras_float16(model)
        compressed, notes = done.model, done.notes
        training.save_atomically(compressed, artifact)
        if source.serving_runtime == "onnx" and source.serving_path:
            how = compression.quantize_onnx(
                method, settings.artifacts_dir / source.serving_path, onnx_path, _calibration(source, held_out)
            )
            runtime, check = "onnx", _check_against(compressed, onnx_path, source.signature)
            notes["onnx"] = how
        else:  # served by Keras: the quantized Keras model is what shrinks
            runtime, check = "keras", {"reason": "the source is served by Keras; so is this version"}
    else:
        compressed, notes, runtime, check = _prune(
            model, float(settings_["sparsity"]), int(settings_["fine_tune_epochs"]), spec, held_out, progress
        )
        runner._close_recorder(settings, recorder)  # the fine-tune's rows, before any outcome
        if progress.stop_reason is not None:
            return runner._stopped(settings, job, watch, progress.stop_reason, 0)
        training.save_atomically(compressed, artifact)
        exported = export.export_for_serving(compressed, onnx_path)
        runtime, check = exported.runtime, dict(exported.check)
        if exported.path is not None:
            check["onnx_kernel_sparsity"] = round(compression.onnx_weight_sparsity(exported.path), 4)
    watch.training_done = True
    notes["seconds"] = round(time.perf_counter() - started, 3)
    served = _served_new(source, runtime, artifact if runtime == "keras" else onnx_path)
    new_bill = bill.measure_bill(compressed, served, artifact, held_out)
    log.info("compressed bill %s", new_bill.model_dump_json())
    lineage = Lineage(
        kind="compressed",
        source={"model": source.name, "version": source.version},  # type: ignore[arg-type]
        settings={**settings_, **notes},
    )
    return _register(settings, job, source, relative, runtime, check, lineage, new_bill, source_bill, watch)


def _source_spec(source_job: Job | None) -> TrainingSpec | None:
    if source_job is None:  # registered without a training job: no held-out rows to measure on
        return None
    return TrainingSpec.model_validate(source_job.spec)


def _prune(
    model: Any, sparsity: float, epochs: int, spec: TrainingSpec | None, held_out: Any, progress: Any
) -> tuple[Any, dict[str, Any], str, dict[str, Any]]:
    from app.ml import compression
    from app.ml.validation import loss_name

    assert held_out is not None and spec is not None
    masks = compression.magnitude_masks(model, sparsity)
    compression.apply_masks(model, masks)
    if epochs:
        compression.compile_for_fine_tune(model, loss_name(spec) or "mse")
        model.fit(
            held_out.train_x,
            held_out.train_y,
            epochs=epochs,
            batch_size=spec.fit.batch_size,
            callbacks=[compression.KeepPruned(masks), progress],
            verbose=0,
        )
    achieved = compression.kernel_sparsity(model)
    if achieved + 1e-6 < sparsity * 0.99:
        raise CompressError(f"sparsity: pruning left {achieved:.3f} of the kernels zero, not {sparsity}")
    return model, {"kernel_sparsity": round(achieved, 4), "pruned_kernels": len(masks)}, "keras", {}


CALIBRATION_ROWS = 256


def _calibration(source: ModelVersion, held_out: Any) -> dict[str, Any] | None:
    """Training rows (never the held-out ones) to calibrate int8 activation ranges, for a
    single-input model; None: dynamic quantization."""
    import numpy as np

    inputs = source.signature["inputs"]
    if held_out is None or len(inputs) != 1 or not len(held_out.train_x):
        return None
    rows = np.asarray(held_out.train_x[:CALIBRATION_ROWS], dtype=inputs[0]["dtype"])
    return {inputs[0]["name"]: rows}


def _check_against(model: Any, onnx_path: Path, signature: dict[str, Any]) -> dict[str, Any]:
    """How far the quantized ONNX file strays from the compressed Keras model, on sample rows
    (not a pass/fail check like the float export's: quantization changes the numbers)."""
    from app.ml import export

    samples = export.sample_inputs(signature)
    expected = export.call_keras(model, samples)
    got = export._run_onnx(onnx_path, signature, samples)
    return {"sample_rows": export.SAMPLE_ROWS, "max_abs_diff_vs_keras": export._max_abs_diff(expected, got)}


def _served(row: ModelVersion, artifacts_dir: Path) -> ServedVersion:
    from app.serving.lookup import served_version

    return served_version(row, artifacts_dir)


def _served_new(source: ModelVersion, runtime: str, path: Path) -> ServedVersion:
    return ServedVersion(
        name=source.name,
        version=0,
        runtime=runtime,
        path=path,
        inputs=tuple(TensorSpec.of(spec) for spec in source.signature["inputs"]),
        outputs=tuple(TensorSpec.of(spec) for spec in source.signature["outputs"]),
    )


def _register(
    settings: Settings,
    job: Job,
    source: ModelVersion,
    relative: Path,
    runtime: str,
    check: dict[str, Any],
    lineage: Lineage,
    new_bill: Bill,
    source_bill: Bill,
    watch: Any,
) -> JobStatus | None:
    from app.jobs import runner

    if watch.lease_lost:
        log.warning("lost the job's lease while compressing; the result is discarded")
        return None
    serving_path = relative.with_name("model.onnx") if runtime == "onnx" else None
    with session_scope(settings.sqlalchemy_url) as session:
        version = states.succeed_and_register(
            session,
            job,
            str(relative),
            dict(source.signature),
            new_bill.metrics,
            serving={
                "serving_runtime": runtime,
                "serving_path": str(serving_path) if serving_path else None,
                "serving_check": check,
                "lineage": lineage.model_dump(mode="json"),
                "bill": new_bill.model_dump(mode="json"),
            },
        )
        if version is None:
            shutil.rmtree(settings.artifacts_dir / relative.parent, ignore_errors=True)
            return runner._finish(settings, job, Move.CANCEL, detail="cancelled while saving")
        # The source's bill, measured in this same run, when it has none yet (a trained version).
        row = registry.get_version(session, source.name, source.version)
        if row is not None and row.bill is None:
            row.bill = source_bill.model_dump(mode="json")
            session.commit()
    log.info("succeeded: registered %s version %s", version.name, version.version)
    return JobStatus.SUCCEEDED
