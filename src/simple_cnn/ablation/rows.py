"""What a study run's row claims to be: everything that shaped it, and its fingerprint.

A row is reused (``--only-missing-outputs``, ``kedro ablation run``) only when its fingerprint
equals the one the current parameters and env ask for: the run's effective ``cnn`` parameters
after every merge (budget and seed included), the study's evaluation settings, the metrics the
row records along the budget (its claim's: change the claim's metric and the run trains
again), and the fingerprint of the splits it read. A row saved for a run that its claim's
decision made unnecessary (``skipped``) also records that decision, and is made again as soon
as the decision is not the same. ``stale_reason`` says in words what changed.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

ROW_FORMAT = 3  # rows of an older format are stale: they lack what the summary needs
NOT_SHAPING = ("training.progress_bar",)  # cnn keys that cannot change a result


def provenance(run_params, ablation, dataset_summary: dict[str, Any], recorded: list[str]) -> dict[str, Any]:
    """Everything that shaped one run's row, as plain values (``recorded``: the metrics it
    records along the budget)."""
    cnn = run_params.model_dump(mode="json")
    for dotted in NOT_SHAPING:
        group, key = dotted.split(".")
        cnn[group].pop(key, None)
    return {"format": ROW_FORMAT, "cnn": cnn, "splits": dataset_summary.get("fingerprint"),
            "recorded": sorted(recorded),
            "evaluation": {"val_images": ablation.val_images, "report_images": ablation.report_images,
                           "test_images": ablation.test_images,
                           "budget_points": list(ablation.budget_points)}}


def skipped_provenance(made_with: dict[str, Any], decision: dict[str, Any]) -> dict[str, Any]:
    """A skipped row's: what the run would have been, and the decision that made it unneeded."""
    return {**made_with, "skipped": {"after_look": decision["after_look"],
                                     "verdict": decision["verdict"], "made_from": decision["made_from"]}}


def fingerprint(made_with: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(made_with, sort_keys=True).encode()).hexdigest()[:16]


def stale_reason(row: dict[str, Any] | None, expected: dict[str, Any]) -> str | None:
    """None if ``row`` is what the current settings ask for; else what differs, in words."""
    if row is None:
        return "no row"
    made_with = row.get("made_with")
    if not isinstance(made_with, dict) or row.get("fingerprint") != fingerprint(expected):
        if not isinstance(made_with, dict) or made_with.get("format") != ROW_FORMAT:
            return "a row of an older format (without what made it)"
        changed = _differences(made_with, expected)
        return "made with other settings: " + (", ".join(changed[:3]) + (
            f" and {len(changed) - 3} more" if len(changed) > 3 else "") if changed else "?")
    return None


def _differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key} {a!r} -> {b!r}")
    return out
