"""A ZIP of PNG/JPEG images in class folders → uint8 image arrays and class indices.

The layout is the one `keras.utils.image_dataset_from_directory` reads: `class_a/x.png`,
`class_b/y.jpg` (optionally under one wrapping folder); classes are the sorted folder names.
The archive is checked before anything is decompressed: member count, declared sizes, names.
"""

import io
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from app.datasets.array_file import NpyAppender
from app.datasets.schema import (
    DatasetError,
    ParseLimits,
    StoredDataset,
    require_two_classes,
    target_schema,
)
from app.datasets.stats import RunningStats, axis_names, classification_stats, numeric_entry
from app.ml.data import FEATURES_FILE, TARGET_FILE

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
DECODABLE_FORMATS = ("PNG", "JPEG")
COLOR_MODES = {"rgb": ("RGB", 3), "grayscale": ("L", 1), "rgba": ("RGBA", 4)}
# A compressed image that claims more pixels than this is refused before decoding.
MAX_SOURCE_PIXELS = 40_000_000
MAX_IMAGE_BYTES = 64 << 20
BLOCK_BYTES = 8 << 20  # decoded pixels held before they are written
# What Pillow raises for a broken or hostile file.
UNDECODABLE = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


@dataclass(frozen=True)
class ImageEntry:
    name: str  # the member's name in the archive
    label: str  # its class folder


def store_images(
    path: Path,
    image_size: tuple[int, int],
    color_mode: str,
    limits: ParseLimits,
    directory: Path,
) -> StoredDataset:
    """Decode every image, resized to `image_size` (height, width), into `directory`."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise DatasetError("the file is not a valid ZIP archive") from exc
    with archive:
        entries = list_images(archive, limits)
        classes = sorted({entry.label for entry in entries})
        require_two_classes(classes, "the ZIP", len(entries), "put each class in its own folder")
        index = {label: i for i, label in enumerate(classes)}
        height, width = image_size
        channels = COLOR_MODES[color_mode][1]
        # What the stored images will take, known before any is decoded: a few tiny PNGs resized
        # to a large image_size would otherwise write gigabytes.
        decoded = len(entries) * height * width * channels
        if decoded > limits.max_unpacked_bytes:
            raise DatasetError(
                f"{len(entries)} images of {height}x{width}x{channels} pixels decode to {decoded} bytes, over the "
                f"limit of {limits.max_unpacked_bytes} (TRAINYARD_MAX_UPLOAD_BYTES x TRAINYARD_MAX_UNPACK_FACTOR); "
                "use a smaller image_size or fewer images"
            )
        per_block = max(1, BLOCK_BYTES // (height * width * channels))
        running = RunningStats(channels)
        counts = np.zeros(len(classes), dtype=np.int64)
        with (
            NpyAppender(directory / FEATURES_FILE, (height, width, channels), "uint8") as x_file,
            NpyAppender(directory / TARGET_FILE, (), "int64") as y_file,
        ):
            for start in range(0, len(entries), per_block):
                chunk = entries[start : start + per_block]
                block = np.stack([decode(archive, e.name, image_size, color_mode) for e in chunk])
                labels = np.array([index[e.label] for e in chunk], dtype=np.int64)
                x_file.append(block)
                y_file.append(labels)
                running.update(block.reshape(-1, channels))
                counts += np.bincount(labels, minlength=len(classes))
    names = axis_names([height, width, channels])
    return StoredDataset(
        n_rows=len(entries),
        features={
            "shape": [height, width, channels],
            "dtype": "uint8",
            "columns": None,
            "column_types": None,
            "color_mode": color_mode,
        },
        target=target_schema([], "int64", None, classes),
        stats={
            "features": [numeric_entry(name, running.summary(i)) for i, name in enumerate(names)],
            "target": classification_stats(classes, counts),
        },
    )


def list_images(archive: zipfile.ZipFile, limits: ParseLimits) -> list[ImageEntry]:
    """The archive's images and their classes, sorted; refuses unsafe or oversized archives."""
    members = archive.infolist()
    if len(members) > limits.max_archive_files:
        raise DatasetError(
            f"the ZIP holds {len(members)} entries, over the limit of {limits.max_archive_files} "
            "(TRAINYARD_MAX_ARCHIVE_FILES)"
        )
    declared = sum(info.file_size for info in members)
    if declared > limits.max_unpacked_bytes:
        raise DatasetError(f"the ZIP unpacks to {declared} bytes, over the limit of {limits.max_unpacked_bytes}")
    paths: list[tuple[str, tuple[str, ...]]] = []
    for info in members:
        parts = safe_parts(info.filename)
        if info.is_dir() or not is_image_name(parts):
            continue
        if info.file_size > MAX_IMAGE_BYTES:
            raise DatasetError(
                f"image {info.filename!r} is {info.file_size} bytes; the limit per image is {MAX_IMAGE_BYTES}"
            )
        paths.append((info.filename, parts))
    if not paths:
        raise DatasetError(
            "the ZIP holds no .png or .jpg images; put them in one folder per class (class_a/x.png, class_b/y.jpg)"
        )
    depth = 0  # strip wrapping folders common to every image: data/class_a/x.png
    while all(len(parts) > depth + 2 for _, parts in paths) and (len({parts[depth] for _, parts in paths}) == 1):
        depth += 1
    entries = []
    for name, parts in sorted(paths):
        if len(parts) - depth < 2:
            raise DatasetError(
                f"image {name!r} is not in a class folder; put each image in a folder named "
                "after its class (class_a/x.png)"
            )
        entries.append(ImageEntry(name=name, label=parts[depth]))
    return entries


