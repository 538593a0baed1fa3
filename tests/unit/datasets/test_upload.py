"""The streamed multipart receiver: fields, hashing, and the size limit counted on the wire."""

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.datasets.upload import BadUpload, UploadTooLarge, receive_upload

BOUNDARY = "----trainyard-test"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def multipart(file_bytes: bytes, **fields: str) -> bytes:
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="d.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n".encode()
        + file_bytes
        + b"\r\n"
    )
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


async def chunks(body: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def receive(body: bytes, destination: Path, limit: int = 10**6, content_type: str = CONTENT_TYPE):  # type: ignore[no-untyped-def]
    return asyncio.run(receive_upload(content_type, chunks(body), destination, limit))


def test_the_file_part_lands_on_disk_hashed_with_its_fields(tmp_path: Path) -> None:
    payload = b"a,b\n1,2\n" * 500
    upload = receive(multipart(payload, name="mine", target="b"), tmp_path / "up")
    assert (tmp_path / "up").read_bytes() == payload
    assert upload.sha256 == hashlib.sha256(payload).hexdigest()
    assert upload.size_bytes == len(payload) and upload.filename == "d.csv"
    assert upload.fields == {"name": "mine", "target": "b"}


def test_the_limit_stops_the_stream_as_soon_as_it_is_passed(tmp_path: Path) -> None:
    consumed = 0

    async def counting() -> AsyncIterator[bytes]:
        nonlocal consumed
        async for chunk in chunks(multipart(b"x" * 50_000)):
            consumed += len(chunk)
            yield chunk

    with pytest.raises(UploadTooLarge):
        asyncio.run(receive_upload(CONTENT_TYPE, counting(), tmp_path / "up", 10_000))
    assert consumed <= 11_000


def test_a_body_that_is_not_multipart_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BadUpload, match="multipart/form-data"):
        receive(b"{}", tmp_path / "up", content_type="application/json")


def test_a_form_without_a_file_part_is_refused(tmp_path: Path) -> None:
    field = 'Content-Disposition: form-data; name="name"'
    body = f"--{BOUNDARY}\r\n{field}\r\n\r\nx\r\n--{BOUNDARY}--\r\n"
    with pytest.raises(BadUpload, match="no file part"):
        receive(body.encode(), tmp_path / "up")


def test_a_body_cut_off_inside_the_file_part_is_refused(tmp_path: Path) -> None:
    body = multipart(b"a,b\n1,2\n" * 100)
    with pytest.raises(BadUpload, match="truncated"):
        receive(body[: len(body) // 2], tmp_path / "up")
