"""Shared plumbing of the project's versioned, fsspec-backed catalog datasets."""

from __future__ import annotations

from collections.abc import Callable
from copy import deepcopy
from pathlib import PurePosixPath
from typing import IO, Any

import fsspec
from kedro.io.core import (
    AbstractVersionedDataset,
    Version,
    get_filepath_str,
    get_protocol_and_path,
)


class FileDataset(AbstractVersionedDataset):
    """A versioned dataset stored as one file; subclasses say how to read and write it.

    Saves are atomic: bytes go to a temporary name first and are moved into place only once
    complete, so a crash mid-save never leaves a half-written version behind that a later
    run would load as the latest one.
    """

    def __init__(
        self,
        *,
        filepath: str,
        version: Version | None = None,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        protocol, path = get_protocol_and_path(filepath, version)
        fs_args = deepcopy(fs_args) or {}
        if protocol == "file":
            fs_args.setdefault("auto_mkdir", True)
        self._protocol = protocol
        self._fs = fsspec.filesystem(protocol, **(credentials or {}), **fs_args)
        self.metadata = metadata
        super().__init__(
            filepath=PurePosixPath(path),
            version=version,
            exists_function=self._fs.exists,
            glob_function=self._fs.glob,
        )

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath, "protocol": self._protocol, "version": self._version}

    def _load_path(self) -> str:
        return get_filepath_str(self._get_load_path(), self._protocol)

    def _write(self, write: Callable[[IO[bytes]], object]) -> None:
        save_path = get_filepath_str(self._get_save_path(), self._protocol)
        temporary = save_path + ".partial"
        try:
            with self._fs.open(temporary, "wb") as handle:
                write(handle)
        except BaseException:
            if self._fs.exists(temporary):
                self._fs.rm(temporary)  # a failed save leaves nothing behind
            raise
        self._fs.mv(temporary, save_path)
        self._fs.invalidate_cache(get_filepath_str(self._filepath, self._protocol))

    def _exists(self) -> bool:
        try:
            return self._fs.exists(self._load_path())
        except Exception:  # noqa: BLE001 - no version yet
            return False

    def _release(self) -> None:
        super()._release()
        self._fs.invalidate_cache(get_filepath_str(self._filepath, self._protocol))
