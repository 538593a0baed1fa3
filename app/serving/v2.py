"""Open Inference Protocol (KServe V2) tensors: requests to arrays, outputs to responses.

A tensor is `{"name", "shape", "datatype", "data"}` with `data` flat or nested in row-major
order. The binary tensor data extension (what `tritonclient` sends by default) is supported:
the JSON header is followed by raw tensors, its length in `Inference-Header-Content-Length`, and
each binary tensor gives its size in `parameters.binary_data_size`.
"""

import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.errors import BadRequest
from app.serving.signature import ServedVersion, TensorSpec, to_input_array
from app.serving.tfserving import dumps, parse_json

HEADER_LENGTH = "inference-header-content-length"

DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(bool),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
_NAMES = {dtype: name for name, dtype in DATATYPES.items() if name != "BYTES"}


def datatype_of(dtype: np.dtype[Any]) -> str:
    """The V2 datatype name of a numpy dtype (`float32` → `FP32`)."""
    return _NAMES.get(dtype, "BYTES")


def tensor_metadata(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "datatype": datatype_of(spec.dtype), "shape": list(spec.shape)}


@dataclass
class InferRequest:
    id: str | None
    inputs: list[np.ndarray]
    outputs: list[tuple[str, bool]] | None  # requested outputs: name, binary
    binary_outputs: bool


def decode_infer(raw: bytes, header_length: str | None, version: ServedVersion) -> InferRequest:
    """Parse an infer request body into one array per model input, checked against it."""
    binary = b""
    if header_length is not None:
        try:
            size = int(header_length)
        except ValueError:
            raise BadRequest("Inference-Header-Content-Length must be an integer") from None
        if not 0 <= size <= len(raw):
            raise BadRequest(f"Inference-Header-Content-Length {size} exceeds the body")
        raw, binary = raw[:size], raw[size:]
    body = parse_json(raw)
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        raise BadRequest("the body must be a JSON object with an 'inputs' list of tensors")
    given: dict[str, np.ndarray] = {}
    offset = 0
    for index, tensor in enumerate(body["inputs"]):
        array, offset = _decode_tensor(tensor, f"inputs[{index}]", binary, offset)
        given[str(tensor["name"])] = array
    expected = [spec.name for spec in version.inputs]
    unknown = [name for name in given if name not in expected]
    missing = [name for name in expected if name not in given]
    if unknown or missing:
        raise BadRequest(
            f"the model's inputs are {expected}"
            + (f"; missing {missing}" if missing else "")
            + (f"; unknown {unknown}" if unknown else "")
        )
    arrays = [to_input_array(spec, given[spec.name], f"input {spec.name!r}") for spec in version.inputs]
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise BadRequest("'parameters' must be an object")
    request_id = body.get("id")
    return InferRequest(
        id=str(request_id) if request_id is not None else None,
        inputs=arrays,
        outputs=_requested_outputs(body.get("outputs"), version),
        binary_outputs=bool(parameters.get("binary_data_output", False)),
    )


def _decode_tensor(tensor: Any, where: str, binary: bytes, offset: int) -> tuple[np.ndarray, int]:
    if not isinstance(tensor, dict) or not {"name", "shape", "datatype"} <= tensor.keys():
        raise BadRequest(f"{where} must be an object with name, shape, datatype and data")
    datatype = tensor["datatype"]
    dtype = DATATYPES.get(datatype) if isinstance(datatype, str) else None
    if dtype is None:
        raise BadRequest(f"{where}: unknown datatype {datatype!r}; one of {list(DATATYPES)}")
    shape = tensor["shape"]
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise BadRequest(f"{where}: shape must be a list of non-negative integers")
    count = math.prod(shape)
    parameters = tensor.get("parameters") or {}
    size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
    if size is not None:
        if not isinstance(size, int) or offset + size > len(binary):
            raise BadRequest(f"{where}: binary_data_size {size} runs past the body")
        chunk = binary[offset : offset + size]
        offset += size
        if datatype == "BYTES":
            array = np.array(_unpack_bytes(chunk, where), dtype=object)
        else:
            if size != count * dtype.itemsize:
                raise BadRequest(f"{where}: {size} bytes of {datatype} is not the {count} elements of {shape}")
            array = np.frombuffer(chunk, dtype=dtype.newbyteorder("<"))
    elif "data" in tensor:
        array = _from_json(tensor["data"], dtype, datatype, where)
    else:
        raise BadRequest(f"{where}: the tensor has neither 'data' nor binary_data_size")
    if array.size != count:
        raise BadRequest(f"{where}: shape {shape} needs {count} elements; data has {array.size}")
    return array.reshape(shape), offset


