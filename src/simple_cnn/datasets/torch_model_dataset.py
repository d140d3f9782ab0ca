"""``TorchStateDictDataset``: PyTorch weights in the catalog, loaded safely."""

from __future__ import annotations

import io
from pathlib import PurePosixPath
from typing import Any

from kedro.io.core import DatasetError

from simple_cnn.datasets._base import FileDataset


class TorchStateDictDataset(FileDataset):
    """Saves a module's ``state_dict`` (or any dict of tensors, numbers, strings and nested
    dicts of them, e.g. ``{"state_dict": ..., "training": {...}}``) with ``torch.save``.

    Loading uses ``weights_only=True``: only tensors and plain containers are read back,
    never arbitrary pickled objects. Tensors load onto the CPU. A versioned entry adds
    ``"version"``, the version it read (what ``--load-versions`` names), to what it loads.
    """

    def load(self) -> dict[str, Any]:
        import torch

        path = self._load_path()
        with self._fs.open(path, "rb") as handle:
            buffer = io.BytesIO(handle.read())
        data = torch.load(buffer, map_location="cpu", weights_only=True)
        if self._version is not None and isinstance(data, dict):
            data["version"] = PurePosixPath(path).parent.name
        return data

    def save(self, data: dict[str, Any]) -> None:  # or a torch.nn.Module
        import torch

        if isinstance(data, torch.nn.Module):
            data = data.state_dict()
        if not isinstance(data, dict):
            raise DatasetError(
                f"TorchStateDictDataset saves a state_dict (dict), got {type(data).__name__}."
            )
        cpu = {k: v.detach().cpu() if torch.is_tensor(v) else v for k, v in data.items()
               if k != "version"}  # a loaded model saved again gets its own version
        self._write(lambda handle: torch.save(cpu, handle))
