"""Nodes of the reporting pipeline."""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure

from simple_cnn.report import comparison_figure, comparison_html, confusion_figure


def plot_model_comparison(
    svm_test_metrics: dict[str, Any], cnn_test_metrics: dict[str, Any], class_names: list[str]
) -> Figure:
    """Accuracy and macro-F1, and per-class accuracy, SVM beside CNN."""
    return comparison_figure(svm_test_metrics, cnn_test_metrics, class_names)


def plot_confusion_matrices(
    svm_test_metrics: dict[str, Any], cnn_test_metrics: dict[str, Any], class_names: list[str]
) -> Figure:
    """Both confusion matrices on one colour scale."""
    return confusion_figure(svm_test_metrics, cnn_test_metrics, class_names)


def build_comparison_report(
    svm_test_metrics: dict[str, Any],
    cnn_test_metrics: dict[str, Any],
    cnn_training_history: dict[str, Any],
    class_names: list[str],
    ablation_report_link: str | None,
) -> str:
    """A self-contained HTML page: headline table, plain-language reading, every figure, and a
    link to the newest ablation report when there is one."""
    return comparison_html(svm_test_metrics, cnn_test_metrics, cnn_training_history, class_names,
                           ablation_report_link)
