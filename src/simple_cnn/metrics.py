"""Classification metrics, from ``sklearn.metrics``, in one JSON-ready dict for every model."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    f1_score,
)

logger = logging.getLogger(__name__)


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix.

    Macro-F1 averages over the classes that ``y_true`` holds: a class absent from the test
    split has no F1 to average (sklearn would count it as 0); absent classes are listed under
    ``absent_classes`` and logged."""
    labels = list(range(len(class_names)))
    present = sorted(set(np.unique(y_true).tolist()))
    absent = [class_names[c] for c in labels if c not in present]
    if absent:
        logger.warning("The test split has no images of %d class(es): %s; macro-F1 averages "
                       "over the %d present.", len(absent), ", ".join(absent), len(present))
    report = classification_report(
        y_true, y_pred, labels=labels, target_names=list(class_names), output_dict=True,
        zero_division=0,
    )
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "per_class": {
            name: {"precision": report[name]["precision"], "recall": report[name]["recall"],
                   "f1": report[name]["f1-score"], "support": int(report[name]["support"])}
            for name in class_names
        },
        "absent_classes": absent,
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "n_test": int(len(y_true)),
    }
