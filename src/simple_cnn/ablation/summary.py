"""Every study's claim judged, with what a reader needs beside the verdict.

The procedure, stated once (the report prints :func:`verdict_rule`; ``docs/ablation.md``
gives the references and the measured error and power):

- **Pairs.** A study's variants share each seed's initial weights, training part and data
  order. Per seed, ``d`` is a part's comparison (``better - than``, or a contrast of
  variants) on its metric, in the metric's unit, signed so that positive is the claimed
  direction. A diverged run is a failed run, never a missing one: it scores chance on the
  accuracy metrics and 1 on dead units and ``diverged``; metrics without such a score (the
  gap, seconds, images/s) leave the seed out, and say so.
- **The family** is every claim declared, whatever ``studies_to_run`` says; each gets
  ``alpha / K``, split between its parts and its budget-dependence test (``design.py``).
- **Looks.** Seeds come in rounds; after each round every open claim's parts get intervals at
  the look's nominal level (repeated confidence intervals under Lan-DeMets O'Brien-Fleming
  spending): Student t with the test-sampling error added, or exact sign flips where the
  differences have no spread or are 0/1 (``intervals.py``). A claim decided at a look gets no
  more seeds (``sequential.py``).
- **Verdicts** (``verdicts.py``): supported, contradicted, equivalent (no meaningful
  difference), or inconclusive at the cap, with the reason and the seeds it would take.
- **Budget dependence**: the change of the effect between the earliest budget point and the
  end, tested on its own share of the claim's level.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from simple_cnn.ablation.design import BUDGET_SHARE
from simple_cnn.ablation.sequential import (
    FAILED_SCORE,
    budget_dependence,
    complete_rows,
    design_of,
    inconclusive_reason,
    read_study,
    score,
)
from simple_cnn.ablation.studies import METRICS, AblationParams

CONVERGED_SHARE = 0.8
"""A study trained "to convergence" must see at least this share of its runs stop by themselves."""

__all__ = ["FAILED_SCORE", "score", "summarise", "summary_inputs", "verdict_rule"]


def verdict_rule(ablation: AblationParams) -> str:
    claims = len(ablation.claims())
    return (f"Paired by seed: d = the claim's comparison on its metric, in the metric's unit "
            f"(positive: the claimed direction). The family is the {claims} claims declared; "
            f"each gets alpha {ablation.alpha:g} / {claims}, {1 - BUDGET_SHARE:.0%} of it for its "
            f"verdict (split between its parts) and {BUDGET_SHARE:.0%} for its budget-dependence "
            f"test. Seeds come in rounds; at each look an open claim's interval is a repeated "
            f"confidence interval (Lan-DeMets O'Brien-Fleming spending over the looks; Student t "
            f"with the test-images' sampling error added, exact sign flips for 0/1 or constant "
            f"differences). Supported: the interval lies above the minimum effect; contradicted: "
            f"below minus it; equivalent: inside plus or minus the margin (no meaningful "
            f"difference); a decided claim gets no more seeds; inconclusive: still open at its cap. "
            f"A diverged run scores chance accuracy (1 / classes) and 1 on dead units; a seed "
            f"with a diverged run is left out for the gap, seconds and images/s.")


def summarise(records: list[dict[str, Any]], ablation: AblationParams) -> dict[str, Any]:
    """Per selected study: its looks, verdict (the last look's), adjusted and raw intervals,
    seeds used, budget dependence, regime and per-variant statistics."""
    studies = {name: _study(name, [r for r in records if r["study"] == name], ablation)
               for name in ablation.selected()}
    claims = [s for s in studies.values() if not s["control"]]
    return {"rule": verdict_rule(ablation), "alpha": ablation.alpha,
            "family": ablation.claims(), "claims_judged_together": len(ablation.claims()),
            "thresholds": {m: ablation.threshold(m).model_dump() for m in METRICS},
            "units": {m: spec.unit for m, spec in METRICS.items()},
            "seeds": ablation.seeds, "looks": ablation.looks,
            "budget_points": ablation.budget_points, "runs": sum(not r.get("skipped") for r in records),
            "runs_saved": sum(bool(r.get("skipped")) for r in records),
            "decided": sum(s["verdict"] != "inconclusive" for s in claims),
            "studies": studies, "inputs": summary_inputs(ablation, records)}


def _study(name: str, rows: list[dict[str, Any]], ablation: AblationParams) -> dict[str, Any]:
    spec = ablation.studies[name]
    read = read_study(name, rows, ablation)
    last, cap = read["last"], len(ablation.seeds_of(name))
    trained = [r for r in rows if not r.get("skipped")]
    if last is not None and not read["open"]:
        verdict, why, needed = last["verdict"], _decided_reason(last), None
    else:
        verdict = "inconclusive"
        why, needed = inconclusive_reason(read, cap)
    used = last["seeds"] if last else 0
    regime_ = regime(trained, spec.budget(ablation.max_steps))
    return {
        "claim": spec.claim, "control": spec.control, "test": [p.model_dump(exclude_none=True) for p in spec.test],
        "verdict": verdict, "reason": why, "seeds_needed": needed,
        "parts": last["parts"] if last else [], "looks": [_look(look) for look in read["looks"]],
        "seeds_used": used, "cap": cap, "looks_planned": ablation.looks_of(name),
        "design": {"claim_level": design_of(ablation, name).claim_level,
                   "part_level": design_of(ablation, name).part_level(len(spec.test))},
        "budget": (budget_dependence(name, rows, used, len(read["looks"]), ablation)
                   if used else {"tested": False, "why": "no look yet"}),
        "regime": regime_, "regime_met": _regime_met(regime_),
        "variants": _variants(spec.variants, trained),
        "factors": {r["variant"]: r["factors"] for r in trained},
    }


def _decided_reason(last: dict[str, Any]) -> str:
    parts = "; ".join(f"{p['comparison']} on {p['metric'].replace('_', ' ')}: {p['reason']}"
                      for p in last["parts"])
    return f"decided after {last['seeds']} seeds (look {last['look']}): {parts}"


def _look(look: dict[str, Any]) -> dict[str, Any]:
    """A look as the report lists it: seeds, verdict, each part's interval."""
    return {"look": look["look"], "seeds": look["seeds"], "verdict": look["verdict"],
            "parts": [{"metric": p["metric"], "interval": p["interval"], "verdict": p["verdict"],
                       "level": p["level"]} for p in look["parts"]]}


def _variants(variants: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    by_variant = {v: [r for r in rows if r["variant"] == v] for v in variants}
    return {v: {"runs": len(rs), "n_diverged": sum(r["diverged"] for r in rs),
                **{metric: describe(_finished(rs, metric)) for metric in METRICS}}
            for v, rs in by_variant.items()}


def describe(values: list[float]) -> dict[str, Any]:
    n = len(values)
    return {"mean": float(np.mean(values)) if n else None,
            "std": float(np.std(values, ddof=1)) if n > 1 else (0.0 if n else None), "n": n}


def _finished(rows: list[dict[str, Any]], metric: str) -> list[float]:
    """A variant's metric over its runs: every run for ``diverged``, finished runs otherwise
    (a metric a row did not record is left out)."""
    values = [score(r, metric) for r in rows
              if (metric == "diverged" or not r["diverged"]) and (metric in r or r["diverged"])]
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


def _regime_met(regime_: dict[str, Any]) -> dict[str, Any]:
    """A study trained to convergence (an epoch cap with patience) says whether enough of its
    runs stopped by themselves."""
    if not regime_["budget"].get("patience"):
        return {"to_convergence": False, "met": True}
    share = regime_["converged"] / regime_["finished"] if regime_["finished"] else 0.0
    return {"to_convergence": True, "share": share, "met": share >= CONVERGED_SHARE}


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def summary_inputs(ablation: AblationParams, rows: list[dict[str, Any]]) -> str:
    """The fingerprint of what a summary is made of: the study settings and every row."""
    made_of = {"ablation": ablation.model_dump(mode="json"),
               "rows": sorted(r.get("fingerprint") or "" for r in rows)}
    return hashlib.sha256(json.dumps(made_of, sort_keys=True).encode()).hexdigest()[:16]


def trained_rows_by_variant(name: str, rows: list[dict[str, Any]], ablation: AblationParams):
    """The study's trained rows, by variant and seed (for figures)."""
    return complete_rows(ablation.studies[name], rows)
