"""Property: any upload body and any .npz file, random or a valid one with bytes changed, is read
or refused with the reader's own error (BadUpload/UploadTooLarge → 400/413, DatasetError → 422)
carrying a message; no other exception escapes."""

import asyncio
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from app.datasets.npz import load_npz
from app.datasets.schema import DatasetError
from app.datasets.upload import BadUpload, UploadTooLarge, receive_upload
from tests.factories import csv_bytes, npz_bytes

BOUNDARY = "b0und"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"
VALID_FORM = (
    (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="name"\r\n\r\nd\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="d.csv"\r\n\r\n'
    ).encode()
    + csv_bytes(rows=4)
    + f"\r\n--{BOUNDARY}--\r\n".encode()
)
VALID_NPZ = npz_bytes(x=np.ones((4, 2), np.float32), y=np.arange(4) % 2)


@st.composite
def changed(draw: st.DrawFn, valid: bytes) -> bytes:
    """`valid` with a few bytes overwritten, a slice cut out, or random bytes inserted."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["overwrite", "cut", "insert"]))
        chunk = draw(st.binary(min_size=1, max_size=8))
        if action == "overwrite":
            data[at : at + len(chunk)] = chunk
        elif action == "cut":
            del data[at : at + len(chunk)]
        else:
            data[at:at] = chunk
    return bytes(data)


async def in_chunks(body: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


@settings(max_examples=200, deadline=None)
@given(
    body=st.one_of(changed(VALID_FORM), st.binary(max_size=200)),
    content_type=st.one_of(st.just(CONTENT_TYPE), st.text(max_size=40)),
    chunk=st.integers(1, 300),
)
def test_any_upload_body_is_received_or_refused_with_a_message(body: bytes, content_type: str, chunk: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        destination = Path(directory) / "upload.part"
        try:
            asyncio.run(receive_upload(content_type, in_chunks(body, chunk), destination, 10_000))
        except (BadUpload, UploadTooLarge) as exc:
            assert str(exc)


@settings(max_examples=300, deadline=None)
@given(data=st.one_of(changed(VALID_NPZ), st.binary(max_size=300)))
def test_any_npz_is_read_or_refused_with_a_message(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "d.npz"
        path.write_bytes(data)
        try:
            load_npz(path, 10_000)
        except DatasetError as exc:
            assert str(exc)
