"""Property: any predict or infer body, random or hostile, is decoded or refused with a client
error (BadRequest 400, PayloadTooLarge 413) carrying a message; no other exception escapes."""

import json
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from app.errors import BadRequest, PayloadTooLarge
from app.serving.columns import ColumnSpec, encode_rows
from app.serving.signature import ServedVersion, TensorSpec
from app.serving.tfserving import decode_body
from app.serving.v2 import DATATYPES, decode_infer

MAX_ROWS = 20


def model_taking(dtype: str) -> ServedVersion:
    x, y = TensorSpec("x", np.dtype(dtype), (-1, 2)), TensorSpec("y", np.dtype("float32"), (-1, 1))
    return ServedVersion("m", 1, "onnx", Path("/m"), (x,), (y,))


FLOAT_MODEL, INT_MODEL = model_taking("float32"), model_taking("int8")
COLUMNS = (ColumnSpec("a"), ColumnSpec("b", vocabulary=("red", "blue")), ColumnSpec("c", fill=0.0))

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),  # any size: beyond 64 bits too
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.sampled_from(["x", "FP32", "INT8", "BOOL", "BYTES", "binary_data_size", "red"]),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                ["x", "a", "b", "c", "name", "shape", "datatype", "data", "parameters", "binary_data_size"]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)
# Mostly valid tensors with a few fields replaced: random ones alone stop at the first check.
VALID_TENSOR = {"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1.0, 2.0]}
tensors = st.one_of(
    st.dictionaries(st.sampled_from([*VALID_TENSOR, "parameters"]), values, max_size=2).map(
        lambda changes: {**VALID_TENSOR, **changes}
    ),
    st.fixed_dictionaries(
        {
            "name": st.just("x"),
            "shape": st.lists(st.one_of(st.integers(-2, 5), st.booleans()), max_size=3),
            "datatype": st.sampled_from(sorted(DATATYPES)),
        },
        optional={"data": values, "parameters": values},
    ),
)
infer_bodies = st.one_of(
    st.fixed_dictionaries(
        {"inputs": st.lists(tensors, min_size=1, max_size=2)},
        optional={"parameters": values, "outputs": values, "id": values},
    ),
    st.dictionaries(st.sampled_from(["parameters", "outputs", "id"]), values, min_size=1).map(
        lambda changes: {"inputs": [VALID_TENSOR], **changes}
    ),
    values,
)
tfserving_bodies = st.one_of(
    values,
    st.fixed_dictionaries({"instances": values}, optional={"signature_name": values, "class_names": values}),
    st.fixed_dictionaries({"inputs": values}),
)


def dumps(body: Any) -> bytes:
    """As a client would send it: orjson, or the standard library for what orjson refuses
    (NaN, integers beyond 64 bits)."""
    try:
        return orjson.dumps(body)
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(body).encode()


def refused_with_a_message(call: Any) -> None:
    try:
        call()
    except (BadRequest, PayloadTooLarge) as exc:
        assert exc.message
        assert exc.status_code in (400, 413)


@settings(max_examples=300, deadline=None)
@given(body=tfserving_bodies, model=st.sampled_from([FLOAT_MODEL, INT_MODEL]))
def test_any_tfserving_body_is_decoded_or_a_4xx(body: Any, model: ServedVersion) -> None:
    refused_with_a_message(lambda: decode_body(dumps(body), model, MAX_ROWS))


@settings(max_examples=300, deadline=None)
@given(
    body=infer_bodies,
    binary=st.binary(max_size=24),
    header=st.one_of(st.none(), st.integers(-5, 400).map(str), st.text(max_size=4)),
    model=st.sampled_from([FLOAT_MODEL, INT_MODEL]),
)
def test_any_infer_body_is_decoded_or_a_4xx(body: Any, binary: bytes, header: str | None, model: ServedVersion) -> None:
    raw = dumps(body)
    if header is not None and header.isdigit():
        header = str(len(raw))  # a binary tail after the JSON, as tritonclient sends
    refused_with_a_message(lambda: decode_infer(raw + binary, header, model, MAX_ROWS))


@settings(max_examples=300, deadline=None)
@given(instances=st.lists(st.one_of(values, st.lists(scalars, min_size=3, max_size=3)), min_size=1, max_size=4))
def test_any_raw_rows_are_encoded_or_a_4xx(instances: list[Any]) -> None:
    refused_with_a_message(lambda: encode_rows(instances, COLUMNS))


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=64))
def test_any_bytes_are_decoded_or_a_4xx(raw: bytes) -> None:
    refused_with_a_message(lambda: decode_body(raw, FLOAT_MODEL, MAX_ROWS))
    refused_with_a_message(lambda: decode_infer(raw, None, FLOAT_MODEL, MAX_ROWS))
