"""The study's procedure as applied, measured on simulated studies: its familywise error and its
power, by rounds, caps, the family's correction, minimum effect and margin.

Each simulated claim compares two variants paired by seed: per seed, ``d = effect + noise``
(points of test accuracy, noise ``N(0, sd)``), written as rows like the pipeline's and read by
the very code that judges a real study (``sequential.read_study``), look by look, stopping at
the first look that decides. A *false decision* is a verdict the true effect contradicts:
supported with an effect at most the minimum effect, contradicted with one at least minus
it, equivalent with one outside the margin. ``python -m simple_cnn.ablation.simulate`` prints
the power table of ``docs/ablation.md``.
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from simple_cnn.ablation.sequential import read_study
from simple_cnn.ablation.studies import AblationParams


@dataclass(frozen=True)
class Outcome:
    verdicts: list[str]  # per claim: supported, contradicted, equivalent or inconclusive
    seeds: list[int]  # per claim: the seeds it used


def family(claims: int, seeds: int, looks: list[int], alpha: float = 0.05,
           min_effect: float = 1.0, margin: float = 1.0) -> AblationParams:
    """Study settings of ``claims`` two-variant claims on test accuracy, as the pipeline reads them."""
    study = {"claim": "simulated", "test": {"metric": "test_accuracy", "better": "b", "than": "a"},
             "variants": {"a": {}, "b": {}}}
    return AblationParams.model_validate({
        "seeds": list(range(seeds)), "looks": looks, "alpha": alpha,
        "metrics": {"test_accuracy": {"min_effect": min_effect, "margin": margin}},
        "studies": {f"c{i}": study for i in range(claims)}})


def simulate(settings: AblationParams, effects: list[float], sd: float, rng: np.random.Generator) -> Outcome:
    """One simulated study: every claim's rows (effect in points, paired noise of ``sd``
    points), judged as the pipeline judges them."""
    verdicts, used = [], []
    for name, effect in zip(settings.studies, effects):
        seeds = settings.seeds_of(name)
        base = 0.5 + rng.normal(0, 0.02, len(seeds))  # what the seed does to both variants
        better = base + (effect + rng.normal(0, sd, len(seeds))) / 100
        rows = [_row(name, variant, seed, value) for seed, a, b in zip(seeds, base, better)
                for variant, value in (("a", a), ("b", b))]
        read = read_study(name, rows, settings)
        last = read["last"]
        verdicts.append("inconclusive" if read["open"] else last["verdict"])
        used.append(last["seeds"])
    return Outcome(verdicts, used)


def _row(study: str, variant: str, seed: int, value: float) -> dict[str, Any]:
    return {"study": study, "variant": variant, "seed": seed, "diverged": False,
            "namespace": f"ablation.{study}.{variant}.seed_{seed}", "test_accuracy": float(value)}


def false_decision(verdict: str, effect: float, min_effect: float, margin: float) -> bool:
    return ((verdict == "supported" and effect <= min_effect)
            or (verdict == "contradicted" and effect >= -min_effect)
            or (verdict == "equivalent" and abs(effect) >= margin))


def familywise_error(settings: AblationParams, effects: list[float], sd: float, studies: int,
                     seed: int = 0) -> dict[str, float]:
    """Over ``studies`` simulated studies: the share with at least one false decision, and the
    mean seeds per claim."""
    rng = np.random.default_rng(seed)
    threshold = settings.threshold("test_accuracy")
    wrong, seeds = 0, []
    for _ in range(studies):
        outcome = simulate(settings, effects, sd, rng)
        wrong += any(false_decision(v, e, threshold.min_effect, threshold.margin)
                     for v, e in zip(outcome.verdicts, effects))
        seeds += outcome.seeds
    return {"familywise_error": wrong / studies, "mean_seeds": float(np.mean(seeds))}


def power(effect: float, sd: float, seeds: int, looks: list[int], claims: int = 7, studies: int = 400,
          seed: int = 0) -> dict[str, float]:
    """How often one claim of true ``effect`` (beside ``claims - 1`` others in the family) ends
    supported, contradicted, equivalent, and its mean seeds."""
    settings = family(claims, seeds, looks)
    rng = np.random.default_rng(seed)
    one = AblationParams.model_validate({**settings.model_dump(), "studies_to_run": ["c0"]})
    counts: dict[str, int] = {}
    used = []
    for _ in range(studies):
        outcome = simulate(one, [effect], sd, rng)
        counts[outcome.verdicts[0]] = counts.get(outcome.verdicts[0], 0) + 1
        used.append(outcome.seeds[0])
    return {**{v: counts.get(v, 0) / studies for v in ("supported", "contradicted", "equivalent",
                                                        "inconclusive")},
            "mean_seeds": float(np.mean(used))}


def power_table(effects=(0.0, 2.0, 3.0, 5.0), sds=(1.0, 2.0, 4.0),
                caps=((4, [4]), (8, [4, 8]), (12, [4, 8, 12]), (24, [6, 12, 18, 24])),
                studies: int = 400) -> str:
    """The docs' table: per effect, seed spread and cap, the share of simulated claims supported
    (equivalent for an effect of 0) and the mean seeds used. The caps are the envs': ``quick``
    (4), the default studies (8 and 12), ``gpu`` (24)."""
    lines = ["| effect (points) | SD of d (points) | " + " | ".join(f"cap {c} (looks {', '.join(map(str, lk))})"
                                                           for c, lk in caps) + " |",
             "| ---: | ---: |" + " ---: |" * len(caps)]
    for effect, sd in itertools.product(effects, sds):
        cells = []
        for cap, looks in caps:
            found = power(effect, sd, cap, looks, studies=studies)
            share = found["equivalent"] if effect == 0 else found["supported"]
            cells.append(f"{share:.0%} ({found['mean_seeds']:.1f} seeds)")
        lines.append(f"| {effect:g} | {sd:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m simple_cnn.ablation.simulate [studies]
    print(power_table(studies=int(sys.argv[1]) if len(sys.argv) > 1 else 400))
