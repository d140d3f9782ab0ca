"""Studies, variants and seeds: the typed ``ablation`` parameters and the runs they expand to.

A *study* tests one claim (one sentence, and the comparison that decides it) with a few
*variants*, each a named override of the ``cnn`` parameters; every variant trains once per
seed for the study's budget: ``max_steps`` optimiser steps, or ``epochs`` passes over the
run's own training part (with ``patience``, until the selection accuracy stops improving).
A run's parameters are ``cnn`` merged with ``ablation.base``, the study's ``overrides``, the
variant's overrides, then the seed and the budget. The same seed gives every variant of a
study the same initial weights (where the shapes agree), the same training part and the same
data order: the design is paired. Adding a variant is an edit of the YAML alone.

A claim's ``test`` is one part or a list of parts, each a comparison on one metric: ``better``
against ``than`` (``d = better - than``), or a ``contrast`` of variants with weights summing to
0 (an interaction: ``{group_bs8: 1, batch_bs8: -1, group_bs128: -1, batch_bs128: 1}``), and what
it ``expect``s of ``d``: ``better`` (above the metric's minimum effect) or ``not_worse`` (not
below minus its margin). Every variant a study trains is in some part of its test.

Seeds come in rounds: the claims are looked at after each number of seeds in ``looks`` (the
last is the cap, ``len(seeds)``); a claim decided at a look gets no more seeds
(``design.py``, ``sequential.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from simple_cnn.errors import ConfigError
from simple_cnn.params import Float, Int, Model, ParameterGroup, invalid
from simple_cnn.training.config import SEED_RANGE

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"  # a Kedro namespace part: no dots, no spaces
NAMESPACE = "ablation"
SET_BY_THE_STUDY = ("training.seed", "training.order_seed", "training.max_steps", "training.epochs",
                    "training.resume", "training.early_stopping_patience")
Metric = Literal["test_accuracy", "macro_f1", "val_accuracy", "gap", "dead_unit_fraction",
                 "diverged", "train_seconds", "images_per_second"]


@dataclass(frozen=True)
class MetricSpec:
    """A metric a claim can be decided on: which direction is better, and its unit as shown
    (``scale`` times the recorded value: accuracies are recorded as fractions, shown in points)."""

    better: Literal["higher", "lower"]
    unit: str
    scale: float = 1.0
    per_image: tuple[str, float] | None = None  # (evaluation part, sign): measured image by image


METRICS: dict[Metric, MetricSpec] = {
    "test_accuracy": MetricSpec("higher", "points", 100, ("test", 1.0)),
    "macro_f1": MetricSpec("higher", "points", 100),
    "val_accuracy": MetricSpec("higher", "points", 100, ("report", 1.0)),
    "gap": MetricSpec("lower", "points", 100, ("report", -1.0)),  # train minus val accuracy
    "dead_unit_fraction": MetricSpec("lower", "points", 100),
    "diverged": MetricSpec("lower", "points", 100),  # per cent of runs
    "train_seconds": MetricSpec("lower", "s"),
    "images_per_second": MetricSpec("higher", "images/s"),
}


class Threshold(Model):
    """What matters on one metric, in its own unit: an effect of at least ``min_effect`` counts,
    and one within ``+-margin`` is no meaningful difference (``margin <= min_effect``)."""

    min_effect: Float = Field(ge=0.0)
    margin: Float = Field(ge=0.0)

    @model_validator(mode="after")
    def _margin_inside(self) -> Threshold:
        if self.margin > self.min_effect:
            raise invalid("margin", self.margin, f"is above min_effect={self.min_effect:g}: an effect "
                          "could then be both meaningful and no meaningful difference; keep "
                          "margin <= min_effect")
        return self


THRESHOLDS: dict[Metric, dict[str, float]] = {"test_accuracy": {"min_effect": 1.0, "margin": 1.0},
              "macro_f1": {"min_effect": 1.0, "margin": 1.0},
              "val_accuracy": {"min_effect": 1.0, "margin": 1.0},
              "gap": {"min_effect": 1.0, "margin": 1.0},
              "dead_unit_fraction": {"min_effect": 1.0, "margin": 1.0},
              "diverged": {"min_effect": 10.0, "margin": 10.0},
              "train_seconds": {"min_effect": 1.0, "margin": 1.0},
              "images_per_second": {"min_effect": 100.0, "margin": 100.0}}


class Part(Model):
    """One comparison of a claim: ``better`` vs ``than``, or a ``contrast`` of variants."""

    metric: Metric = "test_accuracy"
    better: str | None = None
    than: str | None = None
    contrast: dict[str, Float] | None = None
    expect: Literal["better", "not_worse"] = "better"

    @model_validator(mode="after")
    def _one_comparison(self) -> Part:
        pair = self.better is not None or self.than is not None
        if pair == (self.contrast is not None):
            raise invalid("contrast" if self.contrast else "better", self.contrast or self.better,
                          "give either better and than, or a contrast of variants, not both")
        if pair and (self.better is None or self.than is None or self.better == self.than):
            raise invalid("than", self.than, f"must name another variant than better={self.better!r}")
        if self.contrast is not None:
            if len(self.contrast) < 2 or not math.isclose(sum(self.contrast.values()), 0.0, abs_tol=1e-9):
                raise invalid("contrast", self.contrast, "needs two or more variants whose weights sum "
                              "to 0 (e.g. {a_small: 1, b_small: -1, a_large: -1, b_large: 1})")
        return self

    @property
    def weights(self) -> dict[str, float]:
        """Variant -> weight of ``d`` (``better``: 1, ``than``: -1)."""
        if self.contrast is not None:
            return {name: float(w) for name, w in self.contrast.items() if w}
        if self.better is None or self.than is None:  # the model's validator refuses it first
            raise ConfigError("a test names better and than, or a contrast")
        return {self.better: 1.0, self.than: -1.0}

    def describe(self) -> str:
        if self.contrast is None:
            return f"{self.better} - {self.than}"
        return " ".join(f"{'+' if w > 0 else '-'} {abs(w):g} x {n}" for n, w in self.weights.items()).lstrip("+ ")


class Study(Model):
    claim: str = Field(min_length=1)
    test: list[Part] = Field(min_length=1)
    overrides: dict[str, Any] = {}
    variants: dict[str, dict[str, Any]] = Field(min_length=1)
    max_steps: Int | None = Field(None, ge=1)  # this study's budget in steps ...
    epochs: Int | None = Field(None, ge=1)  # ... or in passes over each run's training part
    patience: Int = Field(0, ge=0)  # with epochs: stop after this many epochs without improvement
    seeds: list[Int] | None = Field(None, min_length=2)
    looks: list[Int] | None = None
    order_seed_offsets: dict[str, Int] = {}  # variant -> its order/augmentation seed is seed + n
    control: bool = False  # an A/A control: judged like a claim, outside the family

    @field_validator("test", mode="before")
    @classmethod
    def _one_or_several(cls, test: Any) -> Any:
        return [test] if isinstance(test, dict) else test

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
        for i, part in enumerate(self.test):
            where = "test" if len(self.test) == 1 else f"test.{i}"
            unknown = [name for name in part.weights if name not in self.variants]
            if unknown:
                key = ("better" if unknown[0] == part.better else "than") if part.contrast is None else "contrast"
                raise invalid(f"{where}.{key}", unknown[0] if part.contrast is None else part.contrast,
                              f"is not a variant of this study; choose from: {', '.join(self.variants)}")
        unused = [name for name in self.variants if not any(name in p.weights for p in self.test)]
        if unused:
            raise invalid("variants", unused, "are trained but no part of the test compares them: "
                          "add them to a part (a contrast) or remove them")
        unknown = [name for name in self.order_seed_offsets if name not in self.variants]
        if unknown:
            raise invalid("order_seed_offsets", self.order_seed_offsets, f"names no variant "
                          f"({', '.join(unknown)}); choose from: {', '.join(self.variants)}")
        if self.epochs is not None and self.max_steps is not None:
            raise invalid("max_steps", self.max_steps, f"and epochs={self.epochs} are two budgets; "
                          "give one (steps, or passes over the training part)")
        if self.patience and self.epochs is None:
            raise invalid("patience", self.patience, "counts epochs without improvement: give the "
                          "study a budget in epochs (the cap), or remove patience")
        if self.patience and self.epochs is not None and self.patience >= self.epochs:
            raise invalid("patience", self.patience, f"is not shorter than the cap (epochs="
                          f"{self.epochs}): early stopping could never happen")
        return self

    def budget(self, default_steps: int) -> dict[str, Any]:
        """What the study's runs train for: ``{"unit": "steps" | "epochs", "length": n,
        "patience": p}``."""
        if self.epochs is not None:
            return {"unit": "epochs", "length": self.epochs, "patience": self.patience}
        return {"unit": "steps", "length": self.max_steps or default_steps, "patience": 0}

    @property
    def metrics(self) -> list[str]:
        """The metrics the claim is judged on, once each, in the order of its parts."""
        return list(dict.fromkeys(part.metric for part in self.test))


class AblationParams(ParameterGroup):
    key = "ablation"

    seeds: list[Int] = Field(list(range(12)), min_length=2)  # every study's seeds, up to its cap
    looks: list[Int] = [4, 8, 12]  # the claims are judged after this many seeds (then at the cap)
    max_steps: Int = Field(300, ge=1)  # a study's budget when it gives none
    val_images: Int = Field(500, ge=1)  # validation images that pick each run's best epoch ...
    report_images: Int = Field(1000, ge=1)  # ... and the next ones, the reported val accuracy and gap
    test_images: Int = Field(5000, ge=1)  # test images every run is scored on (the same for all)
    budget_points: list[Float] = [0.25, 0.5, 1.0]  # fractions of a run's budget evaluated
    alpha: Float = Field(0.05, gt=0.0, lt=0.5)  # the familywise level over every declared claim
    metrics: dict[Metric, Threshold] = Field(default_factory=lambda: {
        m: Threshold(**t) for m, t in THRESHOLDS.items()})  # what matters per metric
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
            _check_looks(self.looks_of(study), len(self.seeds_of(study)),
                         f"studies.{study}.looks" if spec.looks or spec.seeds else "looks")
            for variant, overrides in {"overrides": spec.overrides, **spec.variants}.items():
                fixed = [key for key in SET_BY_THE_STUDY if _has(overrides, key)]
                if fixed:
                    where = "overrides" if variant == "overrides" else f"variants.{variant}"
                    raise invalid(f"studies.{study}.{where}.{fixed[0]}", _get(overrides, fixed[0]),
                                  "is set by the study (seeds from ablation.seeds, the budget "
                                  "from the study's max_steps or epochs and patience); remove it "
                                  "from the override")
        if not self.claims():
            raise invalid("studies", list(self.studies), "holds only A/A controls: declare at "
                          "least one claim (control: false)")
        return self

    def seeds_of(self, study: str) -> list[int]:
        return self.studies[study].seeds or self.seeds

    def looks_of(self, study: str) -> list[int]:
        """After how many seeds the study's claim is judged (the last: all its seeds)."""
        spec = self.studies[study]
        if spec.looks:
            return spec.looks
        cap = len(self.seeds_of(study))
        return [n for n in self.looks if n < cap] + [cap]

    def rounds_of(self, study: str) -> list[list[int]]:
        """The study's seeds, round by round: the seeds added before each look."""
        seeds, looks = self.seeds_of(study), self.looks_of(study)
        return [seeds[start:stop] for start, stop in zip([0, *looks[:-1]], looks)]

    def threshold(self, metric: Metric) -> Threshold:
        """What matters on ``metric``: its minimum effect and margin (the default's if not set)."""
        return self.metrics.get(metric) or Threshold(**THRESHOLDS[metric])

    def claims(self) -> list[str]:
        """Every declared claim (A/A controls aside): the family, whatever ``studies_to_run``."""
        return [name for name, spec in self.studies.items() if not spec.control]

    def selected(self) -> dict[str, Study]:
        names = self.studies if self.studies_to_run == "all" else self.studies_to_run
        return {name: self.studies[name] for name in names}

    def runs(self) -> list[Run]:
        """Every (study, variant, seed) of the selected studies, up to each study's cap, in
        declaration order."""
        return [Run(study, variant, seed, round_)
                for study, spec in self.selected().items()
                for variant in spec.variants
                for round_, seeds in enumerate(self.rounds_of(study), start=1)
                for seed in seeds]


