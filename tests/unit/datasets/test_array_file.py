"""Streamed .npy files: written block by block, read back by numpy, rewritten in place."""

from pathlib import Path

import numpy as np

from app.datasets.array_file import NpyAppender, rewrite_rows


def test_blocks_appended_read_back_as_one_array(tmp_path: Path) -> None:
    path = tmp_path / "x.npy"
    blocks = [np.arange(6, dtype=np.float32).reshape(2, 3), np.ones((1, 3), dtype=np.float32)]
    with NpyAppender(path, (3,), np.float32) as appender:
        for block in blocks:
            appender.append(block)
    loaded = np.load(path, mmap_mode="r")
    assert loaded.shape == (3, 3) and loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, np.concatenate(blocks))


def test_an_empty_file_is_a_valid_array_with_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "y.npy"
    NpyAppender(path, (), np.int64).close()
    assert np.load(path).shape == (0,)


def test_rows_are_rewritten_in_place_a_block_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "y.npy"
    np.save(path, np.arange(100_000, dtype=np.int64))
    rewrite_rows(path, lambda block: block * 2)
    np.testing.assert_array_equal(np.load(path), np.arange(100_000) * 2)
