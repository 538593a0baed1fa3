"""Write a .npy file block by block, so that a dataset never has to fit in memory at once.

The row count is only known at the end, so the header is written with room to spare and
rewritten on close; `np.load(..., mmap_mode="r")` reads the result like any other .npy file.
"""

import struct
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

MAGIC = b"\x93NUMPY\x01\x00"  # format version 1.0: a 2-byte header length
HEADER_BYTES = 256  # a multiple of 64, as numpy aligns it; fits any shape we write
REWRITE_ROWS = 65_536


def npy_header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    """The .npy header for a C-ordered array, padded to HEADER_BYTES."""
    described = {
        "descr": np.lib.format.dtype_to_descr(dtype),
        "fortran_order": False,
        "shape": shape,
    }
    text = repr(described).encode("latin1")
    room = HEADER_BYTES - len(MAGIC) - 2 - 1  # the text ends with a newline
    if len(text) > room:
        raise ValueError(f"shape {shape} does not fit in a {HEADER_BYTES}-byte .npy header")
    text = text.ljust(room) + b"\n"
    return MAGIC + struct.pack("<H", len(text)) + text


class NpyAppender:
    """Append blocks of rows (each of shape `row_shape`, cast to `dtype`) to a .npy file."""

    def __init__(self, path: Path, row_shape: tuple[int, ...], dtype: npt.DTypeLike) -> None:
        self.path = path
        self.row_shape = tuple(row_shape)
        self.dtype = np.dtype(dtype)
        self.rows = 0
        self._file: BinaryIO | None = path.open("wb")
        self._file.write(npy_header(self.dtype, (0, *self.row_shape)))

    def append(self, block: np.ndarray) -> None:
        if tuple(block.shape[1:]) != self.row_shape:
            raise ValueError(f"a block of shape {block.shape} does not hold rows of {self.row_shape}")
        if self._file is None:
            raise ValueError(f"{self.path} is already closed")
        self._file.write(np.ascontiguousarray(block, dtype=self.dtype).data)
        self.rows += block.shape[0]

    def close(self) -> int:
        """Write the final row count into the header; returns it."""
        if self._file is not None:
            self._file.seek(0)
            self._file.write(npy_header(self.dtype, (self.rows, *self.row_shape)))
            self._file.close()
            self._file = None
        return self.rows

    def __enter__(self) -> "NpyAppender":
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def rewrite_rows(path: Path, change: Callable[[np.ndarray], np.ndarray | None]) -> None:
    """Apply `change` to the rows of a stored 2-D or 1-D .npy file, a block at a time, in place.

    `change` may modify its block in place (return None) or return a replacement of the same
    shape and dtype. Blocks are read and written with plain file I/O, not a memory map, so the
    process's resident memory stays at one block whatever the file's size.
    """
    with path.open("r+b") as handle:
        version = np.lib.format.read_magic(handle)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(handle)
        if fortran_order:
            raise ValueError(f"{path} is Fortran-ordered")
        start = handle.tell()
        row_items = int(np.prod(shape[1:], dtype=np.int64))
        row_bytes = row_items * dtype.itemsize
        for first in range(0, shape[0], REWRITE_ROWS):
            count = min(REWRITE_ROWS, shape[0] - first)
            handle.seek(start + first * row_bytes)
            block = np.frombuffer(bytearray(handle.read(count * row_bytes)), dtype=dtype)
            block = block.reshape((count, *shape[1:]))
            changed = change(block)
            handle.seek(start + first * row_bytes)
            handle.write(np.ascontiguousarray(block if changed is None else changed).data)
