"""ZIPs of images in class folders: decoded, resized, labelled; hostile archives refused."""

import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from app.datasets.schema import DatasetError
from tests.factories import (
    LIMITS,
    image_bytes,
    image_zip_bytes,
    store_upload,
    stored_arrays,
    zip_bytes,
)


def test_images_become_uint8_arrays_labelled_by_their_sorted_class_folders(
    tmp_path: Path,
) -> None:
    data = image_zip_bytes({"dog": 2, "cat": 3})
    stored, directory = store_upload(tmp_path, "pets.zip", data, image_size="6,4")
    x, y = stored_arrays(directory)
    assert x.shape == (5, 6, 4, 3) and x.dtype == np.uint8
    assert stored.features["shape"] == [6, 4, 3] and stored.features["dtype"] == "uint8"
    assert stored.target["classes"] == ["cat", "dog"] and y.tolist() == [0, 0, 0, 1, 1]
    assert stored.stats["target"]["histogram"] == {"cat": 3, "dog": 2}
    assert [entry["name"] for entry in stored.stats["features"]] == [
        "x[..., 0]",
        "x[..., 1]",
        "x[..., 2]",
    ]
    assert x[0, :, :, 2].min() > 190  # the blue channel of a (0, 0, 200) image survives


@pytest.mark.parametrize(("mode", "channels"), [("grayscale", 1), ("rgba", 4)])
def test_the_colour_mode_sets_the_channels(tmp_path: Path, mode: str, channels: int) -> None:
    _, directory = store_upload(tmp_path, "pets.zip", image_zip_bytes(), image_size="5,5", color_mode=mode)
    assert stored_arrays(directory)[0].shape == (5, 5, 5, channels)


def test_a_wrapping_folder_and_macos_clutter_are_ignored(tmp_path: Path) -> None:
    members = {
        "photos/cat/a.png": image_bytes(),
        "photos/dog/b.jpg": image_bytes(fmt="JPEG"),
        "photos/.DS_Store": b"\x00",
        "__MACOSX/photos/cat/._a.png": b"\x00",
        "photos/README.txt": b"hello",
    }
    stored, _ = store_upload(tmp_path, "pets.zip", zip_bytes(members), image_size="4,4")
    assert stored.target["classes"] == ["cat", "dog"] and stored.n_rows == 2


def test_an_undecodable_image_is_named(tmp_path: Path) -> None:
    members = {"cat/a.png": image_bytes(), "dog/broken.jpg": b"not really a jpeg"}
    with pytest.raises(DatasetError, match=r"image 'dog/broken.jpg' cannot be decoded"):
        store_upload(tmp_path, "pets.zip", zip_bytes(members), image_size="4,4")


def test_an_image_in_another_format_is_named(tmp_path: Path) -> None:
    members = {"cat/a.png": image_bytes(), "dog/b.png": image_bytes(fmt="GIF")}
    with pytest.raises(DatasetError, match=r"image 'dog/b.png' is GIF, not PNG or JPEG"):
        store_upload(tmp_path, "pets.zip", zip_bytes(members), image_size="4,4")


@pytest.mark.parametrize(
    ("name", "message"),
    [("../escape/a.png", r"points outside the archive"), ("/etc/a.png", r"has an absolute path")],
)
def test_member_paths_that_leave_the_archive_are_refused(tmp_path: Path, name: str, message: str) -> None:
    members = {"cat/a.png": image_bytes(), "dog/b.png": image_bytes(), name: image_bytes()}
    with pytest.raises(DatasetError, match=message):
        store_upload(tmp_path, "pets.zip", zip_bytes(members))


def test_more_entries_than_the_limit_are_refused(tmp_path: Path) -> None:
    limits = replace(LIMITS, max_archive_files=4)
    with pytest.raises(DatasetError, match=r"holds 5 entries, over the limit of 4"):
        store_upload(tmp_path, "pets.zip", image_zip_bytes(), limits=limits)


def test_a_zip_bomb_is_refused_from_its_declared_sizes_before_decompressing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("cat/a.png", b"\x00" * 5_000_000)  # compresses to a few KB
        archive.writestr("dog/b.png", image_bytes())
    limits = replace(LIMITS, max_unpacked_bytes=1_000_000)
    with pytest.raises(DatasetError, match=r"the ZIP unpacks to \d+ bytes, over the limit"):
        store_upload(tmp_path, "pets.zip", path.read_bytes(), limits=limits)


def test_an_image_outside_a_class_folder_is_named(tmp_path: Path) -> None:
    members = {"cat/a.png": image_bytes(), "stray.png": image_bytes()}
    with pytest.raises(DatasetError, match=r"image 'stray.png' is not in a class folder"):
        store_upload(tmp_path, "pets.zip", zip_bytes(members))


def test_a_single_class_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"the ZIP has a single class \('cat'\) in all 2 rows"):
        store_upload(tmp_path, "pets.zip", image_zip_bytes({"cat": 2}))


def test_a_zip_without_images_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"holds no .png or .jpg images"):
        store_upload(tmp_path, "pets.zip", zip_bytes({"notes.txt": b"hi"}))


def test_a_file_that_is_not_a_zip_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not a valid ZIP archive"):
        store_upload(tmp_path, "pets.zip", b"PK? no")
