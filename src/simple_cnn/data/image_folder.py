"""Bring-your-own images: a folder or ``.tar(.gz)`` laid out as ``<split>/<class>/<image>``.

Like torchvision's ``ImageFolder``, one sub-folder per class, with ``train`` and ``test``
splits. Images (PNG or JPEG) are converted to RGB and resized to a square ``image_size``.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError

from simple_cnn.data.raw import RawImages
from simple_cnn.errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
SPLITS = ("train", "test")


def _entries(path: Path) -> Iterator[tuple[PurePosixPath, bytes]]:
    """(relative path, bytes) of every image file in a folder or a tar archive."""
    if path.is_dir():
        for file in sorted(path.rglob("*")):
            if file.is_file() and file.suffix.lower() in IMAGE_SUFFIXES:
                yield PurePosixPath(file.relative_to(path).as_posix()), file.read_bytes()
        return
    try:
        with tarfile.open(path) as tar:
            for member in sorted(tar.getmembers(), key=lambda m: m.name):
                name = PurePosixPath(member.name)
                if member.isfile() and name.suffix.lower() in IMAGE_SUFFIXES:
                    yield name, tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError) as error:
        raise DataError(f"{path} is not a readable folder or .tar(.gz) archive ({error}).") from error


def read_image_folder(path: str | Path, image_size: int = 32) -> RawImages:
    """Read ``<split>/<class>/<image>`` images into uint8 arrays of shape (N, size, size, 3)."""
    path = Path(path)
    if not path.exists():
        raise DataError(
            f"Image folder {path} does not exist. Create it with train/<class>/<image> and "
            "test/<class>/<image> files, or point the catalog entry image_folder "
            "(conf/base/catalog_ingestion.yml) at your images."
        )
    files: dict[str, list[tuple[str, PurePosixPath, bytes]]] = {split: [] for split in SPLITS}
    for name, data in _entries(path):
        parts = name.parts
        # allow one wrapping top-level folder, as in most archives
        split_at = next((i for i, part in enumerate(parts) if part in SPLITS), None)
        if split_at is None or len(parts) - split_at != 3:
            continue
        files[parts[split_at]].append((parts[split_at + 1], name, data))
    for split in SPLITS:
        if not files[split]:
            raise DataError(
                f"{path} holds no {split} images: expected {split}/<class>/<image>.png|jpg."
            )
    class_names = sorted({cls for cls, _, _ in files["train"]})
    if len(class_names) < 2:
        raise DataError(
            f"{path}: train/ has only one class ({class_names[0]!r}); a classifier needs at "
            "least two class folders."
        )
    unknown = sorted({cls for cls, _, _ in files["test"]} - set(class_names))
    if unknown:
        raise DataError(f"{path}: test/ has classes that train/ lacks: {', '.join(unknown)}.")

    index = {name: i for i, name in enumerate(class_names)}
    arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    unreadable: list[str] = []
    for split in SPLITS:
        images = np.empty((len(files[split]), image_size, image_size, 3), dtype=np.uint8)
        labels = np.empty(len(files[split]), dtype=np.int64)
        for i, (cls, name, data) in enumerate(files[split]):
            try:
                with Image.open(io.BytesIO(data)) as image:
                    image = image.convert("RGB").resize(
                        (image_size, image_size), Image.Resampling.BILINEAR
                    )
                    images[i] = np.asarray(image)
            except (UnidentifiedImageError, OSError, ValueError):
                unreadable.append(str(name))
            labels[i] = index[cls]
        arrays[split] = images, labels
    if unreadable:
        shown = ", ".join(unreadable[:10]) + (" ..." if len(unreadable) > 10 else "")
        raise DataError(
            f"{path}: {len(unreadable)} image(s) cannot be read: {shown}. Remove or replace them."
        )
    return RawImages(*arrays["train"], *arrays["test"], class_names).validate(str(path))


@dataclass(frozen=True)
class ImageFolder:
    """Where the images live; nothing is read until :meth:`read`."""

    path: Path

    def read(self, image_size: int = 32) -> RawImages:
        return read_image_folder(self.path, image_size)
