"""The first lesson's three claims, each part judged by the ablation study's verdicts.

The verdicts are :mod:`simple_cnn.ablation.verdicts`' (supported, contradicted, equivalent,
inconclusive), read off intervals that hold for every part together: the family is every part
of the three claims (fixed by the claims, 8 parts), each at ``alpha / 8`` (Bonferroni). The pairs
here are the test images (both models see the same transformed copies), not seeds: ``d`` is
the mean over images of a per-image paired difference, in points, with its Student-t interval
(a percentile bootstrap over the images gives a second interval beside it). For the cost claim
the fitted slope's own t interval (``points - 2`` degrees of freedom) is judged: the exact SVM's
slope against the threshold its sentence states (at least quadratic: 2), the linear SVM's and the
kernel map's against a band around 1 (``about linearly``: inside ``linear_slope_band``).

A claim with several parts is supported when all hold, contradicted when all are contradicted,
partly supported or partly contradicted in between (naming the parts), inconclusive otherwise.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from simple_cnn.ablation.intervals import t_interval
from simple_cnn.ablation.verdicts import part_verdict, reason
from simple_cnn.first_lesson.robustness import SECOND_SHIFT, RobustnessParams, key
from simple_cnn.first_lesson.transforms import IDENTITY

EXACT, LINEAR = ("rbf_svc",), ("linear_svc", "kernel_approx")


def statements(params: Any) -> dict[str, str]:
    """The claims' sentences, with the thresholds they are tested at."""
    slope = params.quadratic_slope
    grows = "at least quadratically" if slope == 2 else f"at least as n^{slope:g}"
    low, high = params.linear_slope_band
    return {
        "lighting_and_rotation": "HOG + SVM loses more accuracy than the CNN under rotation and "
                                 "under lighting changes (brightness, contrast).",
        "svm_cost": f"The exact kernel SVM's fit time grows {grows} with the training set, while "
                    f"the linear SVM's and the kernel approximation's grow about linearly (as n^b "
                    f"with b in [{low:g}, {high:g}]).",
        "shift_consistency": "The CNN's predictions are more consistent under small shifts than "
                             "HOG + SVM's.",
    }


CLAIMS = ("lighting_and_rotation", "svm_cost", "shift_consistency")


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


def bootstrap_interval(d: np.ndarray, level: float, resamples: int, seed: int) -> list[float]:
    """A percentile bootstrap interval of the mean of ``d`` over the images."""
    from scipy import stats

    if np.ptp(d) == 0:
        return [float(d[0]), float(d[0])]
    result = stats.bootstrap((d,), np.mean, n_resamples=resamples, confidence_level=1 - level,
                             method="percentile", rng=np.random.default_rng(seed))
    return [float(result.confidence_interval.low), float(result.confidence_interval.high)]


def slope_interval(fit: dict[str, Any], level: float) -> dict[str, Any]:
    """The fitted slope with its two-sided ``1 - level`` t interval."""
    from scipy.special import stdtrit

    half = float(stdtrit(fit["df"], 1 - level / 2)) * fit["stderr"]
    return {"mean": fit["slope"], "low": fit["slope"] - half, "high": fit["slope"] + half,
            "n": fit["df"] + 2, "method": "t (slope)", "seed_sd": None, "image_se": None}


def judge(svm: dict[str, np.ndarray], cnn: dict[str, np.ndarray], labels: np.ndarray,
          cost: dict[str, Any], params: Any) -> dict[str, Any]:
    """Every part of the three claims: its interval at the family's level, verdict and reason;
    and per claim which parts hold. ``params``: the ``first_lesson`` group."""
    robustness = params.robustness
    small = [s for s in robustness.changes("shift") if s <= params.small_shift]
    image_parts = [("lighting_and_rotation", kind, f"mean accuracy drop over {robustness.changes(kind)}",
                    accuracy_drop_difference(svm, cnn, labels, kind, robustness))
                   for kind in ("rotation", "brightness", "contrast")]
    image_parts += [("shift_consistency", "between two shifts" if between else "with the unshifted image",
                     f"mean consistency over shifts of {small} pixels",
                     consistency_difference(svm, cnn, small, between)) for between in (False, True)]
    level = params.alpha / (len(image_parts) + len(EXACT) + len(LINEAR))
    parts = [_image_part(claim, part, measure, 100 * d, level, params)
             for claim, part, measure, d in image_parts]
    parts += [_cost_part(name, cost["classifiers"][name]["fit_slope"], level, params)
              for name in (*EXACT, *LINEAR)]
    sentences = statements(params)
    return {"claims": {name: _claim(name, sentences[name], [p for p in parts if p["claim"] == name])
                       for name in sentences},
            "parts": parts, "alpha": params.alpha, "part_level": level,
            "min_effect": params.min_effect, "margin": params.margin,
            "test_images": int(len(labels))}


