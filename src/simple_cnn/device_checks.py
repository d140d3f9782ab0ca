"""Whether the training settings fit this machine's devices, at a run's start (imports torch):
not part of validating the parameters, which any machine can do."""

from __future__ import annotations

from simple_cnn.ablation.runs import run_parameters
from simple_cnn.parameters import typed_groups


def check_devices(params: dict, used: set[str]) -> None:
    """The training settings fit this machine's devices: ``cnn``'s, and every ablation
    variant's merged into it. Checked where the run trains, not at validation (see
    ``TrainConfig.check_device``); imports torch."""
    params = typed_groups(params, used)
    ablation, cnn = params.get("ablation"), params.get("cnn")
    if "cnn" in used and cnn is not None:
        cnn.training.check_device()
    if "ablation" in used and ablation is not None and cnn is not None:
        for run in ablation.runs():  # every variant's overrides on the actual cnn parameters
            where = f"ablation.studies.{run.study}.variants.{run.variant}: cnn.training"
            run_parameters(cnn.model_dump(), ablation, run).training.check_device(where)
