"""Studies, variants and seeds: the typed ``ablation`` parameters and the runs they expand to.

A *study* tests one claim (one sentence, and the comparison that decides it) with a few
*variants*, each a named override of the ``cnn`` parameters; every variant trains once per
seed for the study's budget: ``max_steps`` optimiser steps, or ``epochs`` passes over the
run's own training part (with ``patience``, until the selection accuracy stops improving).
A run's parameters are ``cnn`` merged with ``ablation.base``, the study's ``overrides``, the
variant's overrides, then the seed (plus the variant's ``seed_offsets``) and the budget.
The same seed gives every variant of a study the same initial weights (where the shapes
agree), the same training part and the same data order: the design is paired. Adding a
variant is an edit of the YAML alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from simple_cnn.errors import ConfigError
from simple_cnn.params import Float, Int, Model, ParameterGroup, build, invalid, merged
from simple_cnn.training.config import SEED_RANGE

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"  # a Kedro namespace part: no dots, no spaces
NAMESPACE = "ablation"
SET_BY_THE_STUDY = ("training.seed", "training.max_steps", "training.epochs", "training.resume",
                    "training.early_stopping_patience")

# Metrics a claim can be decided on, and which direction is better.
METRICS: dict[str, Literal["higher", "lower"]] = {
    "test_accuracy": "higher", "macro_f1": "higher", "val_accuracy": "higher",
    "gap": "lower", "dead_unit_fraction": "lower", "diverged": "lower",
    "train_seconds": "lower", "images_per_second": "higher",
}
Metric = Literal["test_accuracy", "macro_f1", "val_accuracy", "gap", "dead_unit_fraction",
                 "diverged", "train_seconds", "images_per_second"]


class Comparison(Model):
    """How the claim is decided: ``better`` beats ``than`` on ``metric`` (by the verdict rule)."""

    metric: Metric = "test_accuracy"
    better: str
    than: str


class Study(Model):
    claim: str = Field(min_length=1)
    test: Comparison
    overrides: dict[str, Any] = {}
    variants: dict[str, dict[str, Any]] = Field(min_length=1)
    max_steps: Int | None = Field(None, ge=1)  # this study's budget in steps ...
    epochs: Int | None = Field(None, ge=1)  # ... or in passes over each run's training part
    patience: Int = Field(0, ge=0)  # with epochs: stop after this many epochs without improvement
    seeds: list[Int] | None = Field(None, min_length=1)
    seed_offsets: dict[str, Int] = {}  # variant -> added to its seeds (an A/A control's second name)
    control: bool = False  # an A/A control: judged on its own, the rule's false-alarm check

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, seeds: list[int] | None) -> list[int] | None:
        return seeds if seeds is None else _check_seeds(seeds)

    @field_validator("variants")
    @classmethod
    def _names_are_namespaces(cls, variants: dict[str, Any]) -> dict[str, Any]:
        for name, overrides in variants.items():
            _check_name(name)
            if not isinstance(overrides, dict):
                raise ValueError(f"variant {name!r} must be a mapping of cnn keys to values "
                                 f"(an empty one {{}} trains the base), got {overrides!r}")
        return variants

    @model_validator(mode="after")
    def _compares_its_own_variants(self) -> Study:
        for role in ("better", "than"):
            name = getattr(self.test, role)
            if name not in self.variants:
                raise invalid(f"test.{role}", name, "is not a variant of this study; choose one "
                              f"of: {', '.join(self.variants)}")
        unknown = [name for name in self.seed_offsets if name not in self.variants]
        if unknown:
            raise invalid("seed_offsets", self.seed_offsets, f"names no variant ({', '.join(unknown)}); "
                          f"choose from: {', '.join(self.variants)}")
        if self.epochs is not None and self.max_steps is not None:
            raise invalid("max_steps", self.max_steps, f"and epochs={self.epochs} are two budgets; "
                          "give one (steps, or passes over the training part)")
        if self.patience and self.epochs is None:
            raise invalid("patience", self.patience, "counts epochs without improvement: give the "
                          "study a budget in epochs (the cap), or remove patience")
        if self.patience and self.patience >= self.epochs:
            raise invalid("patience", self.patience, f"is not shorter than the cap (epochs="
                          f"{self.epochs}): early stopping could never happen")
        return self

    def budget(self, default_steps: int) -> dict[str, Any]:
        """What the study's runs train for: ``{"unit": "steps" | "epochs", "length": n,
        "patience": p}``."""
        if self.epochs is not None:
            return {"unit": "epochs", "length": self.epochs, "patience": self.patience}
        return {"unit": "steps", "length": self.max_steps or default_steps, "patience": 0}


class AblationParams(ParameterGroup):
    key = "ablation"

    seeds: list[Int] = Field([0, 1, 2], min_length=1)
    max_steps: Int = Field(300, ge=1)  # a study's budget when it gives none
    val_images: Int = Field(500, ge=1)  # validation images that pick each run's best epoch ...
    report_images: Int = Field(1000, ge=1)  # ... and the next ones, the reported val accuracy and gap
    test_images: Int = Field(5000, ge=1)  # test images every run is scored on (the same for all)
    budget_points: list[Float] = [0.125, 0.25, 0.5, 1.0]  # fractions of a run's budget evaluated
    alpha: Float = Field(0.05, gt=0.0, lt=0.5)  # the verdict rule's level (Holm over the claims)
    min_difference: Float = Field(0.005, ge=0.0)  # the smallest effect that counts as support
    preview: bool = False  # a short budget: the report says its verdicts are a preview
    studies_to_run: Literal["all"] | list[str] = "all"  # one name works too (handy in --params)
    base: dict[str, Any] = {}
    studies: dict[str, Study] = Field(min_length=1)

    @field_validator("studies_to_run", mode="before")
    @classmethod
    def _one_name(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) and value != "all" else value

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, seeds: list[int]) -> list[int]:
        return _check_seeds(seeds)

    @field_validator("budget_points")
    @classmethod
    def _budget_points(cls, points: list[float]) -> list[float]:
        if not points or any(not 0 < p <= 1 for p in points) or sorted(set(points)) != points \
                or points[-1] != 1:
            raise ValueError(f"budget points {points} must rise from above 0 to 1 (the end), "
                             "each once: fractions of each run's budget, e.g. [0.25, 0.5, 1.0]")
        return points

    @field_validator("studies")
    @classmethod
    def _study_names(cls, studies: dict[str, Study]) -> dict[str, Study]:
        for name in studies:
            _check_name(name)
        return studies

    @model_validator(mode="after")
    def _selection_exists(self) -> AblationParams:
        if self.studies_to_run != "all":
            unknown = [name for name in self.studies_to_run if name not in self.studies]
            if unknown:
                raise invalid("studies_to_run", unknown, "names no study; choose from: "
                              f"{', '.join(self.studies)}")
        for study, spec in self.studies.items():
            for variant, overrides in {"overrides": spec.overrides, **spec.variants}.items():
                fixed = [key for key in SET_BY_THE_STUDY if _has(overrides, key)]
                if fixed:
                    where = "overrides" if variant == "overrides" else f"variants.{variant}"
                    raise invalid(f"studies.{study}.{where}.{fixed[0]}", _get(overrides, fixed[0]),
                                  "is set by the study (seeds from ablation.seeds, the budget "
                                  "from the study's max_steps or epochs and patience); remove it "
                                  "from the override")
        return self

    def seeds_of(self, study: str) -> list[int]:
        return self.studies[study].seeds or self.seeds

    def selected(self) -> dict[str, Study]:
        names = self.studies if self.studies_to_run == "all" else self.studies_to_run
        return {name: self.studies[name] for name in names}

    def runs(self) -> list[Run]:
        """Every (study, variant, seed) of the selected studies, in declaration order."""
        return [Run(study, variant, seed)
                for study, spec in self.selected().items()
                for variant in spec.variants
                for seed in self.seeds_of(study)]


@dataclass(frozen=True)
class Run:
    study: str
    variant: str
    seed: int

    @property
    def namespace(self) -> str:
        """``ablation.<study>.<variant>.seed_<n>``: a collapsible group in kedro-viz, and what
        ``kedro run --namespaces`` takes."""
        return f"{NAMESPACE}.{self.study}.{self.variant}.seed_{self.seed}"


def run_parameters(base_cnn: dict[str, Any], ablation: AblationParams, run: Run):
    """The ``cnn`` parameters (a :class:`~simple_cnn.parameters.CnnParams`) of one run, checked;
    an error names ``ablation.studies.<study>.variants.<variant>.<key>``."""
    from simple_cnn.parameters import CnnParams

    study = ablation.studies[run.study]
    budget = study.budget(ablation.max_steps)
    length = ({"epochs": budget["length"], "max_steps": None} if budget["unit"] == "epochs"
              else {"max_steps": budget["length"]})
    values = merged(base_cnn, ablation.base, study.overrides, study.variants[run.variant],
                    {"training": {"seed": run.seed + study.seed_offsets.get(run.variant, 0),
                                  "resume": False, "early_stopping_patience": budget["patience"],
                                  **length}})
    return build(CnnParams, f"ablation.studies.{run.study}.variants.{run.variant}", **values)


def check_run_length(params, per_class_counts: dict[str, int], where: str) -> None:
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
    return _flatten(ablation.studies[run.study].variants[run.variant])


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _has(tree: dict[str, Any], dotted: str) -> bool:
    return dotted in _flatten(tree)


def _get(tree: dict[str, Any], dotted: str) -> Any:
    return _flatten(tree)[dotted]


def _check_seeds(seeds: list[int]) -> list[int]:
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds repeat: {seeds}; list each seed once")
    if any(not SEED_RANGE[0] <= s <= SEED_RANGE[1] for s in seeds):
        raise ValueError(f"every seed must be in {SEED_RANGE[0]}..{SEED_RANGE[1]}")
    return seeds


def _check_name(name: str) -> None:
    import re

    if not re.match(NAME_PATTERN, name):
        raise ValueError(f"name {name!r} must be lower-case letters, digits and underscores, "
                         "starting with a letter (it becomes a Kedro namespace)")
