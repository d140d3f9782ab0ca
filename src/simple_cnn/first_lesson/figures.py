"""The first lesson's figures: robustness curves and the SVM's cost against data size."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from simple_cnn import plots  # noqa: F401 - selects the Agg backend before any figure

MODELS = {"hog_svm": ("HOG + SVM", "tab:orange"), "cnn": ("CNN", "tab:blue")}


def robustness(metrics: dict[str, Any]) -> Figure:
    """One panel per transform: accuracy (solid) and consistency with the untransformed image
    (dashed) against strength, both models; for shifts also between two shifts (dotted)."""
    kinds = list(metrics["hog_svm"])
    fig = Figure(figsize=(4 * len(kinds), 4.2), layout="constrained")
    axes = fig.subplots(1, len(kinds), sharey=True, squeeze=False)[0]
    for ax, kind in zip(axes, kinds):
        for model, (label, colour) in MODELS.items():
            row = metrics[model][kind]
            x = row["strengths"]
            ax.plot(x, row["accuracy"], "-o", color=colour, ms=3, label=f"{label} accuracy")
            ax.plot(x, row["consistency"], "--", color=colour, label=f"{label} consistency")
            if "two_shift_consistency" in row:
                ax.plot(x, row["two_shift_consistency"], ":", color=colour,
                        label=f"{label} two-shift consistency")
        ax.set_title(kind)
        ax.set_xlabel(metrics["hog_svm"][kind]["unit"])
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("fraction of test images")
    handles, labels = axes[-1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=8)
    fig.suptitle(f"Under transforms: accuracy and consistency on {metrics['test_images']:,} test "
                 f"images (border fill: {metrics['fill']})")
    return fig


def svm_cost(scaling: dict[str, Any]) -> Figure:
    """Log-log fit and predict seconds against the training rows, with the fitted slopes."""
    fig = Figure(figsize=(10, 4), layout="constrained")
    axes = fig.subplots(1, 2)
    for (name, timing), colour in zip(scaling["classifiers"].items(),
                                      ("tab:red", "tab:green", "tab:purple", "tab:gray")):
        n = np.asarray(timing["n"], float)
        for ax, what in zip(axes, ("fit", "predict")):
            fit = timing[f"{what}_slope"]
            grid = np.geomspace(n.min(), n.max(), 20)
            low, high = fit["interval"]
            ax.loglog(n, timing[f"{what}_seconds"], "o", color=colour, ms=4)
            ax.loglog(grid, np.exp(fit["intercept"]) * grid ** fit["slope"], "-", color=colour,
                      label=f"{name}: slope {fit['slope']:.2f} [{low:.2f}, {high:.2f}]")
    for ax, what in zip(axes, ("fit", f"predict {scaling['predict_rows']:,} rows")):
        ax.set_xlabel("training rows n")
        ax.set_ylabel("seconds")
        ax.set_title(what)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.suptitle(f"SVM cost as data grows ({scaling['n_features']:,} features per row)")
    return fig
