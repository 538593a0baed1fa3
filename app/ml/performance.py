"""`fit.performance`: what makes a fit fastest without changing what it computes, and why.

Decided in two steps: `plan()` before the model is built (the dtype policy shapes its layers, the
data placement its input), and `size_steps()` once the first training steps were timed (how many
steps one call into the backend runs). Every choice carries a sentence saying why, recorded on
the job (`PerformanceRecord`) so a user can see it and give the values back in `fit`.
"""

import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import keras

from app.ml import fused
from app.ml.run_control import Choice, PerformanceRecord
from app.ml.spec import FitSpec

# A step group (one call into the backend) is sized so that its steps, timed one per call, would
# take this long. Grouped they take less (the per-call cost of Python, callbacks and dispatch is
# what grouping removes): tens of ms, long enough to amortise that cost, short enough that a
# cancel or a hand-back, which take effect between groups, answer well within a second.
TARGET_GROUP_S = 0.1
MAX_STEPS_PER_EXECUTION = 256
# Steps timed before choosing; the first ones pay for tracing and are left out.
PROBE_WARMUP_STEPS = 3
PROBE_STEPS = 24

Placement = Literal["host", "pipeline", "device"]
# Layers Keras runs through jax.experimental.rnn's cuDNN kernel on a JAX GPU: it lowers float32 and
# float64 only, so under mixed_bfloat16 the train step fails to compile (issue 14: the LSTM job of
# the GPU benchmark failed with a TypeError raised while lowering).
CUDNN_FLOAT32_ONLY = frozenset({"LSTM"})


@dataclass
class Device:
    """The accelerator training runs on (the first one the backend sees), or the CPU."""

    kind: Literal["cpu", "gpu"]
    name: str
    memory_bytes: int | None  # what the training rows may be compared against; None: unknown
    bfloat16: bool  # computes bfloat16 natively (NVIDIA compute capability 8.0 and up)

    def describe(self) -> str:
        return self.name if self.kind == "cpu" else f"gpu {self.name}"


@dataclass
class Plan:
    """The settings of one attempt; `steps_per_execution` None means: time the first steps."""

    mode: Literal["auto", "off"]
    device: Device
    steps_per_execution: int | None
    jit_compile: bool | Literal["auto"]
    dtype_policy: str
    data_placement: Placement
    fused_steps: bool
    reasons: dict[str, str] = field(default_factory=dict)

    def record(self) -> PerformanceRecord:
        return PerformanceRecord(
            mode=self.mode,
            backend=keras.backend.backend(),
            device=self.device.describe(),
            steps_per_execution=Choice[int](value=self.steps_per_execution or 1, reason=self.reasons["spe"]),
            jit_compile=Choice[bool | Literal["auto"]](value=self.jit_compile, reason=self.reasons["jit"]),
            dtype_policy=Choice[str](value=self.dtype_policy, reason=self.reasons["dtype"]),
            data_placement=Choice[Placement](value=self.data_placement, reason=self.reasons["placement"]),
            fused_steps=Choice[bool](value=self.fused_steps, reason=self.reasons["fused"]),
        )

    def unfuse(self, reason: str) -> None:
        """Run step groups as Keras does after all, for `reason`."""
        if self.fused_steps:
            self.fused_steps, self.reasons["fused"] = False, reason


