"""The machine line every benchmark writes beside its figures: cores, CPU model, versions."""

import os
import platform
from importlib import metadata
from pathlib import Path


def describe(*packages: str) -> str:
    """`N cores (CPU); Python x, Keras y on <backend>, <package> <version>, …`."""
    versions = [f"Python {platform.python_version()}", f"Keras {_version('keras')} on {_keras_backend()}"]
    versions += [f"{name} {_version(name)}" for name in packages]
    return f"{os.cpu_count()} cores ({_cpu_model()}); " + ", ".join(versions)


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def _keras_backend() -> str:
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend == "tensorflow":
        for distribution in ("tensorflow-cpu", "tensorflow"):
            try:
                return f"TensorFlow {metadata.version(distribution)}"
            except metadata.PackageNotFoundError:
                continue
    return backend


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"
