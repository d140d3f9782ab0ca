"""Aggregate the runs of a study over seeds and judge its claim.

The verdict rule, stated once (the report prints it): let ``d`` be the difference of the
means of the claim's metric, ``better`` minus ``than``, signed so that positive is the claimed
direction, and ``s`` the pooled standard deviation over seeds, ``sqrt((s_better^2 +
s_than^2) / 2)``. The claim is **supported** if ``d > max(k * s, m)``, **contradicted** if
``d < -max(k * s, m)``, and **inconclusive** otherwise (the difference is within the
seed-to-seed noise), where ``k`` is ``ablation.noise_multiple`` and ``m`` is
``ablation.min_difference``. With fewer than two finished runs on either side it is
inconclusive. A diverged run counts as 1 for the metric ``diverged`` and is left out of the
others (it has no accuracy).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from simple_cnn.ablation.studies import METRICS, AblationParams


def verdict_rule(ablation: AblationParams) -> str:
    return (f"A claim is supported when the mean difference in the claimed direction exceeds "
            f"max({ablation.noise_multiple:g} x the pooled seed standard deviation, "
            f"{ablation.min_difference:g}), contradicted when it exceeds that bound the other "
            "way, and inconclusive otherwise (or with fewer than 2 finished runs per side).")


def metric_values(records: list[dict[str, Any]], metric: str) -> list[float]:
    """The metric over a variant's runs: every run for ``diverged``, finished runs otherwise."""
    if metric == "diverged":
        return [float(r["diverged"]) for r in records]
    return [float(r[metric]) for r in records if not r["diverged"] and r.get(metric) is not None]


def describe(values: list[float]) -> dict[str, Any]:
    n = len(values)
    return {"mean": float(np.mean(values)) if n else None,
            "std": float(np.std(values, ddof=1)) if n > 1 else (0.0 if n else None), "n": n}


def judge(better: list[float], than: list[float], metric: str, ablation: AblationParams) -> dict[str, Any]:
    """The verdict of ``better`` beating ``than`` on ``metric``, with the numbers behind it."""
    a, b = describe(better), describe(than)
    if a["n"] < 2 or b["n"] < 2:
        return {"verdict": "inconclusive", "difference": None, "threshold": None,
                "reason": f"fewer than 2 finished runs ({a['n']} and {b['n']})"}
    sign = 1.0 if METRICS[metric] == "higher" else -1.0
    difference = sign * (a["mean"] - b["mean"])
    pooled = math.sqrt((a["std"] ** 2 + b["std"] ** 2) / 2)
    threshold = max(ablation.noise_multiple * pooled, ablation.min_difference)
    verdict = ("supported" if difference > threshold else
               "contradicted" if difference < -threshold else "inconclusive")
    return {"verdict": verdict, "difference": difference, "threshold": threshold,
            "reason": f"difference {difference:+.4g} in the claimed direction against a noise "
                      f"bound of {threshold:.4g}"}


def summarise(records: list[dict[str, Any]], ablation: AblationParams) -> dict[str, Any]:
    """Per study: per variant mean/std/n of every metric over seeds, and the claim's verdict."""
    studies = {}
    for name, study in ablation.selected().items():
        mine = [r for r in records if r["study"] == name]
        by_variant = {v: [r for r in mine if r["variant"] == v] for v in study.variants}
        variants = {
            v: {"runs": len(rs), "n_diverged": sum(r["diverged"] for r in rs),
                **{metric: describe(metric_values(rs, metric)) for metric in METRICS}}
            for v, rs in by_variant.items()
        }
        test = study.test
        studies[name] = {
            "claim": study.claim, "test": test.model_dump(),
            "variants": variants, "factors": _factors(mine),
            **judge(metric_values(by_variant[test.better], test.metric),
                    metric_values(by_variant[test.than], test.metric), test.metric, ablation),
        }
    return {"rule": verdict_rule(ablation), "seeds": ablation.seeds,
            "max_steps": ablation.max_steps, "runs": len(records), "studies": studies}


def _factors(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """variant -> the keys it sets (for the tables and the figures' axes)."""
    return {r["variant"]: r["factors"] for r in records}

