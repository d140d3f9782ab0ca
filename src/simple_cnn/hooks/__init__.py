"""Project hooks, one concern a module: run isolation and ParallelRunner (``runs``), the study
(``study``), stale outputs (``stale``), torchrun's ranks (``ranks``), checks between parameter
groups (``checks``) and the run profile (``profile``). ``settings.py`` registers them in order."""

from simple_cnn.hooks.checks import ParameterChecksHooks
from simple_cnn.hooks.profile import RunProfileHooks, profile_returned
from simple_cnn.hooks.ranks import TorchrunRanksHooks
from simple_cnn.hooks.runs import ParallelRunnerHooks, RunIsolationHooks
from simple_cnn.hooks.stale import StaleOutputsHooks
from simple_cnn.hooks.study import AblationStudiesHooks, StudyProgressHooks

__all__ = [
    "AblationStudiesHooks", "ParallelRunnerHooks", "ParameterChecksHooks", "RunIsolationHooks",
    "RunProfileHooks", "StaleOutputsHooks", "StudyProgressHooks", "TorchrunRanksHooks",
    "profile_returned",
]
