"""Receive a multipart upload as a stream: the file part goes to disk, hashed, under a size limit.

Starlette's form parser reads the whole body before the endpoint runs, so the limit would be
checked after the fact; this parser counts bytes as they arrive (with or without
Content-Length) and stops at the limit.
"""

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

# What a form may hold besides the file: a few short options (name, format, target, ...).
# Bounded so that a form of thousands of long fields, or a part header of 100 MB, is refused
# as it arrives instead of being held in memory.
MAX_FIELD_BYTES = 64 * 1024
MAX_FIELDS = 16
MAX_PART_HEADER_BYTES = 16 * 1024


class UploadTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"upload exceeds the limit of {limit} bytes")
        self.limit = limit


class BadUpload(ValueError):
    """The request is not a usable multipart upload."""


@dataclass
class ReceivedUpload:
    path: Path
    filename: str
    size_bytes: int
    sha256: str
    fields: dict[str, str] = field(default_factory=dict)


async def receive_upload(
    content_type: str, body: AsyncIterator[bytes], destination: Path, max_bytes: int
) -> ReceivedUpload:
    """Stream the multipart `body` into `destination` (the part named `file`).

    Raises:
        UploadTooLarge: the body passed `max_bytes`; `destination` is left for the caller to remove.
        BadUpload: not multipart, no `file` part, or a form field that is too long.
    """
    try:
        mime, options = parse_options_header(content_type)
    except (UnicodeEncodeError, ValueError):
        mime, options = b"", {}
    boundary = options.get(b"boundary")
    if mime != b"multipart/form-data" or not boundary:
        raise BadUpload("send the dataset as multipart/form-data with a part named 'file'")

    receiver = _PartReceiver(destination)
    parser = MultipartParser(boundary, callbacks=receiver.callbacks())
    received = 0
    try:
        async for chunk in body:
            received += len(chunk)
            if received > max_bytes:
                raise UploadTooLarge(max_bytes)
            parser.write(chunk)
            if receiver.error:  # no point reading the rest
                raise BadUpload(receiver.error)
        parser.finalize()
    except MultipartParseError as exc:
        raise BadUpload(f"the body is not valid multipart/form-data: {exc}") from exc
    finally:
        receiver.close()
    if receiver.error:
        raise BadUpload(receiver.error)
    if receiver.filename is None:
        raise BadUpload("the form has no file part named 'file'")
    if not receiver.file_complete:
        # The body stopped inside the file part (a dropped connection, a client bug): storing
        # what arrived would keep a silently truncated dataset.
        raise BadUpload("the upload ended before the file part did; the body is truncated")
    return ReceivedUpload(
        path=destination,
        filename=receiver.filename,
        size_bytes=receiver.file_bytes,
        sha256=receiver.hasher.hexdigest(),
        fields=receiver.fields,
    )


class _PartReceiver:
    """Callbacks for python-multipart: route each part to the file on disk or a small field."""

    def __init__(self, destination: Path) -> None:
        self.destination = destination
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.file_complete = False
        self.file_bytes = 0
        self.hasher = hashlib.sha256()
        self.error: str | None = None
        self._file: BinaryIO | None = None
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._part_name: str | None = None
        self._is_file = False
        self._value = bytearray()
        self._parts = 0
        self._header_bytes = 0

    def callbacks(self) -> "MultipartCallbacks":
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field_data,
            "on_header_value": self._header_value_data,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _part_begin(self) -> None:
        self._parts += 1
        if self._parts > MAX_FIELDS + 1 and self.error is None:
            self.error = f"the form has more than {MAX_FIELDS} fields besides 'file'"
        self._header_bytes = 0
        self._headers = {}
        self._part_name = None
        self._is_file = False
        self._value = bytearray()

    def _header_field_data(self, data: bytes, start: int, end: int) -> None:
        if self._header_room(end - start):
            self._header_field += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        if self._header_room(end - start):
            self._header_value += data[start:end]

    def _header_room(self, size: int) -> bool:
        self._header_bytes += size
        if self._header_bytes > MAX_PART_HEADER_BYTES:
            if self.error is None:
                self.error = f"a part's headers are longer than {MAX_PART_HEADER_BYTES} bytes"
            return False
        return True

    def _header_end(self) -> None:
        self._headers[self._header_field.strip().lower()] = self._header_value.strip()
        self._header_field = b""
        self._header_value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        self._part_name = name
        if name == "file":
            if self.filename is not None:
                self.error = "send exactly one part named 'file'"
                return
            self._is_file = True
            self.filename = options.get(b"filename", b"upload").decode("utf-8", "replace")
            self._file = self.destination.open("wb")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = memoryview(data)[start:end]  # no copy of each received chunk
        if self._is_file and self._file is not None:
            self._file.write(chunk)
            self.hasher.update(chunk)
            self.file_bytes += len(chunk)
            return
        self._value += chunk
        if len(self._value) > MAX_FIELD_BYTES:
            self.error = f"form field {self._part_name!r} is longer than {MAX_FIELD_BYTES} bytes"
            self._value = bytearray()

    def _part_end(self) -> None:
        if self._is_file:
            self.file_complete = True
            self.close()
        elif self._part_name and self.error is None:
            self.fields[self._part_name] = self._value.decode("utf-8", "replace")
