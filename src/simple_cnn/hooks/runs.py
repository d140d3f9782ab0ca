"""How a run reads the catalog: one consistent set of versions per run (run isolation), and
Kedro's shared-memory datasets under ParallelRunner."""

from __future__ import annotations

from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.io import MemoryDataset, SharedMemoryDataset
from kedro.io.core import AbstractVersionedDataset, Version, VersionNotFoundError
from kedro.pipeline import Pipeline


class RunIsolationHooks:
    """Each run reads one consistent set of versions: what it saves itself, and for every other
    input the version that was newest when it started (or the one ``--load-versions`` pins).

    Kedro otherwise resolves "newest" at each load, so a run started later in the same project
    could hand this run its model or splits halfway through. Pinning happens once, before the
    first node (in the parent process, so ParallelRunner's workers inherit it); Kedro has no
    public setter for a dataset's version, hence ``_version``. Under ``--only-missing-outputs``
    the run's own outputs are left to Kedro, which must first see which of them exist.
    """

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Pipeline, catalog) -> None:
        outputs = pipeline.all_outputs()
        leave_outputs = bool(run_params.get("only_missing_outputs"))
        for name in sorted(pipeline.datasets()):
            if name.startswith("params:") or name == "parameters" or name not in catalog:
                continue
            if name in outputs and leave_outputs:
                continue
            dataset = catalog.get(name)
            if isinstance(dataset, AbstractVersionedDataset) and dataset._version is not None:
                _pin(dataset, dataset._version, own=name in outputs)


def _pin(dataset: AbstractVersionedDataset, version: Version, own: bool) -> None:
    if own:
        load = dataset.resolve_save_version()
    elif version.load:
        return
    else:
        try:
            load = dataset.resolve_load_version()
        except VersionNotFoundError:
            return  # nothing saved yet: loading fails later with Kedro's own message
    dataset._version = Version(load, version.save)


class ParallelRunnerHooks:
    """Under ``--runner ParallelRunner`` each node runs in its own process, so an in-memory
    dataset declared in the catalog (``raw_images``, declared for its kedro-viz layer) must be
    Kedro's ``SharedMemoryDataset``, which the runner then backs with its process manager."""

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Pipeline, catalog) -> None:
        if "ParallelRunner" not in str(run_params.get("runner") or ""):
            return
        for name in pipeline.datasets():
            if name in catalog and type(catalog.get(name)) is MemoryDataset and not name.startswith("params:"):
                catalog[name] = SharedMemoryDataset()