def plan(
    fit: FitSpec, data_bytes: int, device_data_share: float, measurable: bool, layer_types: frozenset[str] = frozenset()
) -> Plan:
    """The settings for a fit of `data_bytes` of training rows, before the model is built.

    Args:
        layer_types: the spec's layer types, nested ones (a Bidirectional's LSTM) included: XLA
            is left off where it is slower, bfloat16 where a layer's kernel cannot take it.
        device_data_share: the share of the device's memory the rows may take on the device.
        measurable: whether the first steps can be timed before the rest run (a durable run);
            otherwise an unset `steps_per_execution` stays 1 under auto too.
    """
    device = current_device()
    auto = fit.performance == "auto"
    reasons: dict[str, str] = {}
    backend = keras.backend.backend()
    convolutions = any("Conv" in t for t in layer_types)
    # Measured (bench/RESULTS.md, 2026-12-06): XLA on a CPU ran the small CNN's convolutions 5.5x
    # slower inside a compiled loop than a step a call (JAX, one process: 1.1k against 5.1-6.6k samples/s).
    jax_cpu_convolutions = backend == "jax" and device.kind == "cpu" and convolutions

    spe: int | None
    if fit.steps_per_execution is not None:
        spe, reasons["spe"] = fit.steps_per_execution, "given in fit"
    elif not auto:
        spe, reasons["spe"] = 1, "performance off: Keras's default"
    elif not measurable:
        spe, reasons["spe"] = 1, "a run without checkpoints is one fit() call: no steps to time before it"
    else:
        spe, reasons["spe"] = None, "to be sized from the first steps"

    jit: bool | Literal["auto"]
    if fit.jit_compile is not None:
        jit, reasons["jit"] = fit.jit_compile, "given in fit"
    elif not auto:
        jit, reasons["jit"] = "auto", "performance off: Keras's default"
    elif backend == "torch":
        jit, reasons["jit"] = False, "torch: torch.compile costs more to compile than it saves on a job's fit"
    elif backend == "tensorflow" and device.kind == "cpu" and convolutions:
        # Measured here: a small CNN trained 4x slower with XLA than with TensorFlow's oneDNN kernels.
        jit, reasons["jit"] = False, "TensorFlow on a CPU: its oneDNN convolutions are faster than XLA's"
    else:
        jit, reasons["jit"] = True, "XLA fuses the train step's operations (falls back when it cannot compile)"

    if fit.dtype_policy is not None:
        dtype, reasons["dtype"] = fit.dtype_policy, "given in fit"
    elif not auto:
        dtype, reasons["dtype"] = "float32", "performance off: Keras's default"
    elif device.kind == "gpu" and device.bfloat16 and backend == "jax" and layer_types & CUDNN_FLOAT32_ONLY:
        dtype = "float32"
        reasons["dtype"] = (
            f"{device.name} computes bfloat16, but on JAX Keras runs "
            f"{'/'.join(sorted(layer_types & CUDNN_FLOAT32_ONLY))} through cuDNN (jax.experimental.rnn), "
            "whose kernel takes float32 only: bfloat16 fails to compile"
        )
    elif device.kind == "gpu" and device.bfloat16:
        dtype = "mixed_bfloat16"
        reasons["dtype"] = (
            f"{device.name} computes bfloat16 natively; variables and the output layers stay float32, "
            "so losses and metrics are computed in float32"
        )
    else:
        dtype = "float32"
        reasons["dtype"] = f"{device.describe()} has no native bfloat16 compute: float32 is faster there"

    # Fused step groups gather their batches from rows on the device, so where auto could fuse,
    # rows that fit go there even on a CPU (where the device's memory is the host's).
    can_fuse = backend in fused.BACKENDS and measurable and fit.fused_steps is not False
    can_fuse = can_fuse and fit.steps_per_execution != 1  # one step a group: nothing to fuse
    can_fuse = can_fuse and not (backend == "jax" and jit is False) and not jax_cpu_convolutions
    placement: Placement
    if fit.data_placement is not None:
        placement, reasons["placement"] = fit.data_placement, "given in fit"
    elif not auto:
        placement, reasons["placement"] = "host", "performance off: arrays handed to fit() as Keras takes them"
    elif backend == "torch":
        placement, reasons["placement"] = "host", "torch: Keras's own DataLoader path"
    else:
        limit = device.memory_bytes * device_data_share if device.memory_bytes else 0
        share = f"{device_data_share:.0%} of {_bytes(device.memory_bytes)}" if device.memory_bytes else "unknown"
        if data_bytes <= limit and device.kind == "cpu" and not can_fuse:
            # Measured (bench/RESULTS.md, 2026-12-06): on JAX the gather per batch on the "device"
            # trained the seed MLP 2.2x slower than Keras's array path; on TensorFlow both are the
            # same pipeline on the CPU.
            placement = "host"
            reasons["placement"] = (
                f"the training rows ({_bytes(data_bytes)}) fit in {share} of {device.describe()}, and the CPU "
                "is the device: they are in its memory already, and Keras's own array path feeds them with the "
                "least work per batch"
            )
        elif data_bytes <= limit:
            placement = "device"
            reasons["placement"] = (
                f"the training rows ({_bytes(data_bytes)}) fit in {share} of {device.describe()}: copied there "
                "once, each batch gathered in place"
            )
        else:
            placement = "pipeline"
            reasons["placement"] = (
                f"the training rows ({_bytes(data_bytes)}) exceed {share} of {device.describe()}: batches "
                "gathered on the host and prefetched ahead of the device"
            )

    fuse: bool
    if fit.fused_steps is not None and not (fit.fused_steps and placement != "device"):
        fuse, reasons["fused"] = fit.fused_steps, "given in fit"
    elif fit.fused_steps:
        fuse, reasons["fused"] = False, f"asked for in fit, but the rows are not on the device ({placement})"
    elif not auto:
        fuse, reasons["fused"] = False, "performance off: Keras's own step loop"
    elif backend not in fused.BACKENDS:
        fuse, reasons["fused"] = False, f"{backend}: Keras's own step loop"
    elif not measurable:
        fuse, reasons["fused"] = False, "a run without checkpoints is Keras's own fit()"
    elif jax_cpu_convolutions:
        fuse = False
        reasons["fused"] = (
            "JAX on a CPU: XLA runs convolutions inside a compiled loop several times slower than a step a call"
        )
    elif jit is False and backend == "jax":
        fuse, reasons["fused"] = False, "JAX without XLA runs op by op: Keras's own step loop"
    elif placement != "device":
        fuse, reasons["fused"] = False, f"the rows are not on the device ({placement}): Keras's own step loop"
    else:
        fuse = True
        reasons["fused"] = (
            "each step group runs as one compiled loop that gathers its batches on the device: Keras's "
            "per-step input and call overhead is gone, the steps are the same"
        )
    return Plan("auto" if auto else "off", device, spe, jit, dtype, placement, fuse, reasons)


