"""A study's claim read look by look, from its rows: what the round decisions and the summary
both use, so that a study stops exactly where its summary says it was decided.

At each look (after ``looks[l]`` seeds, once every variant has its row for them) each part of
the claim gets its paired differences, in the metric's unit and signed so that positive is the
claimed direction, and an interval at the look's nominal level for the part's share of the
claim's level (``design.py``); the parts' verdicts make the claim's (``verdicts.py``). The first
look that decides ends the claim; a claim still open at its cap is *inconclusive*, with the
seeds a fixed design would need at the measured spread.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from simple_cnn.ablation.design import Design
from simple_cnn.ablation.intervals import Interval, image_variance, interval
from simple_cnn.ablation.studies import METRICS, AblationParams, Part, Study
from simple_cnn.ablation.verdicts import DECIDED, claim_verdict, part_verdict, reason, seeds_needed

FAILED_SCORE: dict[str, float | str] = {"test_accuracy": "chance", "macro_f1": "chance", "val_accuracy": "chance",
                "dead_unit_fraction": 1.0, "diverged": 1.0}
"""What a diverged run scores on a metric; metrics not listed have no such score."""
RAW_LEVEL = 0.05  # the unadjusted intervals shown beside the verdicts' own


class MissingMetric(ValueError):
    """A row lacks the metric its claim is judged on (it was made for another claim)."""


def design_of(ablation: AblationParams, study: str) -> Design:
    return Design(ablation.alpha, len(ablation.claims()), tuple(ablation.looks_of(study)))


def score(row: dict[str, Any], metric: str, point: str | None = None) -> float | None:
    """The run's ``metric`` (at budget ``point``, or at the end); a diverged run's failure
    score; None where the run has no value (dead units of GELU, a gap of a diverged run)."""
    if row["diverged"]:
        failed = FAILED_SCORE.get(metric)
        return float(row["chance"]) if failed == "chance" else None if failed is None else float(failed)
    if metric == "diverged":
        return 0.0
    values = row if point is None else row["along_budget"][point]
    if metric not in values:
        raise MissingMetric(f"{row['namespace']} has no {metric!r}" + (f" at budget point {point}"
                            if point else "") + ": it was recorded for another claim; train it "
                            "again (kedro run --pipelines ablation --only-missing-outputs does)")
    value = values[metric]
    return None if value is None else float(value)


def differences(part: Part, rows: dict[str, dict[int, dict]], seeds: list[int],
                point: str | None = None) -> tuple[list[dict[str, Any]], int]:
    """Per seed of ``seeds``: ``d`` (the part's contrast, in the metric's unit, positive in the
    claimed direction) with each variant's score; and how many seeds were left out (a variant
    without a score there)."""
    spec = METRICS[part.metric]
    sign = spec.scale * (1.0 if spec.better == "higher" else -1.0)
    pairs, left_out = [], 0
    for seed in seeds:
        scores = {v: score(rows[v][seed], part.metric, point) for v in part.weights}
        known = {v: s for v, s in scores.items() if s is not None}
        if len(known) < len(scores):
            left_out += 1
            continue
        d = sign * sum(w * known[v] for v, w in part.weights.items())
        pairs.append({"seed": seed, "difference": float(d), "scores": known})
    return pairs, left_out


def test_sampling_variance(part: Part, rows: dict[str, dict[int, dict]], seeds: list[int]) -> float:
    """The variance of the mean ``d`` from the images it is measured on (0 for metrics not
    measured image by image): every seed scores the same images, so this error is shared."""
    spec = METRICS[part.metric]
    if spec.per_image is None:
        return 0.0
    where, inner = spec.per_image
    sign = spec.scale * (1.0 if spec.better == "higher" else -1.0) * inner
    per_seed = []
    for seed in seeds:
        runs = {v: rows[v][seed] for v in part.weights}
        if any(r["diverged"] or where not in (r.get("per_image") or {}) for r in runs.values()):
            continue
        per_seed.append(sign * sum(w * unpack(runs[v]["per_image"][where]) for v, w in part.weights.items()))
    return image_variance(np.array(per_seed)) if len(per_seed) >= 1 else 0.0


def judge_part(part: Part, rows: dict[str, dict[int, dict]], seeds: list[int], level: float,
               ablation: AblationParams) -> dict[str, Any]:
    """One part at one look: its pairs, its interval at ``level`` and the raw 95 % one, its verdict."""
    pairs, left_out = differences(part, rows, seeds)
    threshold = ablation.threshold(part.metric)
    unit = METRICS[part.metric].unit
    out: dict[str, Any] = {"metric": part.metric, "unit": unit, "comparison": part.describe(),
                           "expect": part.expect, "min_effect": threshold.min_effect,
                           "margin": threshold.margin, "level": level, "pairs": pairs,
                           "left_out": left_out}
    if len(pairs) < 2:
        out.update(interval=None, raw_interval=None, verdict="open",
                   reason=f"fewer than 2 paired seeds ({len(pairs)})")
        return out
    d = [p["difference"] for p in pairs]
    variance = test_sampling_variance(part, rows, [p["seed"] for p in pairs])
    adjusted: Interval = interval(d, level, variance)
    out.update(interval=adjusted.as_dict(), raw_interval=interval(d, RAW_LEVEL, variance).as_dict())
    out["verdict"] = part_verdict(adjusted.low, adjusted.high, part.expect, threshold.min_effect,
                                  threshold.margin)
    out["reason"] = reason(out["verdict"], out, unit)
    return out


def judge_look(spec: Study, rows: dict[str, dict[int, dict]], seeds: list[int], look: int,
               design: Design, ablation: AblationParams) -> dict[str, Any]:
    level = design.nominal(design.part_level(len(spec.test)), look)
    parts = [judge_part(part, rows, seeds, level, ablation) for part in spec.test]
    return {"look": look + 1, "seeds": len(seeds), "parts": parts,
            "verdict": claim_verdict([p["verdict"] for p in parts])}


def complete_rows(spec: Study, rows: list[dict[str, Any]]) -> dict[str, dict[int, dict]]:
    """The study's trained rows by variant and seed (rows saved as skipped are left out)."""
    table: dict[str, dict[int, dict]] = {v: {} for v in spec.variants}
    for row in rows:
        if not row.get("skipped") and row["variant"] in table:
            table[row["variant"]][row["seed"]] = row
    return table


