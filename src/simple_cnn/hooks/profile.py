"""The run profile: wall seconds and peak resident memory of every node."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.pipeline import Pipeline
from kedro.pipeline.node import Node

from simple_cnn import launcher
from simple_cnn.profiling import Measurement, format_table

logger = logging.getLogger(__name__)

PROFILE_DATASET = "run_profile"
REPORT_DATASET = "comparison_report"

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
