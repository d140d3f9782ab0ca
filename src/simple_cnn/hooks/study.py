"""The ablation study in a Kedro session: its parameters handed to the pipeline registry, and a
progress bar over its runs."""

from __future__ import annotations

from copy import deepcopy
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.pipeline import Pipeline
from kedro.pipeline.node import Node


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
