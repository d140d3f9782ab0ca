"""Rules between parameter groups, before the first node runs."""

from __future__ import annotations

from kedro.framework.hooks import hook_impl
from kedro.pipeline import Pipeline


class ParameterChecksHooks:
    """Rules between parameter groups, checked before the first node runs (Kedro validates
    each group on its own when the session starts). First among the hooks, so that a refused
    run has not yet begun anything (an MLflow run, with the `mlflow` extra)."""

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, pipeline: Pipeline, catalog) -> None:
        used = {name.split(":", 1)[1].split(".")[0] for name in pipeline.all_inputs()
                if name.startswith("params:")}
        if used and "parameters" in catalog:
            from simple_cnn.device_checks import check_devices
            from simple_cnn.parameters import check_across_groups

            parameters = catalog.load("parameters")
            check_across_groups(parameters, used)
            check_devices(parameters, used)  # imports torch: at a run's start, not every command's