def size_steps(step_seconds: list[float]) -> tuple[int, str]:
    """How many steps make a group of about TARGET_GROUP_S, from timed single steps."""
    timed = sorted(step_seconds)
    if not timed:
        return 1, "no step could be timed (the probe was cut short): Keras's default"
    median = timed[len(timed) // 2]
    steps = max(1, min(MAX_STEPS_PER_EXECUTION, math.floor(TARGET_GROUP_S / max(median, 1e-6) + 1e-9)))
    return steps, (
        f"median step {median * 1000:.2f} ms over {len(timed)} timed steps: {steps} step(s) make a group of "
        f"~{steps * median * 1000:.0f} ms at one step per call, less grouped (target {TARGET_GROUP_S * 1000:.0f} ms; "
        "a stop takes effect between groups)"
    )


def current_device() -> Device:
    """The first accelerator of the running backend, or the CPU."""
    backend = keras.backend.backend()
    try:
        if backend == "jax":
            return _jax_device()
        if backend == "tensorflow":
            return _tf_device()
        if backend == "torch":
            return _torch_device()
    except (ImportError, RuntimeError, ValueError, KeyError, AttributeError):
        pass  # a device that cannot be described is treated as the CPU
    return _cpu()


def _cpu() -> Device:
    try:
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError):
        available = None
    return Device("cpu", f"cpu ({os.cpu_count()} cores)", available, bfloat16=False)


def _jax_device() -> Device:
    import jax

    device = jax.devices()[0]
    if device.platform != "gpu":
        return _cpu()
    stats = device.memory_stats() or {}
    capability = getattr(device, "compute_capability", "0")
    return Device("gpu", device.device_kind, stats.get("bytes_limit"), _at_least_sm80(capability))


def _tf_device() -> Device:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return _cpu()
    details = tf.config.experimental.get_device_details(gpus[0])
    capability = ".".join(str(p) for p in details.get("compute_capability", (0, 0)))
    return Device("gpu", str(details.get("device_name", "GPU")), None, _at_least_sm80(capability))


def _torch_device() -> Device:
    import torch

    if not torch.cuda.is_available():
        return _cpu()
    _free, total = torch.cuda.mem_get_info()
    return Device("gpu", torch.cuda.get_device_name(), total, bool(torch.cuda.is_bf16_supported()))


def _at_least_sm80(capability: str) -> bool:
    try:
        return float(capability) >= 8.0
    except ValueError:
        return False


def _bytes(count: int | None) -> str:
    if count is None:
        return "unknown"
    return f"{count / 2**20:,.1f} MiB" if count < 2**30 else f"{count / 2**30:,.1f} GiB"


def data_bytes(*arrays: Any) -> int:
    """Bytes of arrays, or of dicts of them (as x and y come)."""
    return sum(int(leaf.nbytes) for a in arrays for leaf in keras.tree.flatten(a) if hasattr(leaf, "nbytes"))


def apply(model: Any, chosen: Plan) -> None:
    """Set the plan's jit and step group on a compiled model (its step functions are rebuilt at
    the next fit()). A jit the model's layers cannot take is turned off, and the plan says so."""
    if chosen.jit_compile != "auto":
        model.jit_compile = chosen.jit_compile  # Keras's setter refuses it for layers without XLA support
        if chosen.jit_compile and not model.jit_compile:
            chosen.jit_compile = False
            chosen.reasons["jit"] = "some of the model's layers do not support XLA"
    model.steps_per_execution = chosen.steps_per_execution or 1
    model.train_function = model.test_function = model.predict_function = None


def without_jit(model: Any, chosen: Plan, error: BaseException) -> None:
    """Fall back to no XLA after the compilation failed (before any step ran)."""
    chosen.jit_compile = False
    chosen.reasons["jit"] = f"XLA could not compile the train step ({error_summary(error)})"
    model.jit_compile = False
    model.train_function = model.test_function = model.predict_function = None


def error_summary(error: BaseException) -> str:
    """The line of an error that says what went wrong (Keras leads with "Exception encountered
    when calling ..." and colours the rest), at most 200 characters."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(error).splitlines()]
    telling = [line for line in lines if line and not line.startswith("Exception encountered")]
    return (telling or [type(error).__name__])[0][:200]


def dtype_context(policy: str) -> Any:
    """Build the model under `policy` (Keras's global policy), restored afterwards."""
    return _Policy(policy)


class _Policy:
    def __init__(self, policy: str) -> None:
        self.policy = policy
        self.previous: Any = None

    def __enter__(self) -> None:
        self.previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy(self.policy)

    def __exit__(self, *exc: object) -> None:
        keras.config.set_dtype_policy(self.previous)
