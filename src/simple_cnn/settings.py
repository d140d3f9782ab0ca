"""Project settings. https://docs.kedro.org/en/stable/kedro_project_setup/settings.html"""

import warnings

from kedro.config import OmegaConfigLoader

# Kedro's config loader calls an OmegaConf function that OmegaConf now deprecates. Every
# process that loads the project imports this module (the CLI, ParallelRunner's and Dask's
# workers), so the filter is here.
warnings.filterwarnings("ignore", message=r"register_new_resolver\(\) is deprecated")

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # an env's parameters files hold only what differs from conf/base (nested keys merge)
    "merge_strategy": {"parameters": "soft"},
}

from simple_cnn.hooks import (  # noqa: E402
    AblationStudiesHooks,
    ParallelRunnerHooks,
    ParameterChecksHooks,
    RunIsolationHooks,
    RunProfileHooks,
    StaleOutputsHooks,
)

HOOKS = (AblationStudiesHooks(), ParameterChecksHooks(), RunIsolationHooks(), StaleOutputsHooks(),
         ParallelRunnerHooks(), RunProfileHooks())
