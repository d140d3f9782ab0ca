"""Project hooks: checks between parameter groups, a per-node run profile, and where the
comparison report landed."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from copy import deepcopy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.io import MemoryDataset, SharedMemoryDataset
from kedro.io.core import AbstractDataset, AbstractVersionedDataset, Version, VersionNotFoundError
from kedro.pipeline import Pipeline
from kedro.pipeline.node import Node

from simple_cnn import launcher
from simple_cnn.profiling import Measurement, format_table

logger = logging.getLogger(__name__)

PROFILE_DATASET = "run_profile"
REPORT_DATASET = "comparison_report"


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
                _pin(dataset, own=name in outputs)


def _pin(dataset: AbstractVersionedDataset, own: bool) -> None:
    version = dataset._version
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


class AblationStudiesHooks:
    """Hands the session's ``ablation`` parameters (its env and ``--params`` included) to the
    ablation pipeline, which has one namespace per variant x seed. Runs when the context is
    created, before Kedro first asks for the pipelines; if the studies changed since the
    pipelines were last built (another session in this process), they are built again."""

    @hook_impl
    def after_context_created(self, context) -> None:
        from kedro.framework.project import PACKAGE_NAME, pipelines

        from simple_cnn.pipelines.study_parameters import use_studies

        parameters = context.config_loader["parameters"]
        # Kept on the loader, Kedro's own read returns them instead of parsing every file
        # again (0.3 s per session: it counts for each task of `kedro ablation run`).
        context.config_loader["parameters"] = parameters
        if use_studies(deepcopy(parameters.get("ablation"))):
            pipelines.configure(f"{PACKAGE_NAME}.pipeline_registry")


class StudyProgressHooks:
    """A progress bar over the study's runs in ``kedro run --pipelines ablation``: runs done of
    those to do, and the time left at the rate so far (``kedro ablation run`` has its own)."""

    RUN_NODE = ".train_and_evaluate_run"

    def __init__(self) -> None:
        self._bar = None

    @hook_impl(trylast=True)  # after StaleOutputsHooks, which marks stale rows missing
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Pipeline, catalog) -> None:
        from tqdm.auto import tqdm

        nodes = [node for node in pipeline.nodes if node.name.endswith(self.RUN_NODE)]
        if run_params.get("only_missing_outputs"):
            nodes = [node for node in nodes if not all(catalog.exists(o) for o in node.outputs)]
        runs = len(nodes)
        self._bar = tqdm(total=runs, desc="ablation runs", unit="run") if runs > 1 else None

    @hook_impl
    def after_node_run(self, node: Node) -> None:
        if self._bar is not None and node.name.endswith(self.RUN_NODE):
            self._bar.update()

    @hook_impl
    def after_pipeline_run(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    on_pipeline_error = after_pipeline_run


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

    def _load(self) -> Any:
        return self._dataset.load()

    def _save(self, data: Any) -> None:
        self._dataset.save(data)

    def _exists(self) -> bool:
        return False

    def _describe(self) -> dict[str, Any]:
        return {"stale": self._dataset._describe()}


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

    def _load(self) -> Any:
        return self._saved.load() if self._saved.exists() else self._dataset.load()

    def _save(self, data: Any) -> None:
        self._saved.save(data)

    def _exists(self) -> bool:
        return self._saved.exists() or self._dataset.exists()

    def _describe(self) -> dict[str, Any]:
        return {"rank_local": self._dataset._describe()}


class ParameterChecksHooks:
    """Rules between parameter groups, checked before the first node runs (Kedro validates
    each group on its own when the session starts). First among the hooks, so that a refused
    run has not yet begun anything (an MLflow run, with the `mlflow` extra)."""

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, pipeline: Pipeline, catalog) -> None:
        used = {name.split(":", 1)[1].split(".")[0] for name in pipeline.all_inputs()
                if name.startswith("params:")}
        if used and "parameters" in catalog:
            from simple_cnn.parameters import check_across_groups, check_devices

            parameters = catalog.load("parameters")
            check_across_groups(parameters, used)
            check_devices(parameters, used)  # imports torch: at a run's start, not every command's


_profile_sink: list[dict[str, Any]] | None = None


@contextmanager
def profile_returned() -> Iterator[list[dict[str, Any]]]:
    """Within it, a run's profile rows go to the yielded list instead of being printed and
    saved: a Dask task of ``kedro ablation run`` returns them to the command, which would
    otherwise get one ``run_profile`` version per variant, saved by processes racing each other."""
    global _profile_sink
    rows: list[dict[str, Any]] = []
    _profile_sink = rows
    try:
        yield rows
    finally:
        _profile_sink = None


class RunProfileHooks:
    """Records wall seconds and peak RSS of every node; at the end of a run prints a table and
    saves it to the ``run_profile`` catalog entry (a versioned JSON)."""

    def __init__(self) -> None:
        self._running: dict[str, Measurement] = {}
        self._rows: list[dict[str, Any]] = []

    @hook_impl
    def before_pipeline_run(self) -> None:
        self._running, self._rows = {}, []

    @hook_impl
    def before_node_run(self, node: Node) -> None:
        self._running[node.name] = Measurement()

    def _finish(self, node: Node, status: str) -> None:
        measurement = self._running.pop(node.name, None)
        if measurement is None:
            return
        measurement.stop()
        self._rows.append({"node": node.name, "seconds": round(measurement.seconds, 4),
                           "peak_rss_mib": round(measurement.peak / 2**20, 1), "status": status})

    @hook_impl
    def after_node_run(self, node: Node) -> None:
        self._finish(node, "ok")

    @hook_impl
    def on_node_error(self, node: Node) -> None:
        self._finish(node, "failed")

    @hook_impl
    def after_pipeline_run(self, run_params: dict[str, Any], pipeline: Pipeline, catalog) -> None:
        if _profile_sink is not None:
            _profile_sink.extend(self._rows)
            return
        if not self._rows or launcher.rank() != 0:  # under torchrun, rank 0 profiles the run
            return
        # printed, not logged: a log handler would wrap the table's lines
        print(f"\nRun profile (wall seconds, peak resident memory per node):\n"
              f"{format_table(self._rows)}\n", flush=True)
        if PROFILE_DATASET in catalog:
            catalog.save(PROFILE_DATASET, {
                "finished": datetime.now(UTC).isoformat(),
                "pipeline": run_params.get("pipeline_name") or "__default__",
                "env": run_params.get("env"),
                "total_seconds": sum(row["seconds"] for row in self._rows),
                "peak_rss_mib": max(row["peak_rss_mib"] for row in self._rows),
                "nodes": self._rows,
            })
        if REPORT_DATASET in pipeline.all_outputs() and REPORT_DATASET in catalog:
            dataset = catalog.get(REPORT_DATASET)
            path = dataset._get_load_path() if hasattr(dataset, "_get_load_path") else None
            logger.info("Comparison report: %s (open it in a browser)", Path(str(path)).resolve())