def read_study(name: str, rows: list[dict[str, Any]], ablation: AblationParams,
               up_to_look: int | None = None) -> dict[str, Any]:
    """The study's claim look by look, up to ``up_to_look`` (1-based; all by default), stopping
    at the first look that decides it or whose seeds lack a row: the looks made, the last one,
    and whether the claim is still open there."""
    spec, design = ablation.studies[name], design_of(ablation, name)
    table, seeds = complete_rows(spec, rows), ablation.seeds_of(name)
    looks = ablation.looks_of(name)[:up_to_look]
    made: list[dict[str, Any]] = []
    for look, n in enumerate(looks):
        used = seeds[:n]
        if any(seed not in table[v] for v in spec.variants for seed in used):
            break
        made.append(judge_look(spec, table, used, look, design, ablation))
        if made[-1]["verdict"] in DECIDED:
            break
    last = made[-1] if made else None
    decided = last is not None and last["verdict"] in DECIDED
    return {"looks": made, "last": last, "open": not decided,
            "at_cap": last is not None and last["seeds"] == len(seeds)}


def decision(name: str, rows: list[dict[str, Any]], ablation: AblationParams, look: int) -> dict[str, Any]:
    """What a round after ``look`` needs: is the claim still open after it (and, if not, where
    and how it was decided). Rows are the study's rows of the rounds up to ``look``."""
    read = read_study(name, rows, ablation, up_to_look=look)
    if read["open"] and len(read["looks"]) < look:
        raise ValueError(f"ablation.{name}: the rows of the first {look} round(s) are not all there; "
                         "a round runs only after the rounds before it")
    last = read["last"]
    used = set(ablation.seeds_of(name)[: last["seeds"]])
    made_from = sorted(r.get("fingerprint") or "" for r in rows
                       if not r.get("skipped") and r["seed"] in used)
    return {"study": name, "after_look": look, "open": read["open"], "verdict": last["verdict"],
            "decided_after_seeds": None if read["open"] else last["seeds"], "made_from": made_from}


