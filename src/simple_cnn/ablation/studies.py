"""Studies, variants and seeds: the typed ``ablation`` parameters and the runs they expand to.

A *study* tests one claim (one sentence, and the comparison that decides it) with a few
*variants*, each a named override of the ``cnn`` parameters; every variant trains once per
seed for the same budget of optimiser steps. A run's parameters are ``cnn`` merged with
``ablation.base``, the study's ``overrides``, the variant's overrides, then the seed and the
budget. Adding a variant is an edit of the YAML alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from simple_cnn.params import Float, Int, Model, ParameterGroup, build, invalid, merged
from simple_cnn.training.config import SEED_RANGE

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"  # a Kedro namespace part: no dots, no spaces
NAMESPACE = "ablation"
SET_BY_THE_STUDY = ("training.seed", "training.max_steps", "training.resume")

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
    max_steps: Int | None = Field(None, ge=1)  # this study's budget, if not ablation.max_steps
    seeds: list[Int] | None = Field(None, min_length=1)

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
        return self


class AblationParams(ParameterGroup):
    key = "ablation"

    seeds: list[Int] = Field([0, 1], min_length=1)
    max_steps: Int = Field(200, ge=1)
    val_images: Int = Field(1000, ge=1)
    noise_multiple: Float = Field(2.0, gt=0.0)
    min_difference: Float = Field(0.005, ge=0.0)
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
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds repeat: {seeds}; list each seed once")
        if any(not SEED_RANGE[0] <= s <= SEED_RANGE[1] for s in seeds):
            raise ValueError(f"every seed must be in {SEED_RANGE[0]}..{SEED_RANGE[1]}")
        return seeds

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
                                  "from max_steps); remove it from the override")
        return self

    def selected(self) -> dict[str, Study]:
        names = self.studies if self.studies_to_run == "all" else self.studies_to_run
        return {name: self.studies[name] for name in names}

    def runs(self) -> list[Run]:
        """Every (study, variant, seed) of the selected studies, in declaration order."""
        return [Run(study, variant, seed)
                for study, spec in self.selected().items()
                for variant in spec.variants
                for seed in (spec.seeds or self.seeds)]


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
    values = merged(base_cnn, ablation.base, study.overrides, study.variants[run.variant],
                    {"training": {"seed": run.seed, "resume": False,
                                  "max_steps": study.max_steps or ablation.max_steps}})
    return build(CnnParams, f"ablation.studies.{run.study}.variants.{run.variant}", **values)


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


def _check_name(name: str) -> None:
    import re

    if not re.match(NAME_PATTERN, name):
        raise ValueError(f"name {name!r} must be lower-case letters, digits and underscores, "
                         "starting with a letter (it becomes a Kedro namespace)")
