"""The first lesson's three claims, each judged by the ablation study's rule.

The rule is :mod:`simple_cnn.ablation.summary`'s: a paired difference ``d`` signed so that
positive is the claimed direction, its Student-t interval and two-sided p, Holm-adjusted over
every part judged together, then :func:`~simple_cnn.ablation.summary.decide`. The pairs here
are the test images (both models see the same transformed copies), not seeds; a percentile
bootstrap over the images gives a second interval beside the t one. For the cost claim, ``d``
is the fitted slope's distance from its threshold, with the fit's own t interval.

A claim with several parts holds where its parts are supported; the verdict of each part is
reported, and the claim is *supported* only if all are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from simple_cnn.ablation.summary import decide, holm, paired_test
from simple_cnn.first_lesson.robustness import SECOND_SHIFT, RobustnessParams, key
from simple_cnn.first_lesson.transforms import IDENTITY

CLAIMS = {
    "lighting_and_rotation": "HOG + SVM loses more accuracy than the CNN under rotation and "
                             "under lighting changes (brightness, contrast).",
    "svm_cost": "The exact kernel SVM's fit time grows at least quadratically with the training "
                "set, while the linear SVM's and the kernel approximation's grow about linearly.",
    "shift_consistency": "The CNN's predictions are more consistent under small shifts than "
                         "HOG + SVM's.",
}


@dataclass(frozen=True)
class Rule:
    alpha: float
    min_difference: float


def accuracy_drop_difference(svm: dict[str, np.ndarray], cnn: dict[str, np.ndarray],
                             labels: np.ndarray, kind: str,
                             robustness: RobustnessParams) -> np.ndarray:
    """Per image, over the transform's strengths: the SVM's loss of correctness minus the
    CNN's (positive: the SVM loses more)."""
    def drop(predictions):
        before = (predictions[key(kind, IDENTITY[kind])] == labels).astype(float)
        return np.mean([before - (predictions[key(kind, s)] == labels)
                        for s in robustness.changes(kind)], axis=0)

    return drop(svm) - drop(cnn)


def consistency_difference(svm: dict[str, np.ndarray], cnn: dict[str, np.ndarray],
                           shifts: list[float], between_shifts: bool) -> np.ndarray:
    """Per image, over ``shifts``: the CNN's consistency minus the SVM's (positive: the CNN is
    more consistent), with the unshifted image or between two shifts."""
    def same(predictions):
        base = [predictions[key("shift", IDENTITY["shift"])]] * len(shifts) if not between_shifts else [
            predictions[key(SECOND_SHIFT, s)] for s in shifts]
        return np.mean([predictions[key("shift", s)] == b for s, b in zip(shifts, base)], axis=0)

    return same(cnn) - same(svm)


def bootstrap_interval(d: np.ndarray, alpha: float, resamples: int, seed: int) -> list[float]:
    """A percentile bootstrap interval of the mean of ``d`` over the images."""
    from scipy import stats

    if np.ptp(d) == 0:
        return [float(d[0]), float(d[0])]
    result = stats.bootstrap((d,), np.mean, n_resamples=resamples, confidence_level=1 - alpha,
                             method="percentile", rng=np.random.default_rng(seed))
    return [float(result.confidence_interval.low), float(result.confidence_interval.high)]


def slope_test(fit: dict[str, Any], threshold: float, at_least: bool) -> dict[str, Any]:
    """``d`` = slope - threshold (``at_least``) or threshold - slope, with the fit's interval
    and the two-sided p of t = d / stderr."""
    from scipy import stats

    sign = 1.0 if at_least else -1.0
    d = sign * (fit["slope"] - threshold)
    low, high = sorted(sign * (bound - threshold) for bound in fit["interval"])
    p = 0.0 if fit["stderr"] == 0 else float(2 * stats.t.sf(abs(d) / fit["stderr"], fit["df"]))
    return {"n": fit["df"] + 2, "mean": d, "interval": [low, high], "p": p}


def judge(svm: dict[str, np.ndarray], cnn: dict[str, np.ndarray], labels: np.ndarray,
          cost: dict[str, Any], params: Any) -> dict[str, Any]:
    """Every part of the three claims: its test, Holm-adjusted p, verdict and reason; and per
    claim which parts hold. ``params``: the ``first_lesson`` group."""
    robustness, alpha = params.robustness, params.alpha
    parts: list[dict[str, Any]] = []
    for kind in ("rotation", "brightness", "contrast"):
        d = accuracy_drop_difference(svm, cnn, labels, kind, robustness)
        parts.append(_image_part("lighting_and_rotation", kind, d, params,
                                 f"mean accuracy drop over {robustness.changes(kind)}"))
    small = [s for s in robustness.changes("shift") if s <= params.small_shift]
    for between in (False, True):
        d = consistency_difference(svm, cnn, small, between)
        parts.append(_image_part(
            "shift_consistency", "between two shifts" if between else "with the unshifted image",
            d, params, f"mean consistency over shifts of {small} pixels"))
    for name, fit in ((n, c["fit_slope"]) for n, c in cost["classifiers"].items()):
        exact = name == "rbf_svc"
        threshold = params.quadratic_slope if exact else params.linear_slope_below
        parts.append({"claim": "svm_cost", "part": name, "slope": fit["slope"],
                      "slope_interval": fit["interval"], "threshold": threshold,
                      "measure": (f"fit-time slope at least {threshold:g}" if exact else
                                  f"fit-time slope below {threshold:g}"),
                      "test": slope_test(fit, threshold, at_least=exact), "min_difference": 0.0})
    for part, p_adjusted in zip(parts, holm([p["test"]["p"] for p in parts])):
        part["p_adjusted"] = p_adjusted
        part["verdict"], part["reason"] = decide(
            part["test"], p_adjusted, Rule(alpha, part.pop("min_difference")), more_failures=False)
    return {"claims": {name: _claim(name, [p for p in parts if p["claim"] == name])
                       for name in CLAIMS},
            "parts": parts, "alpha": alpha, "min_difference": params.min_difference,
            "test_images": int(len(labels))}


def _image_part(claim: str, part: str, d: np.ndarray, params: Any, measure: str) -> dict[str, Any]:
    return {"claim": claim, "part": part, "measure": measure,
            "test": paired_test(d.tolist(), params.alpha),
            "bootstrap_interval": bootstrap_interval(d, params.alpha, params.bootstrap_resamples,
                                                     params.robustness.seed),
            "min_difference": params.min_difference}


def _claim(name: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The claim's verdict from its parts': supported or contradicted when all parts are,
    partly supported when some part holds, partly contradicted when none holds and some part
    is contradicted, inconclusive otherwise."""
    verdicts = {p["part"]: p["verdict"] for p in parts}
    held = [part for part, v in verdicts.items() if v == "supported"]
    against = [part for part, v in verdicts.items() if v == "contradicted"]
    overall = ("supported" if len(held) == len(parts) else
               "contradicted" if len(against) == len(parts) else
               "partly supported" if held else "partly contradicted" if against else "inconclusive")
    return {"statement": CLAIMS[name], "verdict": overall, "parts": verdicts, "holds_for": held,
            "contradicted_for": against}
