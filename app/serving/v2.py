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
from app.serving.signature import ServedVersion, TensorSpec, cast_numbers, numbers, to_input_array
from app.serving.tfserving import check_rows, dumps, parse_json

HEADER_LENGTH = "inference-header-content-length"
MAX_RANK = 32  # numpy's own limit on dimensions
MAX_DIM = 2**31 - 1

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


def decode_infer(raw: bytes, header_length: str | None, version: ServedVersion, max_rows: int) -> InferRequest:
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
    parameters = _parameters(body.get("parameters"), "parameters")
    given: dict[str, np.ndarray] = {}
    offset = 0
    for index, tensor in enumerate(body["inputs"]):
        name, array, offset = _decode_tensor(tensor, f"inputs[{index}]", binary, offset, max_rows)
        given[name] = array
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
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest("'id' must be a string")
    return InferRequest(
        id=request_id,
        inputs=arrays,
        outputs=_requested_outputs(body.get("outputs"), version),
        binary_outputs=_flag(parameters, "binary_data_output", "parameters"),
    )


def _parameters(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"{where} must be an object")
    return value


def _flag(parameters: dict[str, Any], key: str, where: str) -> bool:
    value = parameters.get(key, False)
    if not isinstance(value, bool):
        raise BadRequest(f"{where}.{key} must be true or false")
    return value


def _decode_tensor(tensor: Any, where: str, binary: bytes, offset: int, max_rows: int) -> tuple[str, np.ndarray, int]:
    if not isinstance(tensor, dict) or not {"name", "shape", "datatype"} <= tensor.keys():
        raise BadRequest(f"{where} must be an object with name, shape, datatype and data")
    name = tensor["name"]
    if not isinstance(name, str):
        raise BadRequest(f"{where}.name must be a string")
    datatype = tensor["datatype"]
    dtype = DATATYPES.get(datatype) if isinstance(datatype, str) else None
    if dtype is None:
        raise BadRequest(f"{where}.datatype: unknown datatype {datatype!r}; one of {list(DATATYPES)}")
    shape = tensor["shape"]
    # type(), not isinstance: JSON true is a Python bool, which isinstance counts as an int.
    if (
        not isinstance(shape, list)
        or len(shape) > MAX_RANK
        or not all(type(d) is int and 0 <= d <= MAX_DIM for d in shape)
    ):
        raise BadRequest(f"{where}.shape must be a list of at most {MAX_RANK} integers from 0 to {MAX_DIM}")
    if shape:
        check_rows(shape[0], max_rows, where)
    count = math.prod(shape)
    parameters = _parameters(tensor.get("parameters"), f"{where}.parameters")
    size = parameters.get("binary_data_size")
    if size is not None:
        if type(size) is not int or size < 0 or offset + size > len(binary):
            raise BadRequest(f"{where}.parameters.binary_data_size {size!r} runs past the body")
        chunk = binary[offset : offset + size]
        offset += size
        if datatype == "BYTES":
            array = np.array(_unpack_bytes(chunk, where, count), dtype=object)
        else:
            if size != count * dtype.itemsize:
                raise BadRequest(f"{where}: {size} bytes of {datatype} is not the {count} elements of {shape}")
            array = np.frombuffer(chunk, dtype=dtype.newbyteorder("<"))
            if datatype == "BOOL" and (np.frombuffer(chunk, dtype=np.uint8) > 1).any():
                raise BadRequest(f"{where}: BOOL binary data must be bytes 0 or 1")
    elif "data" in tensor:
        array = _from_json(tensor["data"], dtype, datatype, where, count)
    else:
        raise BadRequest(f"{where}: the tensor has neither 'data' nor binary_data_size")
    if array.size != count:
        raise BadRequest(f"{where}: shape {shape} needs {count} elements; data has {array.size}")
    return name, array.reshape(shape), offset


def _from_json(data: Any, dtype: np.dtype[Any], datatype: str, where: str, count: int) -> np.ndarray:
    if datatype == "BYTES":
        return np.array(_strings(data, where, count), dtype=object)
    array = numbers(data, f"{where}.data", f"{datatype} data")
    if datatype == "BOOL" and array.dtype != bool:
        raise BadRequest(f"{where}.data: BOOL data must be true or false")
    return cast_numbers(array.reshape(-1), dtype, f"{where}.data", f"{datatype} data")


def _strings(data: Any, where: str, count: int) -> list[bytes]:
    """BYTES data: strings in flat or nested lists, as UTF-8 bytes. Checked leaf by leaf, and
    stopped past `count`: `bytes(n)` of a number would allocate n zero bytes."""
    out: list[bytes] = []
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, str):
            out.append(item.encode())
            if len(out) > count:
                break
        else:
            raise BadRequest(f"{where}.data: BYTES data must be strings; found {type(item).__name__}")
    return out


def _as_bytes(value: Any) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def _unpack_bytes(chunk: bytes, where: str, count: int) -> list[bytes]:
    items: list[bytes] = []
    offset = 0
    while offset < len(chunk) and len(items) <= count:
        if offset + 4 > len(chunk):
            raise BadRequest(f"{where}: truncated BYTES element length")
        (length,) = struct.unpack_from("<I", chunk, offset)
        offset += 4
        if offset + length > len(chunk):
            raise BadRequest(f"{where}: a BYTES element runs past its binary data")
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
        if not isinstance(name, str) or name not in names:
            raise BadRequest(f"outputs[{index}].name: unknown output {name!r}; the model has {names}")
        parameters = _parameters(output.get("parameters"), f"outputs[{index}].parameters")
        requested.append((name, _flag(parameters, "binary_data", f"outputs[{index}].parameters")))
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