def _from_json(data: Any, dtype: np.dtype[Any], datatype: str, where: str) -> np.ndarray:
    try:
        if datatype == "BYTES":
            flat = np.asarray(data, dtype=object).reshape(-1)
            return np.array([_as_bytes(v) for v in flat], dtype=object)
        if dtype.kind == "f":  # the common case, converted in one step
            return np.asarray(data, dtype=dtype)
        array = np.asarray(data)
        if datatype == "BOOL" and array.dtype != bool:
            raise BadRequest(f"{where}: BOOL data must be true or false")
        if array.dtype.kind not in "biuf":
            raise BadRequest(f"{where}: {datatype} data must be numbers; got {array.dtype}")
        if array.dtype.kind == "f" and dtype.kind in "iu" and not np.all(np.mod(array, 1) == 0):
            raise BadRequest(f"{where}: {datatype} data must be integers")
        return array.astype(dtype, copy=False)
    except ValueError as exc:
        raise BadRequest(
            f"{where}: {datatype} data must be numbers in a flat or nested list (row-major); {exc}"
        ) from exc


def _as_bytes(value: Any) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def _unpack_bytes(chunk: bytes, where: str) -> list[bytes]:
    items, offset = [], 0
    while offset < len(chunk):
        if offset + 4 > len(chunk):
            raise BadRequest(f"{where}: truncated BYTES element length")
        (length,) = struct.unpack_from("<I", chunk, offset)
        offset += 4
        items.append(chunk[offset : offset + length])
        offset += length
    return items


def _requested_outputs(outputs: Any, version: ServedVersion) -> list[tuple[str, bool]] | None:
    if outputs is None:
        return None
    if not isinstance(outputs, list):
        raise BadRequest("'outputs' must be a list of {name, parameters}")
    names = [spec.name for spec in version.outputs]
    requested = []
    for index, output in enumerate(outputs):
        name = output.get("name") if isinstance(output, dict) else None
        if name not in names:
            raise BadRequest(f"outputs[{index}]: unknown output {name!r}; the model has {names}")
        parameters = output.get("parameters") or {}
        requested.append((str(name), bool(parameters.get("binary_data", False))))
    return requested


def encode_infer(request: InferRequest, outputs: list[np.ndarray], version: ServedVersion) -> tuple[bytes, int | None]:
    """The response body, and the JSON header's length when binary tensors follow it."""
    by_name = {spec.name: out for spec, out in zip(version.outputs, outputs, strict=True)}
    wanted = request.outputs or [(spec.name, request.binary_outputs) for spec in version.outputs]
    tensors, chunks = [], []
    for name, binary in wanted:
        array = by_name[name]
        tensor: dict[str, Any] = {
            "name": name,
            "datatype": datatype_of(array.dtype),
            "shape": list(array.shape),
        }
        if binary:
            chunk = _pack(array)
            tensor["parameters"] = {"binary_data_size": len(chunk)}
            chunks.append(chunk)
        elif array.dtype == object:
            tensor["data"] = [_as_bytes(v).decode(errors="replace") for v in array.reshape(-1)]
        else:
            tensor["data"] = np.ascontiguousarray(array).reshape(-1)
        tensors.append(tensor)
    body: dict[str, Any] = {
        "model_name": version.name,
        "model_version": str(version.version),
        "outputs": tensors,
    }
    if request.id is not None:
        body["id"] = request.id
    header = dumps(body, outputs)
    if not chunks:
        return header, None
    return header + b"".join(chunks), len(header)


def _pack(array: np.ndarray) -> bytes:
    if array.dtype == object:
        return b"".join(struct.pack("<I", len(b)) + b for b in map(_as_bytes, array.reshape(-1)))
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