def safe_parts(name: str) -> tuple[str, ...]:
    """The parts of a member's path; refuses absolute paths and `..` (a path-traversal attempt)."""
    normalized = name.replace("\\", "/")
    path = PurePosixPath(normalized)
    if normalized.startswith("/") or (len(normalized) > 1 and normalized[1] == ":"):
        raise DatasetError(f"the ZIP member {name!r} has an absolute path; archives must be relative")
    if ".." in path.parts:
        raise DatasetError(f"the ZIP member {name!r} points outside the archive ('..')")
    return path.parts


def is_image_name(parts: tuple[str, ...]) -> bool:
    # macOS adds __MACOSX/ and ._ files; hidden files are not images of a class either.
    if not parts or parts[0] == "__MACOSX" or any(part.startswith(".") for part in parts):
        return False
    return parts[-1].lower().endswith(IMAGE_SUFFIXES)


def decode(archive: zipfile.ZipFile, name: str, image_size: tuple[int, int], color_mode: str) -> np.ndarray:
    """One image as uint8 (height, width, channels), resized bilinearly as Keras does."""
    mode, channels = COLOR_MODES[color_mode]
    height, width = image_size
    try:
        with Image.open(io.BytesIO(archive.read(name))) as image:
            if image.format not in DECODABLE_FORMATS:
                raise DatasetError(f"image {name!r} is {image.format}, not PNG or JPEG")
            if image.width * image.height > MAX_SOURCE_PIXELS:
                raise DatasetError(
                    f"image {name!r} is {image.width}x{image.height} pixels, over the limit of "
                    f"{MAX_SOURCE_PIXELS} pixels"
                )
            image.draft(mode, (width, height))  # JPEG: decode at a reduced scale when it can
            resized = image.convert(mode).resize((width, height), Image.Resampling.BILINEAR)
            pixels = np.asarray(resized, dtype=np.uint8)
    except DatasetError:
        raise
    except (*UNDECODABLE, zipfile.BadZipFile, zlib.error) as exc:
        raise DatasetError(f"image {name!r} cannot be decoded as PNG or JPEG: {exc}") from exc
    return pixels.reshape(height, width, channels)