def _image_part(claim: str, part: str, measure: str, d: np.ndarray, level: float, params: Any) -> dict[str, Any]:
    found = t_interval(d, level).as_dict()
    out = {"claim": claim, "part": part, "measure": measure, "unit": "points", "expect": "better",
           "min_effect": params.min_effect, "margin": params.margin, "level": level,
           "interval": found, "raw_interval": t_interval(d, 0.05).as_dict(),
           "bootstrap_interval": bootstrap_interval(d, level, params.bootstrap_resamples,
                                                    params.robustness.seed)}
    out["verdict"] = part_verdict(found["low"], found["high"], "better", params.min_effect, params.margin)
    out["reason"] = reason(out["verdict"], out, "points")
    return out


def _cost_part(name: str, fit: dict[str, Any], level: float, params: Any) -> dict[str, Any]:
    """The exact SVM: slope minus the quadratic threshold, above 0; the others: the slope inside
    the band."""
    found = slope_interval(fit, level)
    out: dict[str, Any]
    if name in EXACT:
        q = params.quadratic_slope
        shifted = {**found, "mean": found["mean"] - q, "low": found["low"] - q, "high": found["high"] - q}
        out = {"expect": "better", "min_effect": 0.0, "margin": 0.0, "interval": shifted,
               "measure": f"fit-time slope minus {q:g} (at least as n^{q:g})"}
    else:
        out = {"expect": "within", "band": list(params.linear_slope_band), "min_effect": 0.0,
               "margin": 0.0, "interval": found,
               "measure": f"fit-time slope inside [{params.linear_slope_band[0]:g}, "
                          f"{params.linear_slope_band[1]:g}] (about linearly)"}
    out.update(claim="svm_cost", part=name, unit="slope", level=level, slope=fit["slope"],
               slope_interval=[found["low"], found["high"]])
    out["verdict"] = part_verdict(out["interval"]["low"], out["interval"]["high"], out["expect"],
                                  0.0, 0.0, tuple(out.get("band", ())) or None)
    out["reason"] = (_exact_reason(out["verdict"], fit["slope"], found, params.quadratic_slope)
                     if name in EXACT else reason(out["verdict"], out, "slope"))
    return out


def _exact_reason(verdict: str, slope: float, found: dict[str, Any], threshold: float) -> str:
    """The exact SVM's verdict in words, on the slope itself (not its distance to the threshold)."""
    where = {"supported": f"above {threshold:g}", "contradicted": f"below {threshold:g}"}.get(
        verdict, f"reaches {threshold:g}: neither surely above nor below it")
    return f"slope {slope:.2f} [{found['low']:.2f}, {found['high']:.2f}]: the interval lies {where}"


def _claim(name: str, statement: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The claim's verdict from its parts': supported or contradicted when all parts are,
    partly supported when some part holds, partly contradicted when none holds and some part
    is contradicted, inconclusive otherwise (open parts are inconclusive)."""
    for part in parts:
        part["verdict"] = "inconclusive" if part["verdict"] == "open" else part["verdict"]
    verdicts = {p["part"]: p["verdict"] for p in parts}
    held = [part for part, v in verdicts.items() if v == "supported"]
    against = [part for part, v in verdicts.items() if v == "contradicted"]
    overall = ("supported" if len(held) == len(parts) else
               "contradicted" if len(against) == len(parts) else
               "partly supported" if held else "partly contradicted" if against else "inconclusive")
    return {"statement": statement, "verdict": overall, "parts": verdicts, "holds_for": held,
            "contradicted_for": against}