def budget_dependence(name: str, rows: list[dict[str, Any]], seeds_used: int, look: int,
                      ablation: AblationParams) -> dict[str, Any]:
    """Does the claim's effect (its first part) change between the earliest budget point and the
    end? The paired difference of differences, with an interval at the budget test's share of
    the claim's level; and the effect at every point with a band that holds at all of them."""
    spec = ablation.studies[name]
    design, part = design_of(ablation, name), spec.test[0]
    table, seeds = complete_rows(spec, rows), ablation.seeds_of(name)[:seeds_used]
    points = [str(p) for p in ablation.budget_points]
    if len(points) < 2 or part.metric in ("train_seconds", "images_per_second"):
        return {"tested": False, "why": "no earlier budget point is measured for this metric"}
    level = design.nominal(design.budget_level, look - 1)
    along: list[dict[str, Any]] = []
    for point in points:
        pairs, _ = differences(part, table, seeds, point)
        d = [p["difference"] for p in pairs]
        band = interval(d, level / len(points)).as_dict() if len(d) >= 2 else None
        along.append({"fraction": float(point), "pairs": pairs, "band": band,
                      "mean": float(np.mean(d)) if d else None})
    first = {p["seed"]: p["difference"] for p in along[0]["pairs"]}
    change = [p["difference"] - first[p["seed"]] for p in along[-1]["pairs"] if p["seed"] in first]
    if len(change) < 2:
        return {"tested": False, "why": f"fewer than 2 seeds at both ends ({len(change)})", "along": along}
    found = interval(change, level).as_dict()
    low, high = found["low"], found["high"]
    dependent = (low is not None and low > 0) or (high is not None and high < 0)
    return {"tested": True, "dependent": dependent, "change": found, "level": level,
            "from": float(points[0]), "along": along}


def inconclusive_reason(study: dict[str, Any], cap: int) -> tuple[str, int | None]:
    """Why a claim is still open at its last look, in words, and the seeds that a fixed design
    at the cap's level would need at the measured spread (None: none would)."""
    last = study["last"]
    if last is None:
        return "no look yet: the first round's runs are missing", None
    part = next((p for p in last["parts"] if p["verdict"] != "supported"), last["parts"][0])
    if part["interval"] is None:
        return f"{part['reason']} after {last['seeds']} seeds", None
    i = part["interval"]
    needed = seeds_needed(i["mean"], i["seed_sd"], i["image_se"], part["min_effect"],
                          part["margin"], part["level"])
    where = "its cap" if last["seeds"] == cap else "the last look whose runs are all there"
    words = f"{part['reason']}; still open after {last['seeds']} seeds ({where})"
    if needed is not None:
        words += f"; about {needed} seeds would decide it at this spread"
    return words, needed


def pack(correct: np.ndarray) -> str:
    """Per-image correctness (bools) as compact text for a JSON row."""
    packed = np.packbits(np.asarray(correct, dtype=bool)).tobytes()
    return base64.b64encode(packed).decode("ascii") + f":{len(correct)}"


def unpack(text: str) -> np.ndarray:
    data, n = text.rsplit(":", 1)
    return np.unpackbits(np.frombuffer(base64.b64decode(data), np.uint8))[: int(n)].astype(float)
