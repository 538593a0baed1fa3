"""Limits on what one request may send or cause, through HTTP: every answer a 4xx naming the
field or the setting, never a 500, and nothing stored on the way."""

import io
import struct
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.db.migrate import upgrade_to_head
from app.main import create_app
from tests.factories import csv_bytes, image_zip_bytes, job_request, npz_bytes, parquet_bytes

HUGE_VERSION = "99999999999999999999"


@pytest.fixture
def small(tmp_path: Path) -> Iterator[TestClient]:
    """An API whose limits are small enough to reach with a few kB."""
    settings = Settings(home=tmp_path / "home", max_upload_bytes=50_000, max_unpack_factor=4, max_request_bytes=4096)
    upgrade_to_head(settings)
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        yield client


def stored_datasets(client: TestClient) -> int:
    return len(client.get("/v1/datasets").json()["items"])


def test_a_job_body_over_the_request_limit_is_a_413_before_it_is_read(small: TestClient) -> None:
    body = job_request("d", name="x" * 5000)

    response = small.post("/v1/jobs", json=body)

    assert response.status_code == 413
    assert "TRAINYARD_MAX_REQUEST_BYTES" in response.json()["error"]


def test_a_chunked_body_is_counted_as_it_streams(small: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"dataset_id": "'
        for _ in range(100):
            yield b"x" * 100
        yield b'"}'

    response = small.post("/v1/jobs", content=chunks(), headers={"content-type": "application/json"})

    assert response.status_code == 413 and "MAX_REQUEST_BYTES" in response.json()["error"]


def test_a_version_beyond_64_bits_is_a_422_on_every_route(small: TestClient) -> None:
    paths = {p: ops for p, ops in small.get("/openapi.json").json()["paths"].items() if "{version}" in p}
    assert len(paths) >= 7
    for template, operations in paths.items():
        path = template.replace("{name}", "m").replace("{version}", HUGE_VERSION)
        for method in operations:
            response = small.request(method, path, json={"instances": [[0]]})
            assert response.status_code in (404, 422), (method, path, response.text)
            if response.status_code == 422:
                assert "version" in response.json()["error"]


def test_a_label_cannot_move_to_a_version_beyond_64_bits_or_to_true(small: TestClient) -> None:
    for version in (2**64, True):
        response = small.put("/v1/models/m/labels/prod", json={"version": version})

        assert response.status_code == 422 and "version" in response.json()["error"]


@pytest.mark.parametrize(
    ("fit", "field"),
    [
        ('{"epochs": true}', "fit.epochs"),
        ('{"validation_split": NaN}', "fit.validation_split"),
        ('{"class_weight": {"0": Infinity}}', "fit.class_weight"),
    ],
)
def test_spec_numbers_are_finite_and_never_booleans(client: TestClient, dataset_id: str, fit: str, field: str) -> None:
    body = (
        f'{{"dataset_id": "{dataset_id}", "model": {{"layers": [{{"type": "Dense", "units": 3}}]}}, '
        f'"compile": {{"loss": "sparse_categorical_crossentropy"}}, "fit": {fit}}}'
    )

    response = client.post("/v1/jobs", content=body, headers={"content-type": "application/json"})

    assert response.status_code == 422, response.text
    assert field in response.json()["error"]
    assert client.get("/v1/jobs").json()["items"] == []


def test_a_class_weight_for_a_class_the_labels_lack_is_refused(client: TestClient, dataset_id: str) -> None:
    body = job_request(dataset_id, fit={"class_weight": {"0": 1.0, "7": 2.0}})

    response = client.post("/v1/jobs", json=body)

    assert response.status_code == 422 and "fit.class_weight.7" in response.json()["error"]


# --- multipart ---------------------------------------------------------------------------------

BOUNDARY = "----limits"


def form(*parts: bytes, tail: bytes = b"") -> tuple[bytes, dict[str, str]]:
    body = b"".join(parts) + f"--{BOUNDARY}--\r\n".encode() + tail
    return body, {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}


def part(name: str, value: bytes, extra_header: bytes = b"") -> bytes:
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"'.encode()
    if name == "file":
        head += b'; filename="d.csv"'
    return head + b"\r\n" + extra_header + b"\r\n" + value + b"\r\n"


def test_a_form_with_too_many_fields_is_a_400(small: TestClient) -> None:
    fields = [part(f"f{i}", b"v") for i in range(40)]
    body, headers = form(*fields, part("file", csv_bytes()))

    response = small.post("/v1/datasets", content=body, headers=headers)

    assert response.status_code == 400 and "more than 16 fields" in response.json()["error"]


def test_a_huge_part_header_is_a_400(small: TestClient) -> None:
    body, headers = form(part("file", csv_bytes(), extra_header=b"X-Pad: " + b"a" * 30_000 + b"\r\n"))

    response = small.post("/v1/datasets", content=body, headers=headers)

    assert response.status_code == 400 and "header" in response.json()["error"]


def test_garbage_after_the_boundary_is_a_400(small: TestClient) -> None:
    body, headers = form(part("name", b"n"), tail=b"")
    body = body.replace(f"--{BOUNDARY}\r\nContent".encode(), f"--{BOUNDARY}garbage\r\nContent".encode(), 1)

    response = small.post("/v1/datasets", content=body, headers=headers)

    assert response.status_code == 400 and "multipart" in response.json()["error"]
    assert stored_datasets(small) == 0


# --- what an upload decodes into ---------------------------------------------------------------


def npy_claiming(shape: tuple[int, ...], data: bytes) -> bytes:
    header = repr({"descr": "<f4", "fortran_order": False, "shape": shape}).encode()
    header = header.ljust(118) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + data


def npz_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_an_npz_header_claiming_800_gb_is_refused_before_allocating(small: TestClient) -> None:
    data = npz_of({"x.npy": npy_claiming((200_000_000_000,), b"\0" * 64), "y.npy": npy_claiming((16,), b"\0" * 64)})

    response = small.post("/v1/datasets", files={"file": ("d.npz", data)})

    assert response.status_code == 422
    assert "'x'" in response.json()["error"] and "header claims" in response.json()["error"]


def test_an_npz_whose_central_directory_lies_is_refused(small: TestClient) -> None:
    data = bytearray(npz_bytes(x=np.ones((8, 2), np.float32), y=np.arange(8) % 2))
    # Make the central directory claim a smaller size for the first member than its data.
    directory = data.rindex(b"PK\x01\x02", 0, data.rindex(b"PK\x01\x02"))
    (size,) = struct.unpack_from("<I", data, directory + 24)
    struct.pack_into("<I", data, directory + 24, size - 16)

    response = small.post("/v1/datasets", files={"file": ("d.npz", bytes(data))})

    assert response.status_code == 422, response.text
    assert stored_datasets(small) == 0


def test_an_npz_that_unpacks_past_the_factor_is_refused(small: TestClient) -> None:
    out = io.BytesIO()
    np.savez_compressed(out, x=np.zeros((60_000, 2), np.float32), y=np.arange(60_000) % 2)  # ~1 MB unpacked
    data = out.getvalue()
    assert len(data) < 50_000

    response = small.post("/v1/datasets", files={"file": ("d.npz", data)})

    assert response.status_code == 422 and "MAX_UNPACK_FACTOR" in response.json()["error"]


def test_a_parquet_that_decodes_past_the_factor_is_refused(small: TestClient) -> None:
    rows = 40_000  # 3 columns x 8 bytes x 40k rows ≈ 960 kB decoded, from a few kB of file
    data = parquet_bytes({"a": [1.0] * rows, "b": [2.0] * rows, "y": [0, 1] * (rows // 2)})
    assert len(data) < 50_000

    response = small.post("/v1/datasets", files={"file": ("d.parquet", data)})

    assert response.status_code == 422 and "MAX_UNPACK_FACTOR" in response.json()["error"]


def test_tiny_images_resized_past_the_factor_are_refused_before_decoding(small: TestClient) -> None:
    data = image_zip_bytes({"cat": 3, "dog": 3})

    response = small.post("/v1/datasets", files={"file": ("d.zip", data)}, data={"image_size": "512,512"})

    assert response.status_code == 422 and "image_size" in response.json()["error"]
    assert stored_datasets(small) == 0


def test_predict_urls_take_post_only(small: TestClient) -> None:
    for method in ("GET", "PUT", "DELETE"):
        response = small.request(method, "/v1/models/m/versions/1:predict")

        assert response.status_code == 405 and response.headers["allow"] == "POST"
