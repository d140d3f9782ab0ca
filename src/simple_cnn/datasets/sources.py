"""Catalog entries that hand a node a location rather than data: raw image sources and the
training checkpoint. Loading a source returns a handle, not the images.

The ingestion node reads only the source that ``ingestion.source`` selects, so a run on
synthetic data never touches (or downloads) the CIFAR-10 archive. This is the same lazy
pattern as kedro-datasets' ``PartitionedDataset``.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any

import fsspec
from kedro.io import AbstractDataset, DatasetError
from kedro.io.core import get_protocol_and_path

from simple_cnn.data.cifar10 import CIFAR10_MD5, CIFAR10_URL, Cifar10Archive
from simple_cnn.data.decode import Limits
from simple_cnn.data.image_folder import ImageFiles, ImageFolder


class _LocationDataset(AbstractDataset):
    """A read-only catalog entry that names a location, on the local disk or any fsspec
    filesystem (``credentials`` and ``fs_args`` reach it, as for any file dataset); Kedro never
    saves to it."""

    _key = "filepath"  # the catalog key that holds the location

    def __init__(self, *, location: str, credentials: dict[str, Any] | None = None,
                 fs_args: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None) -> None:
        self._location = str(location)
        self._protocol, self._path = get_protocol_and_path(self._location)
        self._storage = {**(credentials or {}), **(fs_args or {})}
        self.metadata = metadata

    @property
    def _fs(self):
        return fsspec.filesystem(self._protocol, **self._storage)

    def _describe(self) -> dict[str, Any]:
        return {self._key: self._location, "protocol": self._protocol}

    def save(self, data: Any) -> None:
        raise DatasetError(f"{type(self).__name__} is read-only: it names where data lives.")

    def _exists(self) -> bool:
        return self._fs.exists(self._path)


class Cifar10ArchiveDataset(_LocationDataset):
    """The official ``cifar-10-binary.tar.gz``; ``load()`` returns a :class:`Cifar10Archive`
    whose ``read()`` downloads (if missing; on object storage it is then put there), verifies
    and parses it."""

    def __init__(self, *, filepath: str, url: str = CIFAR10_URL, md5: str | None = CIFAR10_MD5,
                 credentials: dict[str, Any] | None = None, fs_args: dict[str, Any] | None = None,
                 metadata: dict[str, Any] | None = None) -> None:
        super().__init__(location=filepath, credentials=credentials, fs_args=fs_args, metadata=metadata)
        self._url = str(url)
        self._md5 = None if md5 is None else str(md5)

    def _describe(self) -> dict[str, Any]:
        return {**super()._describe(), "url": self._url, "md5": self._md5}

    def load(self) -> Cifar10Archive:
        where = Path(self._location) if self._protocol == "file" else self._location
        return Cifar10Archive(where, url=self._url, md5=self._md5, storage=self._storage)


class _ImageSource(_LocationDataset):
    """A folder or ``.tar(.gz)`` of image files, read one file at a time within limits:
    ``max_file_mb`` and ``max_total_mb`` bound the bytes read per file and in all, and
    ``max_image_pixels`` an image's size (a file past one is refused by name)."""

    _key = "path"

    def __init__(self, *, path: str, max_file_mb: float = 64, max_total_mb: float = 16384,
                 max_image_pixels: int = 64 * 2**20, credentials: dict[str, Any] | None = None,
                 fs_args: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None) -> None:
        super().__init__(location=path, credentials=credentials, fs_args=fs_args, metadata=metadata)
        self._limits = Limits(int(max_file_mb * 2**20), int(max_total_mb * 2**20), max_image_pixels)


class ImageFolderDataset(_ImageSource):
    """A folder or ``.tar(.gz)`` of ``<split>/<class>/<image>``; ``load()`` returns an
    :class:`ImageFolder` whose ``read(image_size)`` decodes and resizes the images."""

    def load(self) -> ImageFolder:
        return ImageFolder(self._location, self._limits, self._storage)


class ImageFilesDataset(_ImageSource):
    """Images to classify: a folder (sub-folders included) or a ``.tar(.gz)`` of image files.
    ``load()`` returns a :class:`ImageFiles` handle whose ``read(image_size)`` decodes them
    (``simple_cnn.data.image_folder.read_images``)."""

    def load(self) -> ImageFiles:
        return ImageFiles(self._location, self._limits, self._storage)


class CheckpointFileDataset(_LocationDataset):
    """Where the training loop keeps its checkpoint; ``load()`` returns the file's ``Path``.

    The loop writes the file itself (atomically, every epoch, under an OS file lock) because a
    checkpoint must be saved *during* a node, not after it; ``torch.save`` and the lock need a
    local file, so the entry must name a local path, even when the rest of the catalog is on
    object storage (docs/storage.md). Declaring it here keeps the location in the catalog (so
    Kedro resolves it against the project root) and shows it in kedro-viz.
    """

    def __init__(self, *, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        super().__init__(location=filepath, metadata=metadata)
        if self._protocol != "file":
            raise DatasetError(
                f"CheckpointFileDataset filepath={filepath!r}: the training checkpoint is written "
                "during training, atomically and under a file lock, to a local file; keep "
                "cnn_checkpoint on a local path (the rest of the catalog may be on object "
                "storage: docs/storage.md).")

    def load(self) -> Path:
        return Path(self._location)


class NewestVersionDataset(_LocationDataset):
    """Read-only: where the newest saved version of a versioned file is, as a path relative to
    its layer folder (``ablation_report.html/<version>/ablation_report.html``), or ``None``
    when none is saved, on any filesystem (``credentials``, ``fs_args``). Lets one report link
    to another without reading it."""

    def __init__(self, *, filepath: str, credentials: dict[str, Any] | None = None,
                 fs_args: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None) -> None:
        super().__init__(location=filepath, credentials=credentials, fs_args=fs_args, metadata=metadata)

    def _newest(self) -> str | None:
        """The newest version's file, as the filesystem names it."""
        name = PurePosixPath(self._path).name
        saved = sorted(path for path in self._fs.glob(f"{self._path.rstrip('/')}/*/{name}")
                       if self._fs.isfile(path))
        return saved[-1] if saved else None

    def load(self) -> str | None:
        newest = self._newest()
        return None if newest is None else PurePosixPath(newest).relative_to(
            PurePosixPath(self._path).parent).as_posix()

    def save(self, data: Any) -> None:
        raise DatasetError(f"{type(self).__name__} is read-only: it points at {self._location}.")

    def _exists(self) -> bool:
        return True  # "nothing saved yet" is a valid answer (None)


class NewestJSONDataset(NewestVersionDataset):
    """Read-only: the newest saved version of a versioned JSON file, loaded, or ``None`` when
    none is saved. Lets one report show another pipeline's result without depending on it."""

    def load(self) -> Any:
        newest = self._newest()
        if newest is None:
            return None
        with self._fs.open(newest, "r", encoding="utf-8") as handle:
            return json.load(handle)
