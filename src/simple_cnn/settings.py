"""Project settings. https://docs.kedro.org/en/stable/kedro_project_setup/settings.html"""

import os
import warnings

from kedro.config import OmegaConfigLoader

# Kedro's config loader calls an OmegaConf function that OmegaConf now deprecates. Every
# process that loads the project imports this module (the CLI, ParallelRunner's and Dask's
# workers), so the filter is here.
warnings.filterwarnings("ignore", message=r"register_new_resolver\(\) is deprecated")

# No network here: MLflow's usage telemetry stays off (read when mlflow is first imported,
# which kedro-mlflow does after Kedro has loaded this module).
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # an env's parameters files hold only what differs from conf/base (nested keys merge)
    "merge_strategy": {"parameters": "soft"},
}

from simple_cnn import tracking  # noqa: E402
from simple_cnn.hooks import (  # noqa: E402
    AblationStudiesHooks,
    ParallelRunnerHooks,
    ParameterChecksHooks,
    RunIsolationHooks,
    RunProfileHooks,
    StaleOutputsHooks,
    StudyProgressHooks,
    TorchrunRanksHooks,
)

HOOKS = (AblationStudiesHooks(), ParameterChecksHooks(), RunIsolationHooks(), StaleOutputsHooks(),
         ParallelRunnerHooks(), TorchrunRanksHooks(), StudyProgressHooks(), RunProfileHooks(), *tracking.project_hooks())

# With the `mlflow` extra, kedro-mlflow's hook is in HOOKS above (as the project's subclass,
# with the project's store and checks; SIMPLE_CNN_TRACKING=off leaves it out), not registered
# a second time through its entry point.
DISABLE_HOOKS_FOR_PLUGINS = ("kedro_mlflow", "kedro-mlflow")  # its name, as released and normalised
