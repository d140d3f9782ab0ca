"""One run of the study: its ``cnn`` parameters (the base, the study's and the variant's
settings, then its seed and budget), the check that its budget fits its data, and the factors
its variant sets."""

from __future__ import annotations

from typing import Any

from simple_cnn.ablation.studies import AblationParams, Run, Study, flatten
from simple_cnn.errors import ConfigError
from simple_cnn.parameters import CnnParams
from simple_cnn.params import build, merged


def run_parameters(base_cnn: dict[str, Any], ablation: AblationParams, run: Run) -> CnnParams:
    """The ``cnn`` parameters of one run, checked; an error names
    ``ablation.studies.<study>.variants.<variant>.<key>``."""
    study = ablation.studies[run.study]
    budget = study.budget(ablation.max_steps)
    length = ({"epochs": budget["length"], "max_steps": None} if budget["unit"] == "epochs"
              else {"max_steps": budget["length"]})
    values = merged(base_cnn, ablation.base, study.overrides, study.variants[run.variant],
                    {"training": {"seed": run.seed, "order_seed": _order_seed(study, run),
                                  "resume": False, "early_stopping_patience": budget["patience"],
                                  **length}})
    return build(CnnParams, f"ablation.studies.{run.study}.variants.{run.variant}", **values)


def _order_seed(study: Study, run: Run) -> int | None:
    """The run's order and augmentation seed: its own seed, unless the variant offsets it."""
    offset = study.order_seed_offsets.get(run.variant)
    return None if offset is None else run.seed + offset


def check_run_length(params: CnnParams, per_class_counts: dict[str, int], where: str) -> None:
    """Refuse, before any run trains, a run whose settings counted in epochs or steps do not fit
    its real length: the training part's size is known from the split's class counts."""
    from simple_cnn.data.raw import subset_size

    training = params.training
    n_train = subset_size(list(per_class_counts.values()), training.fraction)
    try:
        steps_per_epoch = training.steps_per_epoch(n_train)
        training.check_schedule(steps_per_epoch)
    except ConfigError as error:
        raise ConfigError(f"{where} ({n_train} training images): {error}") from None
    total = training.total_steps(steps_per_epoch)
    if training.scheduler == "step" and training.step_size_epochs * steps_per_epoch >= total:
        raise ConfigError(
            f"{where} ({n_train} training images): cnn.training.step_size_epochs="
            f"{training.step_size_epochs} ({training.step_size_epochs * steps_per_epoch} steps) "
            f"is not shorter than the run ({total} steps), so the step decay never happens; "
            "shorten it or use another scheduler.")


def factors(ablation: AblationParams, run: Run) -> dict[str, Any]:
    """What this run's variant sets, flattened (``{"model.norm": "group", ...}``)."""
    return flatten(ablation.studies[run.study].variants[run.variant])
