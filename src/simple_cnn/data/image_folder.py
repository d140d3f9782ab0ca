"""Bring-your-own images: a folder or ``.tar(.gz)`` laid out as ``<split>/<class>/<image>``.

Like torchvision's ``ImageFolder``, one sub-folder per class, with ``train`` and ``test``
splits and an optional ``val`` split (used as the validation split when present). A class's
images may sit in sub-folders of its folder (``train/cat/indoor/1.png`` is a cat). Each file is
decoded by :mod:`simple_cnn.data.decode` (the formats it names, EXIF orientation, alpha on
white, every mode by its range), then resized to a square ``image_size``. Files that are not
read (not under ``<split>/<class>/``, or not an image format) are logged by name. Files are
read and decoded one at a time, and a file, the whole read, or an image's pixel count or
aspect ratio past :class:`Limits` is refused by name: a crafted archive cannot exhaust the
memory.
"""

from __future__ import annotations

import logging
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath

import numpy as np

from simple_cnn.data.decode import (
    FORMATS,
    IMAGE_SUFFIXES,
    Limits,
    TooLarge,
    decode,
    fit_to_square,
    squash_to_square,
)
from simple_cnn.data.raw import RawImages
from simple_cnn.errors import DataError

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
NOT_AN_IMAGE = f"not one of the image formats read ({', '.join(FORMATS)})"


@dataclass(frozen=True)
class _Entry:
    name: PurePosixPath
    size: int
    read: Callable[[], bytes]


class Source:
    """A folder or ``.tar(.gz)`` on any filesystem: a local path or an fsspec URL
    (``s3://bucket/photos``) with the storage options that reach it (credentials, fs_args)."""

    def __init__(self, location: str | Path, storage: dict | None = None) -> None:
        import fsspec

        self.location = str(location)
        self.fs, self.root = fsspec.core.url_to_fs(self.location, **(storage or {}))

    def __str__(self) -> str:
        return self.location

    def exists(self) -> bool:
        return self.fs.exists(self.root)

    def entries(self) -> Iterator[_Entry]:
        """Every file, one at a time (in name order for a folder, as stored for an archive): its
        bytes are read on demand."""
        if self.fs.isdir(self.root):
            found = self.fs.find(self.root, detail=True)
            prefix = self.root.rstrip("/") + "/"
            for name in sorted(found):
                yield _Entry(PurePosixPath(name.removeprefix(prefix)), int(found[name]["size"]),
                             partial(self.fs.cat_file, name))
            return
        try:
            with self.fs.open(self.root, "rb") as handle, tarfile.open(fileobj=handle, mode="r|*") as tar:
                for member in tar:  # streamed: a .tar.gz is decompressed once, front to back
                    if member.isfile():
                        yield _Entry(PurePosixPath(member.name), member.size, partial(_member_bytes, tar, member))
        except (tarfile.TarError, EOFError, OSError) as error:
            raise DataError(f"{self} is not a readable folder or .tar(.gz) archive ({error}).") from error


