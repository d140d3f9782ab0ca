"""Nodes of the reporting pipeline."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from simple_cnn import plots
from simple_cnn.report import comparison_html


def plot_model_comparison(
    svm_test_metrics: dict[str, Any], cnn_test_metrics: dict[str, Any], class_names: list[str]
) -> Figure:
    """Accuracy and macro-F1, and per-class accuracy, SVM beside CNN."""
    return plots.model_comparison({"HOG + SVM": svm_test_metrics, "CNN": cnn_test_metrics},
                                  class_names)


def plot_confusion_matrices(
    svm_test_metrics: dict[str, Any], cnn_test_metrics: dict[str, Any], class_names: list[str]
) -> Figure:
    """Both confusion matrices on one colour scale."""
    return plots.confusion_matrices(
        {"HOG + SVM": np.array(svm_test_metrics["confusion_matrix"]),
         "CNN": np.array(cnn_test_metrics["confusion_matrix"])}, class_names)


def build_comparison_report(
    svm_test_metrics: dict[str, Any],
    cnn_test_metrics: dict[str, Any],
    cnn_training_history: dict[str, Any],
    class_names: list[str],
) -> str:
    """A self-contained HTML page: headline table, plain-language reading, every figure."""
    return comparison_html(svm_test_metrics, cnn_test_metrics, cnn_training_history, class_names)
