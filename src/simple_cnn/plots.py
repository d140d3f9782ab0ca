"""Figures of the project. Each function returns a Matplotlib ``Figure``; the catalog saves it."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def image_grid(
    images: np.ndarray, labels: np.ndarray, class_names: Sequence[str], per_class: int = 8
) -> Figure:
    """A grid with one row per class and ``per_class`` sample images in each row."""
    n_classes = len(class_names)
    fig = Figure(figsize=(per_class * 0.9 + 1.5, n_classes * 0.9), layout="constrained")
    axes = fig.subplots(n_classes, per_class, squeeze=False)
    for row, name in enumerate(class_names):
        picks = np.flatnonzero(labels == row)[:per_class]
        for col in range(per_class):
            ax = axes[row, col]
            ax.set_axis_off()
            if col < len(picks):
                ax.imshow(images[picks[col]].squeeze(), cmap="gray" if images.shape[-1] == 1 else None)
        axes[row, 0].text(-0.15, 0.5, name, transform=axes[row, 0].transAxes, ha="right",
                          va="center", fontsize=8)
    fig.suptitle("Training images, per class")
    return fig


def confusion_matrix_figure(matrix: np.ndarray, class_names: Sequence[str], title: str) -> Figure:
    """A row-normalised confusion matrix with counts in the cells."""
    matrix = np.asarray(matrix)
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig = Figure(figsize=(7.5, 6.5), layout="constrained")
    ax = fig.subplots()
    shown = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(ticks, class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(class_names)):
        for j in range(len(class_names)):
            ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=6,
                    color="white" if rates[i, j] > 0.5 else "black")
    fig.colorbar(shown, ax=ax, label="fraction of the true class")
    ax.set_title(title)
    return fig


def per_class_bars(report: dict, class_names: Sequence[str], title: str) -> Figure:
    """Precision, recall and F1 per class, from ``per_class_report``'s output."""
    metrics = ("precision", "recall", "f1")
    values = np.array([[report[name][m] for m in metrics] for name in class_names])
    fig = Figure(figsize=(9, 4), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(class_names))
    for k, metric in enumerate(metrics):
        ax.bar(x + (k - 1) * 0.27, values[:, k], width=0.27, label=metric)
    ax.set_xticks(x, class_names, rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.legend(ncols=3, loc="lower right")
    ax.set_title(title)
    return fig
