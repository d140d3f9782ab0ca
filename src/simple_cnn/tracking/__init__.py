"""Experiment tracking with kedro-mlflow, an optional extra (``pip install -e ".[mlflow]"``).

With it installed, every ``kedro run`` is one MLflow run in the project's own store
(``mlflow.db`` and ``mlruns/``, or the server that ``conf/<env>/mlflow.yml`` or
``$MLFLOW_TRACKING_URI`` names): the parameters of the nodes that ran, and what the catalog
marks with ``metadata: mlflow:`` (``records``). Without it nothing here imports MLflow.
"""

from __future__ import annotations

import os
from importlib.util import find_spec

from simple_cnn import launcher

SWITCH = "SIMPLE_CNN_TRACKING"
"""``SIMPLE_CNN_TRACKING=off``: sessions started from then on are not tracked, extra or not."""


def installed() -> bool:
    try:
        return find_spec("kedro_mlflow") is not None
    except (ImportError, ValueError):  # a broken or blocked install counts as absent
        return False


def switched_off() -> bool:
    """Off by the switch, and in torchrun's processes other than rank 0 (rank 0 records the run)."""
    off = os.environ.get(SWITCH, "on").strip().lower() in ("off", "0", "false", "no")
    return off or launcher.rank() > 0


def project_hooks() -> tuple:
    """The hooks for ``settings.HOOKS``: kedro-mlflow's and ours when it is installed. (Not named
    ``hooks``: importing the submodule ``tracking.hooks`` would replace such a function.)"""
    if not installed():
        return ()
    from simple_cnn.tracking.hooks import ProjectMlflowHook, RunRecordHooks

    tracker = ProjectMlflowHook()
    return tracker, RunRecordHooks(tracker)
