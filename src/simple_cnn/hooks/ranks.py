"""Under ``torchrun``: only rank 0 writes."""

from __future__ import annotations

import logging
import os
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.io import MemoryDataset
from kedro.io.core import AbstractDataset
from kedro.pipeline import Pipeline

from simple_cnn import launcher

logger = logging.getLogger(__name__)


class TorchrunRanksHooks:
    """Under ``torchrun`` every process runs the whole ``kedro run``, and the processes train
    ``train_cnn`` together; only rank 0 writes. The other ranks keep what they would save in
    memory (each persistent dataset of the run is wrapped; what exists is still read from
    disk), say so once, and log warnings only. Outside torchrun this does nothing (a ``RANK``
    without a launcher is not a rank: :func:`simple_cnn.launcher.rank`)."""

    @hook_impl
    def before_pipeline_run(self, pipeline: Pipeline, catalog) -> None:
        if launcher.rank() == 0:
            return
        logger.info("This process is rank %d of %s under torchrun: it saves nothing (rank 0 "
                    "writes every output) and logs warnings only from here on.", launcher.rank(),
                    os.environ.get("WORLD_SIZE"))
        for logger_name in ("kedro", "simple_cnn"):
            logging.getLogger(logger_name).setLevel(logging.WARNING)
        replacing = logging.getLogger("kedro.io.data_catalog")  # warns of each replaced dataset
        replacing.setLevel(logging.ERROR)
        for name in sorted(pipeline.datasets()):
            if name.startswith("params:") or name == "parameters" or name not in catalog:
                continue
            if not isinstance(catalog.get(name), MemoryDataset):
                catalog[name] = _RankLocal(catalog.get(name))
        replacing.setLevel(logging.WARNING)


class _RankLocal(AbstractDataset):
    """What a rank other than 0 saves stays in its memory; the rest is read as usual."""

    def __init__(self, dataset: AbstractDataset) -> None:
        self._dataset, self._saved = dataset, MemoryDataset()
        self.wrapped, self.metadata = dataset, getattr(dataset, "metadata", None)

    def load(self) -> Any:
        return self._saved.load() if self._saved.exists() else self._dataset.load()

    def save(self, data: Any) -> None:
        self._saved.save(data)

    def _exists(self) -> bool:
        return self._saved.exists() or self._dataset.exists()

    def _describe(self) -> dict[str, Any]:
        return {"rank_local": self._dataset._describe()}
