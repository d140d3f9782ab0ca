"""``AtomicJSONDataset``: a JSON document in the catalog whose saves are all or nothing."""

from __future__ import annotations

import json
from typing import Any

from kedro.io.core import Version

from simple_cnn.datasets._base import FileDataset


class AtomicJSONDataset(FileDataset):
    """kedro-datasets' ``json.JSONDataset`` writes straight into the version's file, so a
    process killed mid-save leaves a truncated version that ``exists()`` reports and the next
    run loads. This one writes to a temporary name and moves it into place, so a record that
    exists is a whole record: what ``--only-missing-outputs`` and ``kedro ablation run`` need to
    skip finished work safely.

    Example ``catalog.yml`` entry::

        "{namespace}.ablation_run":
          type: simple_cnn.datasets.AtomicJSONDataset
          filepath: data/07_model_output/ablation/{namespace}.json
          versioned: true
    """

    def __init__(
        self,
        *,
        filepath: str,
        save_args: dict[str, Any] | None = None,
        version: Version | None = None,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._save_args = dict(save_args or {})
        super().__init__(filepath=filepath, version=version, credentials=credentials,
                         fs_args=fs_args, metadata=metadata)

    def load(self) -> Any:
        with self._fs.open(self._load_path(), "r", encoding="utf-8") as handle:
            return json.load(handle)

    def save(self, data: Any) -> None:
        text = json.dumps(data, **self._save_args).encode("utf-8")  # fails before any byte is written
        self._write(lambda handle: handle.write(text))
