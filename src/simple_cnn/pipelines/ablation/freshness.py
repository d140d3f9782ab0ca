"""Which saved rows and summary of the ablation study are not what the current settings ask
for: a row made under other parameters, another env or other splits is stale (trained again,
never reused), and so is a summary made from other rows or other study settings (rebuilt,
without training)."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from simple_cnn.ablation.rows import fingerprint, provenance, stale_reason
from simple_cnn.ablation.studies import AblationParams, run_parameters
from simple_cnn.ablation.summary import summary_inputs

logger = logging.getLogger(__name__)

ROW = ".ablation_run"
SUMMARY = "ablation_summary"


def outdated(catalog, pipeline) -> dict[str, str]:
    """Saved outputs of ``pipeline`` among the study's rows and summary -> why each is stale.
    Nothing is stale when the splits are to be made anew (everything downstream is then)."""
    outputs = pipeline.all_outputs()
    rows = sorted(name for name in outputs if name.endswith(ROW))
    if not rows and SUMMARY not in outputs or not catalog.exists("dataset_summary"):
        return {}
    ablation = AblationParams.model_validate(catalog.load("params:ablation"))
    cnn = _plain(catalog.load("params:cnn"))
    dataset_summary = catalog.load("dataset_summary")
    expected = {run.namespace + ROW: provenance(run_parameters(cnn, ablation, run), ablation,
                                                dataset_summary)
                for run in ablation.runs()}
    stale = {}
    for name in rows:
        if name in expected and catalog.exists(name):
            reason = stale_reason(catalog.load(name), expected[name])
            if reason:
                stale[name] = reason
    if SUMMARY in outputs and catalog.exists(SUMMARY):
        made_of = summary_inputs(ablation, [{"fingerprint": fingerprint(e)} for e in expected.values()])
        if catalog.load(SUMMARY).get("inputs") != made_of:
            stale[SUMMARY] = "made from other rows or other study settings"
    _log(stale, len(rows))
    return stale


def _plain(params: Any) -> dict[str, Any]:
    return params.model_dump() if hasattr(params, "model_dump") else params


def _log(stale: dict[str, str], n_rows: int) -> None:
    reasons = Counter(reason for name, reason in stale.items() if name.endswith(ROW))
    if reasons:
        logger.info("Ablation: %d of %d saved rows are stale and will be trained again (%s).",
                    sum(reasons.values()), n_rows,
                    "; ".join(f"{n} {reason}" for reason, n in reasons.most_common()))
    if SUMMARY in stale:
        logger.info("Ablation: the saved summary was %s; it is rebuilt.", stale[SUMMARY])
