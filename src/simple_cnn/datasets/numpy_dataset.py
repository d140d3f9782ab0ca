"""``NumpyDataset``: NumPy arrays in the catalog, as ``.npy`` (one array) or ``.npz`` (several)."""

from __future__ import annotations

from typing import Any, Literal, get_args

import numpy as np
from kedro.io.core import DatasetError, Version

from simple_cnn.datasets._base import FileDataset

MmapMode = Literal["r", "r+", "w+", "c"]


class NumpyDataset(FileDataset):
    """Loads and saves NumPy arrays; versioned like any Kedro file dataset.

    The file's suffix picks the format: ``.npy`` holds one array (and can be memory-mapped
    with ``mmap_mode``), ``.npz`` holds a dict of named arrays (stored uncompressed unless
    ``compress: true``, which trades save time for disk). Pickled object arrays are refused
    on load.

    Example ``catalog.yml`` entry::

        train_split:
          type: simple_cnn.datasets.NumpyDataset
          filepath: data/03_primary/train_split.npz
          versioned: true
    """

    def __init__(
        self,
        *,
        filepath: str,
        mmap_mode: MmapMode | None = None,
        compress: bool = False,
        version: Version | None = None,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        suffix = filepath.rsplit(".", 1)[-1].lower()
        if suffix not in {"npy", "npz"}:
            raise DatasetError(
                f"NumpyDataset filepath must end in .npy (one array) or .npz (a dict of "
                f"arrays), got {filepath!r}."
            )
        if mmap_mode is not None and suffix != "npy":
            raise DatasetError("NumpyDataset: mmap_mode works with .npy files only.")
        if mmap_mode is not None and mmap_mode not in get_args(MmapMode):
            raise DatasetError(
                f"NumpyDataset: mmap_mode must be one of {', '.join(get_args(MmapMode))} "
                f"(numpy.load's modes), got {mmap_mode!r}."
            )
        self._suffix = suffix
        self._mmap_mode = mmap_mode
        self._compress = compress
        super().__init__(
            filepath=filepath,
            version=version,
            credentials=credentials,
            fs_args=fs_args,
            metadata=metadata,
        )

    def _describe(self) -> dict[str, Any]:
        return {**super()._describe(), "mmap_mode": self._mmap_mode, "compress": self._compress}

    def load(self) -> np.ndarray | dict[str, np.ndarray]:
        path = self._load_path()
        if self._mmap_mode is not None and self._protocol == "file":
            return np.load(path, mmap_mode=self._mmap_mode, allow_pickle=False)
        with self._fs.open(path, "rb") as handle:
            loaded = np.load(handle, allow_pickle=False)
            if self._suffix == "npz":
                return {name: loaded[name] for name in loaded.files}
            return loaded

    def save(self, data: np.ndarray | dict[str, np.ndarray]) -> None:
        if self._suffix == "npy":
            if not isinstance(data, np.ndarray):
                raise DatasetError(f"A .npy NumpyDataset saves one array, got {type(data).__name__}.")
            self._write(lambda handle: np.save(handle, data, allow_pickle=False))
            return
        if not isinstance(data, dict) or not all(isinstance(v, np.ndarray) for v in data.values()):
            raise DatasetError("A .npz NumpyDataset saves a dict of {name: numpy array}.")
        writer = np.savez_compressed if self._compress else np.savez
        arrays: dict[str, Any] = data
        self._write(lambda handle: writer(handle, **arrays))
