"""Catalog entries that hand a node a location rather than data: raw image sources and the
training checkpoint. Loading a source returns a handle, not the images.

The ingestion node reads only the source that ``ingestion.source`` selects, so a run on
synthetic data never touches (or downloads) the CIFAR-10 archive. This is the same lazy
pattern as kedro-datasets' ``PartitionedDataset``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from simple_cnn.data.cifar10 import CIFAR10_MD5, CIFAR10_URL, Cifar10Archive
from simple_cnn.data.decode import Limits
from simple_cnn.data.image_folder import ImageFiles, ImageFolder


class _LocationDataset(AbstractDataset):
    """A read-only catalog entry that names a location; Kedro never saves to it."""

    _key = "filepath"  # the catalog key that holds the location

    def __init__(self, *, location: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = location
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {self._key: self._path}

    def save(self, data: Any) -> None:
        raise DatasetError(f"{type(self).__name__} is read-only: it names where data lives.")

    def _exists(self) -> bool:
        return Path(self._path).exists()


class Cifar10ArchiveDataset(_LocationDataset):
    """The official ``cifar-10-binary.tar.gz``; ``load()`` returns a :class:`Cifar10Archive`
    whose ``read()`` downloads (if missing), verifies and parses it."""

    def __init__(self, *, filepath: str, url: str = CIFAR10_URL, md5: str | None = CIFAR10_MD5,
                 metadata: dict[str, Any] | None = None) -> None:
        super().__init__(location=filepath, metadata=metadata)
        self._url = str(url)
        self._md5 = None if md5 is None else str(md5)

    def _describe(self) -> dict[str, Any]:
        return {**super()._describe(), "url": self._url, "md5": self._md5}

    def load(self) -> Cifar10Archive:
        return Cifar10Archive(Path(self._path), url=self._url, md5=self._md5)


class _ImageSource(_LocationDataset):
    """A folder or ``.tar(.gz)`` of image files, read one file at a time within limits:
    ``max_file_mb`` and ``max_total_mb`` bound the bytes read per file and in all, and
    ``max_image_pixels`` an image's size (a file past one is refused by name)."""

    _key = "path"

    def __init__(self, *, path: str, max_file_mb: float = 64, max_total_mb: float = 16384,
                 max_image_pixels: int = 64 * 2**20, metadata: dict[str, Any] | None = None) -> None:
        super().__init__(location=path, metadata=metadata)
        self._limits = Limits(int(max_file_mb * 2**20), int(max_total_mb * 2**20), max_image_pixels)


class ImageFolderDataset(_ImageSource):
    """A folder or ``.tar(.gz)`` of ``<split>/<class>/<image>``; ``load()`` returns an
    :class:`ImageFolder` whose ``read(image_size)`` decodes and resizes the images."""

    def load(self) -> ImageFolder:
        return ImageFolder(Path(self._path), self._limits)


class ImageFilesDataset(_ImageSource):
    """Images to classify: a folder (sub-folders included) or a ``.tar(.gz)`` of image files
    of any format and size Pillow reads. ``load()`` returns a :class:`ImageFiles` handle whose
    ``read(image_size)`` decodes them (``simple_cnn.data.image_folder.read_images``)."""

    def load(self) -> ImageFiles:
        return ImageFiles(Path(self._path), self._limits)


class CheckpointFileDataset(_LocationDataset):
    """Where the training loop keeps its checkpoint; ``load()`` returns the file's ``Path``.

    The loop writes the file itself (atomically, every epoch) because a checkpoint must be
    saved *during* a node, not after it. Declaring it here keeps the location in the catalog
    (so Kedro resolves it against the project root) and shows it in kedro-viz.
    """

    def __init__(self, *, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        super().__init__(location=filepath, metadata=metadata)

    def load(self) -> Path:
        return Path(self._path)


class NewestVersionDataset(AbstractDataset):
    """Read-only: where the newest saved version of a versioned file is, as a path relative to
    its layer folder (``ablation_report.html/<version>/ablation_report.html``), or ``None``
    when none is saved. Lets one report link to another without reading it."""

    def __init__(self, *, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(filepath)
        self.metadata = metadata

    def load(self) -> str | None:
        saved = sorted(p for p in self._path.glob(f"*/{self._path.name}") if p.is_file())
        return saved[-1].relative_to(self._path.parent).as_posix() if saved else None

    def save(self, data: Any) -> None:
        raise DatasetError(f"{type(self).__name__} is read-only: it points at {self._path}.")

    def _exists(self) -> bool:
        return True  # "nothing saved yet" is a valid answer (None)

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._path)}


class NewestJSONDataset(NewestVersionDataset):
    """Read-only: the newest saved version of a versioned JSON file, loaded, or ``None`` when
    none is saved. Lets one report show another pipeline's result without depending on it."""

    def load(self) -> Any:
        newest = super().load()
        return None if newest is None else json.loads((self._path.parent / newest).read_text())
