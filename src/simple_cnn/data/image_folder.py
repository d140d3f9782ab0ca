"""Bring-your-own images: a folder or ``.tar(.gz)`` laid out as ``<split>/<class>/<image>``.

Like torchvision's ``ImageFolder``, one sub-folder per class, with ``train`` and ``test``
splits and an optional ``val`` split (used as the validation split when present). A class's
images may sit in sub-folders of its folder (``train/cat/indoor/1.png`` is a cat). Every format
Pillow reads is read; every mode and bit depth is converted to 8-bit RGB by its range (16-bit
gray is scaled, not clipped), then resized to a square ``image_size``. Files that are not
read (not under ``<split>/<class>/``, or not an image format) are logged by name.
"""

from __future__ import annotations

import io
import logging
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError

from simple_cnn.data.raw import RawImages
from simple_cnn.errors import DataError

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset(ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)
SPLITS = ("train", "val", "test")
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")


def _entries(path: Path) -> Iterator[tuple[PurePosixPath, bytes]]:
    """(relative path, bytes) of every file in a folder or a tar archive."""
    if path.is_dir():
        for file in sorted(path.rglob("*")):
            if file.is_file():
                yield PurePosixPath(file.relative_to(path).as_posix()), file.read_bytes()
        return
    try:
        with tarfile.open(path) as tar:
            for member in sorted(tar.getmembers(), key=lambda m: m.name):
                if member.isfile():
                    yield PurePosixPath(member.name), tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError) as error:
        raise DataError(f"{path} is not a readable folder or .tar(.gz) archive ({error}).") from error


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB of any mode: 16- and 32-bit gray scaled by their range (Pillow's own
    ``convert`` clips them, turning a 16-bit image white), palettes through RGBA."""
    if image.mode in _SIXTEEN_BIT or image.mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float64)
        full = {"F": 1.0}.get(image.mode, 65535.0 if image.mode in _SIXTEEN_BIT else None)
        if full is None:  # 32-bit integers: 8-bit or 16-bit data, as the values tell
            full = 255.0 if values.max() <= 255 else 65535.0
        gray = np.clip(np.rint(values * (255.0 / full)), 0, 255).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    if image.mode in ("P", "PA", "LA"):
        image = image.convert("RGBA")
    return image.convert("RGB")


def _log_skipped(path: Path, skipped: list[tuple[str, str]]) -> None:
    if not skipped:
        return
    shown = "; ".join(f"{name} ({why})" for name, why in skipped[:10])
    more = f"; and {len(skipped) - 10} more" if len(skipped) > 10 else ""
    logger.warning("%s: skipped %d file(s): %s%s.", path, len(skipped), shown, more)


def _collect(path: Path) -> dict[str, list[tuple[str, PurePosixPath, bytes]]]:
    """The image files of each split as (class, name, bytes); what is not read is logged."""
    files: dict[str, list[tuple[str, PurePosixPath, bytes]]] = {split: [] for split in SPLITS}
    skipped: list[tuple[str, str]] = []
    for name, data in _entries(path):
        parts = name.parts
        # allow one wrapping top-level folder, as in most archives
        split_at = next((i for i, part in enumerate(parts) if part in SPLITS), None)
        if split_at is None or len(parts) - split_at < 3:
            skipped.append((str(name), "not under <split>/<class>/"))
        elif name.suffix.lower() not in IMAGE_SUFFIXES:
            skipped.append((str(name), "not an image format Pillow reads"))
        else:
            files[parts[split_at]].append((parts[split_at + 1], name, data))
    _log_skipped(path, skipped)
    return files


def _check_classes(path: Path, files) -> list[str]:
    for split in ("train", "test"):
        if not files[split]:
            raise DataError(f"{path} holds no {split} images: expected {split}/<class>/<image>.")
    class_names = sorted({cls for cls, _, _ in files["train"]})
    if len(class_names) < 2:
        raise DataError(
            f"{path}: train/ has only one class ({class_names[0]!r}); a classifier needs at "
            "least two class folders."
        )
    for split in ("val", "test"):
        unknown = sorted({cls for cls, _, _ in files[split]} - set(class_names))
        if unknown:
            raise DataError(f"{path}: {split}/ has classes that train/ lacks: {', '.join(unknown)}.")
    return class_names


def _decode(files, index: dict[str, int], image_size: int, unreadable: list[str]):
    images = np.empty((len(files), image_size, image_size, 3), dtype=np.uint8)
    labels = np.empty(len(files), dtype=np.int64)
    for i, (cls, name, data) in enumerate(files):
        try:
            with Image.open(io.BytesIO(data)) as image:
                rgb = to_rgb(image).resize((image_size, image_size), Image.Resampling.BILINEAR)
                images[i] = np.asarray(rgb)
        except (UnidentifiedImageError, OSError, ValueError):
            unreadable.append(str(name))
        labels[i] = index[cls]
    return images, labels


def read_image_folder(path: str | Path, image_size: int = 32) -> RawImages:
    """Read ``<split>/<class>/<image>`` images into uint8 arrays of shape (N, size, size, 3)."""
    path = Path(path)
    if not path.exists():
        raise DataError(
            f"Image folder {path} does not exist. Create it with train/<class>/<image> and "
            "test/<class>/<image> files, or point the catalog entry image_folder "
            "(conf/base/catalog_ingestion.yml) at your images."
        )
    files = _collect(path)
    class_names = _check_classes(path, files)
    index = {name: i for i, name in enumerate(class_names)}
    unreadable: list[str] = []
    arrays = {split: _decode(files[split], index, image_size, unreadable)
              for split in SPLITS if files[split]}
    if unreadable:
        shown = ", ".join(unreadable[:10]) + (" ..." if len(unreadable) > 10 else "")
        raise DataError(
            f"{path}: {len(unreadable)} image(s) cannot be read: {shown}. Remove or replace them."
        )
    val = arrays.get("val", (None, None))
    return RawImages(*arrays["train"], *arrays["test"], class_names,
                     val_images=val[0], val_labels=val[1]).validate(str(path))


@dataclass(frozen=True)
class ImageFolder:
    """Where the images live; nothing is read until :meth:`read`."""

    path: Path

    def read(self, image_size: int = 32) -> RawImages:
        return read_image_folder(self.path, image_size)
