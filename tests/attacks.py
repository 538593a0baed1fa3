"""The worst requests issue 13 found, sized to a server's configured limits: each must be answered
with a 4xx (or a 503 when the CPU pool is busy) without starving other clients. Shared by the
starvation test (tests/e2e/test_no_starvation.py) and bench/starvation.py."""

import io
import json
import secrets
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from tests.factories import csv_bytes, image_bytes


@dataclass(frozen=True)
class Attack:
    """One hostile request: `request()` gives httpx.request's keyword arguments (call it for each
    send: an upload differs every time, so that the server parses it instead of finding it stored)."""

    name: str
    request: Callable[[], dict[str, Any]]


def attacks(model: str, input_name: str, max_upload_bytes: int, max_predict_bytes: int) -> list[Attack]:
    """The worst requests within (or just over) the limits of a server serving `model`."""

    def json_body(url: str, body: bytes, method: str = "POST") -> Callable[[], dict[str, Any]]:
        return lambda: {"method": method, "url": url, "content": body, "headers": {"content-type": "application/json"}}

    def upload(name: str, data: bytes, **fields: str) -> Callable[[], dict[str, Any]]:
        return lambda: {"method": "POST", "url": "/v1/datasets", "files": {"file": (name, data)}, "data": fields}

    # Predict: as many rows of zeros as fit the body limit (JSON parsing and the row check on the
    # pool), and a legal 10,000-row request that runs the model.
    zeros = b'{"instances": [' + b",".join([b"[0,0,0,0]"] * ((max_predict_bytes - 100) // 10)) + b"]}"
    rows = json.dumps({"instances": [[0.5, 0.5, 0.5, 0.5]] * 10_000}).encode()
    strings = json.dumps(
        {"inputs": [{"name": input_name, "shape": [1, 4], "datatype": "BYTES", "data": ["x" * 1000] * 4000}]}
    ).encode()
    csv = csv_bytes(rows=max(64, max_upload_bytes // 60), features=4)[: max_upload_bytes - 10_000]
    csv = csv[: csv.rindex(b"\n") + 1]
    return [
        Attack(
            "predict: body of zeros at the byte limit",
            json_body(f"/v1/models/{model}:predict", zeros[:max_predict_bytes]),
        ),
        Attack("predict: 10,000 rows", json_body(f"/v1/models/{model}:predict", rows)),
        Attack("infer: BYTES tensor of 4 MB for an FP32 input", json_body(f"/v2/models/{model}/infer", strings)),
        Attack(
            "predict: version beyond 64 bits", json_body(f"/v1/models/{model}/versions/{'9' * 20}:predict", rows[:100])
        ),
        Attack("upload: Parquet that decodes past the factor", upload("bomb.parquet", parquet_bomb(max_upload_bytes))),
        Attack("upload: NPZ whose header claims 800 GB", upload("bomb.npz", npz_claiming_800_gb())),
        Attack("upload: ZIP of tiny PNGs resized huge", upload("bomb.zip", tiny_pngs(), image_size="4096,4096")),
        Attack("upload: form fields of 60 kB up to the size limit", lambda: many_fields(max_upload_bytes // 61_000)),
        Attack("upload: CSV at the size limit", lambda: upload("big.csv", unique(csv))()),
        Attack("jobs: spec over the request limit", json_body("/v1/jobs", b'{"name": "' + b"x" * 3_000_000 + b'"}')),
    ]


def unique(data: bytes) -> bytes:
    """`data` with a different last row each time: an upload seen before is not parsed again."""
    return data + f"{secrets.randbelow(10**6) / 1e6},0,0,0,1\n".encode()


def parquet_bomb(max_upload_bytes: int) -> bytes:
    """A small Parquet file whose constant columns decode to far more than the upload may."""
    rows = max(1_000_000, max_upload_bytes)  # 8 bytes a cell x 3 columns: 24x the upload limit
    table = pa.table(
        {"a": pa.repeat(pa.scalar(1.0), rows), "b": pa.repeat(pa.scalar(2.0), rows), "y": pa.repeat(pa.scalar(1), rows)}
    )
    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd")
    return out.getvalue()


def npz_claiming_800_gb() -> bytes:
    header = repr({"descr": "<f4", "fortran_order": False, "shape": (200_000_000_000,)}).encode().ljust(118) + b"\n"
    member = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + b"\0" * 64
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("x.npy", member)
        archive.writestr("y.npy", member)
    return out.getvalue()


def tiny_pngs(count: int = 60) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for i in range(count):
            archive.writestr(f"{'ab'[i % 2]}/{i}.png", image_bytes(size=(1, 1)))
    return out.getvalue()


def many_fields(count: int) -> dict[str, Any]:
    boundary = "attack"
    field = b"v" * 60_000
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="f{i}"\r\n\r\n'.encode() + field + b"\r\n"
        for i in range(count)
    ]
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return {
        "method": "POST",
        "url": "/v1/datasets",
        "content": body,
        "headers": {"content-type": f"multipart/form-data; boundary={boundary}"},
    }
