"""Nodes of the reporting pipeline: two matplotlib figures and the HTML report (matplotlib is
imported inside the node functions, when they run)."""

from __future__ import annotations

from typing import Any

from simple_cnn.first_lesson.report import first_lesson_html


def plot_model_comparison(
    svm_test_metrics: dict[str, Any], cnn_test_metrics: dict[str, Any], class_names: list[str]
):
    """Accuracy and macro-F1, and per-class accuracy, SVM beside CNN."""
    from simple_cnn import report

    return report.comparison_figure(svm_test_metrics, cnn_test_metrics, class_names)


def plot_confusion_matrices(
    svm_test_metrics: dict[str, Any], cnn_test_metrics: dict[str, Any], class_names: list[str]
):
    """Both confusion matrices on one colour scale."""
    from simple_cnn import report

    return report.confusion_figure(svm_test_metrics, cnn_test_metrics, class_names)


def build_comparison_report(
    svm_test_metrics: dict[str, Any],
    cnn_test_metrics: dict[str, Any],
    cnn_training_history: dict[str, Any],
    class_names: list[str],
    robustness_metrics: dict[str, Any],
    svm_cost_scaling: dict[str, Any],
    first_lesson_verdicts: dict[str, Any],
    ablation_report_link: str | None,
) -> str:
    """A self-contained HTML page: headline table, plain-language reading, why hand-made
    features hit a wall (the first lesson's verdicts and figures), every figure, and a link to
    the newest ablation report when there is one."""
    from simple_cnn import report
    from simple_cnn.first_lesson import figures as lesson_figures

    lesson = first_lesson_html(first_lesson_verdicts, robustness_metrics, svm_cost_scaling, "".join([
        report.figure_html(lesson_figures.robustness(robustness_metrics),
                    "Accuracy and consistency under transforms"),
        report.figure_html(lesson_figures.svm_cost(svm_cost_scaling), "SVM cost as data grows")]))
    return report.comparison_html(svm_test_metrics, cnn_test_metrics, cnn_training_history, class_names,
                           ablation_report_link, lesson)
