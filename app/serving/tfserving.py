"""TensorFlow Serving's REST predict format: request bodies to arrays, outputs to JSON.

Row format: `{"instances": [row, …]}`, where a row is the input's value for one example, or an
object keyed by input name (required when the model has several inputs) → `{"predictions": …}`.
Columnar format: `{"inputs": tensor}` or `{"inputs": {name: tensor}}` → `{"outputs": …}`.
A model with several outputs answers objects keyed by output name. As TF Serving does, `NaN`,
`Infinity` and `-Infinity` are accepted in requests and written in responses.
"""

import json
from typing import Any

import numpy as np
import orjson

from app.errors import BadRequest, PayloadTooLarge
from app.serving.columns import encode_rows, wants_column_encoding
from app.serving.signature import ServedVersion, to_input_array

SIGNATURE_NAME = "serving_default"
_NUMPY = orjson.OPT_SERIALIZE_NUMPY


def parse_json(raw: bytes) -> Any:
    """orjson first (fast); the standard library for the `NaN`/`Infinity` literals it refuses."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if b"NaN" in raw or b"Infinity" in raw:
            try:
                return json.loads(raw)
            except ValueError:
                pass
        raise BadRequest(f"the body is not valid JSON: {exc}") from exc


def decode_body(raw: bytes, version: ServedVersion, max_rows: int) -> tuple[Any, list[np.ndarray], bool]:
    """The parsed body, one array per model input, and whether the request used the row format."""
    body = parse_json(raw)
    inputs, rows = decode_predict(body, version, max_rows)
    return body, inputs, rows


def decode_request(raw: bytes, version: ServedVersion, max_rows: int) -> tuple[list[np.ndarray], bool, bool]:
    """`decode_body` without the parsed body: the arrays, the row format, and whether the answer
    should carry class names. What a pool process sends back (a parsed 10,000-row body would cost
    more to pickle back than to parse)."""
    body, inputs, rows = decode_body(raw, version, max_rows)
    return inputs, rows, wants_class_names(body)


def check_rows(count: int, max_rows: int, where: str) -> None:
    """413 for a request with more rows than one request may hold (counted before any array exists)."""
    if count > max_rows:
        raise PayloadTooLarge(
            f"{where} holds {count} rows, over the limit of {max_rows} per request "
            "(TRAINYARD_MAX_PREDICT_ROWS): send them in several requests"
        )


def decode_predict(body: Any, version: ServedVersion, max_rows: int) -> tuple[list[np.ndarray], bool]:
    """One array per model input, and whether the request used the row format."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object with 'instances' or 'inputs'")
    signature = body.get("signature_name")
    if signature not in (None, "", SIGNATURE_NAME):
        raise BadRequest(f"signature_name {signature!r} not found: this model has one signature, {SIGNATURE_NAME!r}")
    if "instances" in body:
        if "inputs" in body:
            raise BadRequest("send either 'instances' (row format) or 'inputs' (columnar), not both")
        return _rows(body["instances"], version, max_rows), True
    if "inputs" in body:
        return _columns(body["inputs"], version, max_rows), False
    raise BadRequest("the request needs 'instances' (row format) or 'inputs' (columnar format)")


def _rows(instances: Any, version: ServedVersion, max_rows: int) -> list[np.ndarray]:
    if not isinstance(instances, list) or not instances:
        raise BadRequest("'instances' must be a non-empty list of rows")
    check_rows(len(instances), max_rows, "'instances'")
    if version.columns and len(version.inputs) == 1 and wants_column_encoding(instances, [version.inputs[0].name]):
        return [encode_rows(instances, version.columns)]
    if not isinstance(instances[0], dict):
        if len(version.inputs) != 1:
            raise BadRequest(_name_inputs(version, "each instance must be an object"))
        return [to_input_array(version.inputs[0], instances, "instances")]
    for index, instance in enumerate(instances):
        if not isinstance(instance, dict):
            raise BadRequest(f"instances[{index}] must be an object like instances[0]")
        _check_names(instance, version, f"instances[{index}]")
    return [
        to_input_array(spec, [instance[spec.name] for instance in instances], "instances") for spec in version.inputs
    ]


def _columns(inputs: Any, version: ServedVersion, max_rows: int) -> list[np.ndarray]:
    if isinstance(inputs, dict):
        _check_names(inputs, version, "inputs")
        for spec in version.inputs:
            _check_column_rows(inputs[spec.name], max_rows, f"inputs.{spec.name}")
        return [to_input_array(spec, inputs[spec.name], f"inputs.{spec.name}") for spec in version.inputs]
    if len(version.inputs) != 1:
        raise BadRequest(_name_inputs(version, "'inputs' must be an object"))
    _check_column_rows(inputs, max_rows, "inputs")
    return [to_input_array(version.inputs[0], inputs, "inputs")]


def _check_column_rows(value: Any, max_rows: int, where: str) -> None:
    if not isinstance(value, list):
        raise BadRequest(f"{where} must be a list with one entry per row")
    check_rows(len(value), max_rows, where)


def _check_names(given: dict[str, Any], version: ServedVersion, where: str) -> None:
    expected = [spec.name for spec in version.inputs]
    missing = [name for name in expected if name not in given]
    unknown = [name for name in given if name not in expected]
    if missing or unknown:
        raise BadRequest(
            f"{where}: the model's inputs are {expected}"
            + (f"; missing {missing}" if missing else "")
            + (f"; unknown {unknown}" if unknown else "")
        )


def _name_inputs(version: ServedVersion, what: str) -> str:
    names = [spec.name for spec in version.inputs]
    return f"this model has {len(names)} inputs {names}: {what} keyed by input name"


def encode_predict(outputs: list[np.ndarray], version: ServedVersion, rows: bool, class_names: bool = False) -> bytes:
    """The response body: `predictions` for the row format, `outputs` for the columnar one;
    with `class_names`, a classifier also answers the most likely class of each row by name."""
    names = [spec.name for spec in version.outputs]
    if len(outputs) == 1:
        value: Any = outputs[0]
    elif rows:
        value = [{name: out[i] for name, out in zip(names, outputs, strict=True)} for i in range(len(outputs[0]))]
    else:
        value = dict(zip(names, outputs, strict=True))
    body: dict[str, Any] = {"predictions" if rows else "outputs": value}
    if class_names:
        body["class_names"] = _class_names(outputs, version)
    return dumps(body, outputs)


def wants_class_names(body: Any) -> bool:
    """A trainyard extension: `"class_names": true` beside `instances` or `inputs`."""
    return isinstance(body, dict) and body.get("class_names") is True


def _class_names(outputs: list[np.ndarray], version: ServedVersion) -> list[Any]:
    probabilities = outputs[0]
    if version.classes is None or len(outputs) != 1 or probabilities.ndim != 2:
        raise BadRequest("class_names: this model is not a classifier with known classes")
    # One sigmoid unit: the second class when over 0.5; a softmax: the most probable class.
    single = probabilities.shape[1] == 1
    picked = (probabilities[:, 0] > 0.5).astype(int) if single else probabilities.argmax(axis=1)
    return [version.classes[i] if i < len(version.classes) else int(i) for i in picked]


def dumps(body: dict[str, Any], arrays: list[np.ndarray]) -> bytes:
    """JSON with numpy arrays inline; non-finite floats as TF Serving writes them (`NaN`)."""
    if all(a.dtype.kind != "f" or np.isfinite(a).all() for a in arrays):
        return orjson.dumps(body, option=_NUMPY)
    # orjson writes NaN as null; the standard library writes the NaN/Infinity literals.
    return json.dumps(body, default=_plain, separators=(",", ":")).encode()


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
