"""``--only-missing-outputs`` with make's rule, and outdated ablation rows counted as missing."""

from __future__ import annotations

from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.io import MemoryDataset
from kedro.io.core import AbstractDataset
from kedro.pipeline import Pipeline


class StaleOutputsHooks:
    """``--only-missing-outputs`` with make's rule: a node whose inputs will be made anew in
    this run runs again too, even if its own outputs exist (Kedro alone skips it). So a study
    that gains a variant trains only that variant, and its summary covers it. An ablation row
    or summary that exists but was made under other settings counts as missing (see
    ``pipelines/ablation/freshness.py``)."""

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Pipeline, catalog) -> None:
        if not run_params.get("only_missing_outputs"):
            return
        def persistent(name: str) -> bool:
            return name in catalog and not isinstance(catalog.get(name), MemoryDataset)

        missing = [name for name in pipeline.all_outputs() if persistent(name) and not catalog.exists(name)]
        for name in _outdated(catalog, pipeline):
            catalog[name] = _Stale(catalog.get(name))
            missing.append(name)
        for name in _downstream(pipeline, missing) - set(missing):
            if persistent(name):
                catalog[name] = _Stale(catalog.get(name))


def _downstream(pipeline: Pipeline, missing: list[str]) -> set[str]:
    """What is made from ``missing``: everything, by make's rule, except that a study's row
    is never remade for being downstream of another row (through its claim's decision): its
    own fingerprint, and the decision it records if it was skipped, say whether it is still
    what the settings ask for (``pipelines/ablation/freshness.py``)."""
    rows = [name for name in missing if name.endswith(_ROW)]
    others = [name for name in missing if not name.endswith(_ROW)]
    made = pipeline.from_inputs(*others).all_outputs() if others else set()
    if rows:
        made |= {name for name in pipeline.from_inputs(*rows).all_outputs() if not name.endswith(_ROW)}
    return made


_ROW = ".ablation_run"


def _outdated(catalog, pipeline: Pipeline) -> dict[str, str]:
    if not any(name.endswith(".ablation_run") or name == "ablation_summary"
               for name in pipeline.all_outputs()):
        return {}
    from simple_cnn.pipelines.ablation.freshness import outdated  # imports torch: not at startup

    return outdated(catalog, pipeline)


class _Stale(AbstractDataset):
    """A dataset that reports itself missing, so that ``--only-missing-outputs`` remakes it;
    ``wrapped`` is the real one (its versions and ``metadata``, for tracking)."""

    def __init__(self, dataset: AbstractDataset) -> None:
        self._dataset = self.wrapped = dataset
        self.metadata = getattr(dataset, "metadata", None)

    def load(self) -> Any:
        return self._dataset.load()

    def save(self, data: Any) -> None:
        self._dataset.save(data)

    def _exists(self) -> bool:
        return False

    def _describe(self) -> dict[str, Any]:
        return {"stale": self._dataset._describe()}
