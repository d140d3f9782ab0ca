"""Aggregate a study's runs over seeds and judge its claim: a paired rule with intervals.

The rule, stated once (the report prints :func:`verdict_rule`):

- **Pairs.** The variants of a study share each seed's initial weights (where the shapes
  agree), training part and data order. For every seed run by both sides of the claim, ``d``
  is the claim's metric of ``better`` minus that of ``than``, signed so that positive is the
  claimed direction.
- **Failed runs.** A diverged run is a failed run, never a missing one: it scores what a
  network that learned nothing scores, chance (1 / classes) on the accuracy metrics and 1 on
  ``dead_unit_fraction`` and ``diverged``. Metrics without such a score (the train-val gap,
  seconds, images/s) leave out a pair with a diverged run, and say how many.
- **Test.** Over the pairs: the mean of ``d``, its 95 % interval (Student t, n - 1 degrees of
  freedom) and the two-sided p of a one-sample t-test (``scipy.stats.ttest_1samp``). The
  p-values of the claims judged together are Holm-adjusted; an A/A control (``control``) is
  judged on its own, as the check of the rule's false alarms.
- **Verdict.** *Supported*: adjusted p below ``alpha`` (so the whole interval lies on the
  claimed side), the mean at least ``min_difference``, and the ``better`` side diverged no
  more often than the other. *Contradicted*: adjusted p below ``alpha`` with the mean on the
  other side. *Inconclusive* otherwise, or with fewer than 2 pairs; the reason says which.
- **Along the budget.** The same rule at each of ``budget_points`` (fractions of each run's
  budget: the best weights at that point); a claim whose verdict is not the same at every
  point is *budget-dependent*.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Protocol

import numpy as np

from simple_cnn.ablation.studies import METRICS, AblationParams

FAILED_SCORE = {"test_accuracy": "chance", "macro_f1": "chance", "val_accuracy": "chance",
                "dead_unit_fraction": 1.0, "diverged": 1.0}
"""What a diverged run scores on a metric; metrics not listed have no such score."""


class Rule(Protocol):
    """What :func:`decide` needs of its settings (``AblationParams`` and the first lesson's)."""

    alpha: float
    min_difference: float


def verdict_rule(ablation: AblationParams) -> str:
    return (f"Paired by seed: d = better - than on the claim's metric (positive: the claimed "
            f"direction), its mean with a {1 - ablation.alpha:.0%} Student-t interval and the "
            f"two-sided p of a one-sample t-test, Holm-adjusted over the claims judged together "
            f"(the A/A control on its own). Supported: adjusted p < {ablation.alpha:g}, mean >= "
            f"{ablation.min_difference:g} in the claimed direction, and the better side diverged "
            f"no more often; contradicted: adjusted p < {ablation.alpha:g} the other way; "
            f"inconclusive otherwise (or with fewer than 2 pairs). A diverged run scores chance "
            f"accuracy (1 / classes) and 1 on dead units; a pair with a diverged run is left out "
            f"for the gap, seconds and images/s.")


def score(row: dict[str, Any], metric: str, point: str | None = None) -> float | None:
    """The run's ``metric`` (at budget ``point``, or at the end); a diverged run's failure
    score; None where the run has no value (e.g. dead units of GELU)."""
    if row["diverged"]:
        failed = FAILED_SCORE.get(metric)
        return row["chance"] if failed == "chance" else failed
    if metric == "diverged":
        return 0.0
    values = row if point is None else row["along_budget"][point]
    value = values.get(metric)
    return None if value is None else float(value)


def describe(values: list[float]) -> dict[str, Any]:
    n = len(values)
    return {"mean": float(np.mean(values)) if n else None,
            "std": float(np.std(values, ddof=1)) if n > 1 else (0.0 if n else None), "n": n}


def paired_differences(better: list[dict], than: list[dict], metric: str,
                       point: str | None = None) -> tuple[list[dict[str, Any]], int]:
    """Per seed run by both sides: the two scores and d (positive: the claimed direction);
    and how many pairs were left out (no score on one side)."""
    sign = 1.0 if METRICS[metric] == "higher" else -1.0
    by_seed = {row["seed"]: row for row in than}
    pairs, left_out = [], 0
    for row in sorted(better, key=lambda r: r["seed"]):
        other = by_seed.get(row["seed"])
        if other is None:
            continue
        a, b = score(row, metric, point), score(other, metric, point)
        if a is None or b is None:
            left_out += 1
            continue
        pairs.append({"seed": row["seed"], "better": a, "than": b, "difference": sign * (a - b)})
    return pairs, left_out


def paired_test(differences: list[float], alpha: float) -> dict[str, Any]:
    """Mean of the differences, its ``1 - alpha`` Student-t interval and the two-sided p."""
    from scipy import stats

    n = len(differences)
    if n < 2:
        return {"n": n, "mean": float(differences[0]) if n else None, "interval": None, "p": None}
    mean = float(np.mean(differences))
    if np.ptp(differences) == 0:  # no spread: t is infinite (or undefined at 0)
        return {"n": n, "mean": mean, "interval": [mean, mean], "p": 1.0 if mean == 0 else 0.0}
    result = stats.ttest_1samp(differences, 0.0)
    low, high = result.confidence_interval(1 - alpha)
    return {"n": n, "mean": mean, "interval": [float(low), float(high)], "p": float(result.pvalue)}


def holm(pvalues: list[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of the p-values of one family (None: not tested)."""
    tested = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    adjusted: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - rank) * p))
        adjusted[i] = running
    return adjusted


def decide(test: dict[str, Any], p_adjusted: float | None, ablation: Rule,
           more_failures: bool) -> tuple[str, str]:
    """The verdict and its reason in words, from a paired test and its adjusted p."""
    if p_adjusted is None:
        return "inconclusive", f"fewer than 2 paired seeds ({test['n']})"
    mean, low, high = test["mean"], *test["interval"]
    numbers = (f"mean difference {mean:+.4g} in the claimed direction, interval "
               f"[{low:+.4g}, {high:+.4g}], adjusted p {p_adjusted:.3g}")
    if p_adjusted >= ablation.alpha:
        return "inconclusive", f"{numbers}: not below {ablation.alpha:g}, the seeds do not decide"
    if mean < 0:
        return "contradicted", f"{numbers}: the other side is better"
    if more_failures:
        return "inconclusive", f"{numbers}, but the better side diverged more often"
    if mean < ablation.min_difference:
        return "inconclusive", (f"{numbers}: real but below the minimum difference that matters "
                                f"({ablation.min_difference:g})")
    return "supported", numbers


def summarise(records: list[dict[str, Any]], ablation: AblationParams) -> dict[str, Any]:
    """Per study: per variant mean/std/n of every metric, the regime, the paired differences,
    the test at the end and along the budget, and the verdict."""
    studies = {name: _study(name, [r for r in records if r["study"] == name], ablation)
               for name in ablation.selected()}
    points = [*_points(ablation), None]
    for point in points:  # Holm within each family: the claims, and the control on its own
        for family in ([s for s in studies.values() if not s["control"]],
                       [s for s in studies.values() if s["control"]]):
            tests = [s["tests"][str(point)] for s in family]
            for study, test, adjusted in zip(family, tests, holm([t["p"] for t in tests])):
                test["p_adjusted"] = adjusted
                test["verdict"], test["reason"] = decide(test, adjusted, ablation, study["more_failures"])
    for study in studies.values():
        end = study["tests"].pop("None")
        study.update(verdict=end["verdict"], reason=end["reason"], difference=end["mean"],
                     interval=end["interval"], p=end["p"], p_adjusted=end["p_adjusted"],
                     n_pairs=end["n"], pairs=end.pop("pairs"), left_out=end.pop("left_out"))
        study["along_budget"] = [{"fraction": float(p), **{k: v for k, v in t.items() if k != "pairs"}}
                                 for p, t in study.pop("tests").items()]
        verdicts = {row["verdict"] for row in study["along_budget"]} | {study["verdict"]}
        study["budget_dependent"] = len(verdicts) > 1
    claims = [s for s in studies.values() if not s["control"]]
    return {"rule": verdict_rule(ablation), "alpha": ablation.alpha,
            "min_difference": ablation.min_difference, "seeds": ablation.seeds,
            "budget_points": ablation.budget_points, "claims_judged_together": len(claims),
            "runs": len(records), "studies": studies, "inputs": summary_inputs(ablation, records)}


def _points(ablation: AblationParams) -> list[str]:
    return [str(p) for p in ablation.budget_points if p < 1]


def _study(name: str, mine: list[dict[str, Any]], ablation: AblationParams) -> dict[str, Any]:
    spec = ablation.studies[name]
    by_variant = {v: [r for r in mine if r["variant"] == v] for v in spec.variants}
    variants = {v: {"runs": len(rs), "n_diverged": sum(r["diverged"] for r in rs),
                    **{metric: describe(_finished(rs, metric)) for metric in METRICS}}
                for v, rs in by_variant.items()}
    test = spec.test
    better, than = by_variant[test.better], by_variant[test.than]
    tests = {}
    for point in [*_points(ablation), None]:
        pairs, left_out = paired_differences(better, than, test.metric, point)
        tests[str(point)] = {**paired_test([p["difference"] for p in pairs], ablation.alpha),
                             "pairs": pairs, "left_out": left_out}
    return {"claim": spec.claim, "test": test.model_dump(), "control": spec.control,
            "regime": regime(mine, spec.budget(ablation.max_steps)),
            "variants": variants, "factors": {r["variant"]: r["factors"] for r in mine},
            "more_failures": variants[test.better]["n_diverged"] > variants[test.than]["n_diverged"],
            "tests": tests}


def _finished(rows: list[dict[str, Any]], metric: str) -> list[float]:
    """A variant's metric over its runs: every run for ``diverged``, finished runs otherwise."""
    values = [score(r, metric) for r in rows if metric == "diverged" or not r["diverged"]]
    return [v for v in values if v is not None]


def regime(rows: list[dict[str, Any]], budget: dict[str, Any]) -> dict[str, Any]:
    """What the study's runs were: images, passes over them, steps, and how many stopped by
    themselves (converged) rather than at the cap."""
    finished = [r for r in rows if not r["diverged"]]
    return {
        "budget": budget, "n_train": sorted({r["n_train"] for r in rows}),
        "batch_size": sorted({r["batch_size"] for r in rows}),
        "passes": _mean([r["passes"] for r in finished]), "steps": _mean([r["steps"] for r in finished]),
        "converged": sum(bool(r["converged"]) for r in finished), "finished": len(finished),
        "runs": len(rows),
    }


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def summary_inputs(ablation: AblationParams, rows: list[dict[str, Any]]) -> str:
    """The fingerprint of what a summary is made of: the study settings and every row."""
    made_of = {"ablation": ablation.model_dump(mode="json"),
               "rows": sorted(r.get("fingerprint") or "" for r in rows)}
    return hashlib.sha256(json.dumps(made_of, sort_keys=True).encode()).hexdigest()[:16]