def _member_bytes(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = tar.extractfile(member)
    if handle is None:
        raise DataError(f"{member.name} is not a regular file of the archive.")
    return handle.read()


def _log_skipped(path: Source | Path, skipped: list[tuple[str, str]]) -> None:
    if not skipped:
        return
    shown = "; ".join(f"{name} ({why})" for name, why in skipped[:10])
    more = f"; and {len(skipped) - 10} more" if len(skipped) > 10 else ""
    logger.warning("%s: skipped %d file(s): %s%s.", path, len(skipped), shown, more)


Files = dict[str, list[tuple[str, PurePosixPath, np.ndarray | None]]]


def _collect(path: Source, image_size: int, limits: Limits) -> tuple[Files, list[str]]:
    """Per split, each image file as (class, name, decoded pixels or None if unreadable), in
    name order; what is not read is logged; the names of unreadable images."""
    files: Files = {split: [] for split in SPLITS}
    skipped: list[tuple[str, str]] = []
    unreadable: list[str] = []
    total = 0
    for entry in path.entries():
        parts = entry.name.parts
        # allow one wrapping top-level folder, as in most archives
        split_at = next((i for i, part in enumerate(parts) if part in SPLITS), None)
        if split_at is None or len(parts) - split_at < 3:
            skipped.append((str(entry.name), "not under <split>/<class>/"))
            continue
        if entry.name.suffix.lower() not in IMAGE_SUFFIXES:
            skipped.append((str(entry.name), NOT_AN_IMAGE))
            continue
        total += entry.size
        _check_size(path, entry, total, limits)
        pixels = _decode(path, entry, image_size, limits, squash_to_square)
        if pixels is None:
            unreadable.append(str(entry.name))
        files[parts[split_at]].append((parts[split_at + 1], entry.name, pixels))
    _log_skipped(path, skipped)
    return {split: sorted(items, key=lambda item: item[1]) for split, items in files.items()}, unreadable


def _size(n: int) -> str:
    return next(f"{n / 2**p:,.1f} {unit}" for p, unit in ((30, "GiB"), (20, "MiB"), (10, "KiB"), (0, "bytes"))
                if n >= 2**p or p == 0)


def _check_size(path: Source | Path, entry: _Entry, total: int, limits: Limits) -> None:
    if entry.size > limits.file_bytes:
        raise DataError(
            f"{path}: {entry.name} is {_size(entry.size)}, above the limit of "
            f"{_size(limits.file_bytes)} per image file; remove it, or raise max_file_mb in the "
            "catalog entry if it is meant to be there.")
    if total > limits.total_bytes:
        raise DataError(
            f"{path}: the image files up to {entry.name} add up to more than "
            f"{_size(limits.total_bytes)}, the limit for one read; raise max_total_mb in the "
            "catalog entry if the folder is meant to be that large.")


def _decode(path: Source | Path, entry: _Entry, image_size: int, limits: Limits, resize) -> np.ndarray | None:
    """The entry's image resized to ``image_size`` by ``resize`` (uint8 RGB), None if it is not
    an image of the formats read; one past ``limits`` is refused by name."""
    try:
        return decode(entry.read(), image_size, limits, resize)
    except TooLarge as error:
        raise DataError(f"{path}: {entry.name} is refused: {error}; remove it or shrink it.") from None


def decode_image(name: str, data: bytes, image_size: int, limits: Limits = Limits()) -> np.ndarray | None:
    """One image file's bytes (a request's, say) as the prediction-time uint8 RGB square of
    :func:`fit_to_square`; None if they are not an image of the formats read; refused by name
    (a :class:`DataError`) past ``limits``."""
    entry = _Entry(PurePosixPath(name), len(data), lambda: data)
    _check_size(Path("the request"), entry, len(data), limits)
    return _decode(Path("the request"), entry, image_size, limits, fit_to_square)


def _check_classes(path: Source | Path, files) -> list[str]:
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


def _stacked(files, index: dict[str, int], image_size: int) -> tuple[np.ndarray, np.ndarray]:
    images = np.empty((len(files), image_size, image_size, 3), dtype=np.uint8)
    for i, (_, _, pixels) in enumerate(files):
        images[i] = pixels
    return images, np.array([index[cls] for cls, _, _ in files], dtype=np.int64)


def read_image_folder(path: str | Path, image_size: int = 32, limits: Limits = Limits(),
                      storage: dict | None = None) -> RawImages:
    """Read ``<split>/<class>/<image>`` images into uint8 arrays of shape (N, size, size, 3),
    one file at a time (each decoded and resized as it is read), within ``limits``. ``path``
    is local or any fsspec URL, reached with ``storage``."""
    source = Source(path, storage)
    if not source.exists():
        raise DataError(
            f"Image folder {source} does not exist. Create it with train/<class>/<image> and "
            "test/<class>/<image> files, or point the catalog entry image_folder "
            "(conf/base/catalog_ingestion.yml) at your images."
        )
    files, unreadable = _collect(source, image_size, limits)
    class_names = _check_classes(source, files)
    if unreadable:
        shown = ", ".join(unreadable[:10]) + (" ..." if len(unreadable) > 10 else "")
        raise DataError(
            f"{source}: {len(unreadable)} image(s) cannot be read: {shown}. Remove or replace them."
        )
    index = {name: i for i, name in enumerate(class_names)}
    arrays = {split: _stacked(files[split], index, image_size) for split in SPLITS if files[split]}
    val = arrays.get("val", (None, None))
    return RawImages(*arrays["train"], *arrays["test"], class_names,
                     val_images=val[0], val_labels=val[1]).validate(str(source))


@dataclass(frozen=True)
class ImageFolder:
    """Where the images live (a local path or an fsspec URL, with its storage options);
    nothing is read until :meth:`read`."""

    path: str | Path
    limits: Limits = Limits()
    storage: dict | None = None

    def read(self, image_size: int = 32) -> RawImages:
        return read_image_folder(self.path, image_size, self.limits, self.storage)


def read_images(path: str | Path, image_size: int, limits: Limits = Limits(), storage: dict | None = None
                ) -> tuple[list[str], np.ndarray, list[tuple[str, str]]]:
    """Every image under a folder or ``.tar(.gz)`` (sub-folders included), for prediction:
    the names, uint8 (N, size, size, 3) images by :func:`fit_to_square`, and the files not
    read with why (not an image format, or unreadable). Refuses a missing or empty source.
    ``path`` is local or any fsspec URL, reached with ``storage``."""
    source = Source(path, storage)
    where = (f"Put the images to classify in {source} (a folder, sub-folders included, or a "
             f".tar(.gz)), or name another place with --params predict.source=PATH.")
    if not source.exists():
        raise DataError(f"{source} does not exist. {where}")
    names, images, skipped, total = [], [], [], 0
    for entry in source.entries():
        if entry.name.suffix.lower() not in IMAGE_SUFFIXES:
            skipped.append((str(entry.name), NOT_AN_IMAGE))
            continue
        total += entry.size
        _check_size(source, entry, total, limits)
        pixels = _decode(source, entry, image_size, limits, fit_to_square)
        if pixels is None:
            skipped.append((str(entry.name), "cannot be read as an image"))
        else:
            names.append(str(entry.name))
            images.append(pixels)
    if not names:
        found = f" ({len(skipped)} file(s), none an image of the formats read)" if skipped else ""
        raise DataError(f"{source} holds no images to classify{found}. {where}")
    order = np.argsort(names)
    return ([names[i] for i in order], np.stack(images)[order], sorted(skipped))


@dataclass(frozen=True)
class ImageFiles:
    """Images to classify, wherever they are (a local path or an fsspec URL, with its storage
    options); nothing is read until :meth:`read`."""

    path: str | Path
    limits: Limits = Limits()
    storage: dict | None = None

    def read(self, image_size: int) -> tuple[list[str], np.ndarray, list[tuple[str, str]]]:
        return read_images(self.path, image_size, self.limits, self.storage)