@dataclass(frozen=True)
class Run:
    study: str
    variant: str
    seed: int
    round: int = 1  # the study's round this seed belongs to (1: before the first look)

    @property
    def name(self) -> str:
        """``ablation.<study>.<variant>.seed_<n>``: the run's name, whatever round the looks put
        it in; its row is the dataset ``<name>.ablation_run``."""
        return f"{NAMESPACE}.{self.study}.{self.variant}.seed_{self.seed}"

    @property
    def namespace(self) -> str:
        """``ablation.<study>.round_<k>.<variant>.seed_<n>``: its nodes' namespace (a group in
        kedro-viz, what ``kedro run --namespaces`` takes). The round comes before the variant:
        a round's runs read the rows of every variant of the rounds before, so a group of one
        variant across rounds would be interrupted by the others' runs (Kedro warns of it)."""
        return f"{NAMESPACE}.{self.study}.round_{self.round}.{self.variant}.seed_{self.seed}"


def _check_looks(looks: list[int], cap: int, key: str) -> None:
    if not looks or looks[0] < 2 or sorted(set(looks)) != looks or looks[-1] != cap:
        raise ConfigError(f"ablation.{key}={looks}: the looks must rise from 2 or more seeds to "
                          f"the study's {cap} seeds (its cap), each once, e.g. [3, 5, {cap}].")


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _has(tree: dict[str, Any], dotted: str) -> bool:
    return dotted in flatten(tree)


def _get(tree: dict[str, Any], dotted: str) -> Any:
    return flatten(tree)[dotted]


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
