"""Open Inference Protocol tensors: every datatype, flat or nested data, binary data, errors."""

import struct
from pathlib import Path

import numpy as np
import orjson
import pytest

from app.errors import BadRequest
from app.serving.signature import ServedVersion, TensorSpec
from app.serving.v2 import DATATYPES, decode_infer, encode_infer

MAX_ROWS = 10_000


def model_taking(dtype: str, shape: tuple[int, ...] = (-1, 2)) -> ServedVersion:
    spec = TensorSpec("x", np.dtype(dtype), shape)
    out = TensorSpec("y", np.dtype(dtype), shape)
    return ServedVersion("m", 1, "onnx", Path("/m"), (spec,), (out,))


NUMERIC = [name for name in DATATYPES if name != "BYTES"]


@pytest.mark.parametrize("datatype", NUMERIC)
def test_every_numeric_datatype_decodes_from_json_and_binary_and_encodes_back(
    datatype: str,
) -> None:
    dtype = DATATYPES[datatype]
    values = np.array([[1, 0], [1, 1]], dtype=dtype)
    model = model_taking(dtype.name)
    as_json = {"name": "x", "shape": [2, 2], "datatype": datatype, "data": values.tolist()}
    raw = orjson.dumps({"inputs": [as_json]})
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [2, 2],
                    "datatype": datatype,
                    "parameters": {"binary_data_size": values.nbytes},
                }
            ]
        }
    )

    from_json = decode_infer(raw, None, model, MAX_ROWS)
    from_binary = decode_infer(header + values.tobytes(), str(len(header)), model, MAX_ROWS)

    for request in (from_json, from_binary):
        assert request.inputs[0].dtype == dtype
        np.testing.assert_array_equal(request.inputs[0], values)
    body, _ = encode_infer(from_json, [values], model)
    output = orjson.loads(body)["outputs"][0]
    assert output["datatype"] == datatype and output["shape"] == [2, 2]
    np.testing.assert_array_equal(np.array(output["data"], dtype=dtype).reshape(2, 2), values)


def test_flat_and_nested_data_are_the_same_tensor() -> None:
    model = model_taking("float32")
    flat = {"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3, 4]}
    nested = dict(flat, data=[[1, 2], [3, 4]])

    a = decode_infer(orjson.dumps({"inputs": [flat]}), None, model, MAX_ROWS).inputs[0]
    b = decode_infer(orjson.dumps({"inputs": [nested]}), None, model, MAX_ROWS).inputs[0]

    np.testing.assert_array_equal(a, b)


def test_the_id_is_echoed_and_requested_binary_outputs_follow_the_json_header() -> None:
    model = model_taking("float32")
    raw = orjson.dumps(
        {
            "id": "req-7",
            "parameters": {"anything": 1},
            "inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}],
            "outputs": [{"name": "y", "parameters": {"binary_data": True}}],
        }
    )
    request = decode_infer(raw, None, model, MAX_ROWS)

    body, header_length = encode_infer(request, [np.array([[5, 6]], np.float32)], model)

    assert header_length is not None
    header = orjson.loads(body[:header_length])
    assert header["id"] == "req-7" and header["outputs"][0]["parameters"] == {"binary_data_size": 8}
    np.testing.assert_array_equal(np.frombuffer(body[header_length:], np.float32), [5, 6])


def test_bytes_tensors_decode_from_strings_and_length_prefixed_binary() -> None:
    model = model_taking("object", (-1,))
    packed = b"".join(struct.pack("<I", len(s)) + s for s in (b"ab", b"c"))
    tensor = {"name": "x", "shape": [2], "datatype": "BYTES"}
    header = orjson.dumps({"inputs": [dict(tensor, parameters={"binary_data_size": len(packed)})]})

    from_binary = decode_infer(header + packed, str(len(header)), model, MAX_ROWS).inputs[0]
    from_json = decode_infer(orjson.dumps({"inputs": [dict(tensor, data=["ab", "c"])]}), None, model, MAX_ROWS)

    assert from_binary.tolist() == from_json.inputs[0].tolist() == [b"ab", b"c"]
    with pytest.raises(BadRequest, match="takes float32 numbers"):
        decode_infer(header + packed, str(len(header)), model_taking("float32", (-1,)), MAX_ROWS)


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        ({"name": "x", "shape": [1, 2], "datatype": "FP99", "data": [1, 2]}, "unknown datatype"),
        ({"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2]}, "needs 3 elements"),
        ({"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}, "shape [2]"),
        ({"name": "z", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}, "unknown ['z']"),
        ({"name": "x", "shape": [1, 2], "datatype": "INT32", "data": [1.5, 2]}, "integers"),
        ({"name": "x", "shape": [1, 2], "datatype": "FP32", "data": ["a", 2]}, "numbers"),
    ],
)
def test_bad_tensors_are_400s_that_say_what_is_wrong(tensor: dict, message: str) -> None:
    with pytest.raises(BadRequest, match=message.replace("[", r"\[").replace("]", r"\]")):
        decode_infer(orjson.dumps({"inputs": [tensor]}), None, model_taking("float32"), MAX_ROWS)
