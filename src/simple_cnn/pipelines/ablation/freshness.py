"""Which saved rows and summary of the ablation study are not what the current settings ask
for: a row made under other parameters, another env or other splits is stale (trained again,
never reused); so is a row saved as *skipped* whose claim's decision is not, today, the one that
skipped it (or cannot be known before the rounds before it are made again); and so is a summary
made from other rows or other study settings (rebuilt, without training)."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from simple_cnn.ablation.rows import fingerprint, provenance, skipped_provenance, stale_reason
from simple_cnn.ablation.runs import run_parameters
from simple_cnn.ablation.sequential import decision
from simple_cnn.ablation.studies import AblationParams, Run
from simple_cnn.ablation.summary import summary_inputs

logger = logging.getLogger(__name__)

ROW = ".ablation_run"
SUMMARY = "ablation_summary"


def outdated(catalog, pipeline) -> dict[str, str]:
    """Saved outputs of ``pipeline`` among the study's rows and summary -> why each is stale.
    Nothing is stale when the splits are to be made anew (everything downstream is then)."""
    outputs = pipeline.all_outputs()
    if not any(name.endswith(ROW) for name in outputs) and SUMMARY not in outputs \
            or not catalog.exists("dataset_summary"):
        return {}
    ablation = AblationParams.model_validate(catalog.load("params:ablation"))
    cnn = _plain(catalog.load("params:cnn"))
    dataset_summary = catalog.load("dataset_summary")
    stale: dict[str, str] = {}
    saved_rows: list[dict[str, Any]] = []
    for study in ablation.selected():
        runs = [run for run in ablation.runs() if run.study == study]
        found, rows = _study(study, runs, ablation, cnn, dataset_summary, catalog)
        stale.update({name: why for name, why in found.items() if name in outputs})
        saved_rows += rows
    if SUMMARY in outputs and catalog.exists(SUMMARY) and not stale:
        if catalog.load(SUMMARY).get("inputs") != summary_inputs(ablation, saved_rows):
            stale[SUMMARY] = "made from other rows or other study settings"
    elif SUMMARY in outputs and catalog.exists(SUMMARY):
        stale[SUMMARY] = "made from rows that are made again"
    _log(stale, sum(name.endswith(ROW) for name in outputs))
    return stale


def _study(study: str, runs: list[Run], ablation: AblationParams, cnn: dict[str, Any],
           dataset_summary: dict[str, Any], catalog) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """The study's stale rows (round by round: a skipped row is judged against the decision the
    rows before it make today), and its saved rows that are what the settings ask for."""
    metrics = ablation.studies[study].metrics
    stale: dict[str, str] = {}
    fresh: list[dict[str, Any]] = []
    decided: dict[str, Any] | None = None  # the decision after the last round, if known
    known = True
    for round_ in range(1, len(ablation.looks_of(study)) + 1):
        for run in (r for r in runs if r.round == round_):
            name = run.name + ROW
            row = catalog.load(name) if name in catalog and catalog.exists(name) else None
            expected = provenance(run_parameters(cnn, ablation, run), ablation, dataset_summary, metrics)
            why = _why(row, expected, decided, known)
            if why and row is not None:
                stale[name] = why
            if row is not None and not why:
                fresh.append(row)
            known = known and row is not None and not why
        if known and round_ < len(ablation.looks_of(study)):
            decided = decision(study, fresh, ablation, round_)
    return stale, fresh


def _why(row: dict[str, Any] | None, expected: dict[str, Any], decided: dict[str, Any] | None,
         known: bool) -> str | None:
    if row is None or not row.get("skipped"):
        return None if row is None else stale_reason(row, expected)
    if not known:
        return "skipped by a decision that the rounds before it, made again, may change"
    if decided is None or decided["open"]:
        return "skipped, but its claim is open after the rounds before it"
    if row.get("fingerprint") != fingerprint(skipped_provenance(expected, decided)):
        return "skipped by another decision or under other settings"
    return None


def _plain(params: Any) -> dict[str, Any]:
    return params.model_dump() if hasattr(params, "model_dump") else params


def _log(stale: dict[str, str], n_rows: int) -> None:
    reasons = Counter(reason for name, reason in stale.items() if name.endswith(ROW))
    if reasons:
        logger.info("Ablation: %d of %d saved rows are stale and will be made again (%s).",
                    sum(reasons.values()), n_rows,
                    "; ".join(f"{n} {reason}" for reason, n in reasons.most_common()))
    if SUMMARY in stale:
        logger.info("Ablation: the saved summary was %s; it is rebuilt.", stale[SUMMARY])
