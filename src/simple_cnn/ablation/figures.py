"""Figures of the ablation study. Each takes the run records or the summary and returns a
Matplotlib ``Figure``; a figure whose study is not part of the run says so in its panel."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from simple_cnn import plots  # noqa: F401 - selects the Agg backend
from simple_cnn.ablation.warmup_pitfall import lr_traces
from simple_cnn.training.config import TrainConfig

Records = list[dict[str, Any]]


VERDICT_COLOURS = {"supported": "tab:green", "contradicted": "tab:red", "equivalent": "tab:blue",
                   "inconclusive": "tab:gray", "open": "tab:gray"}


def forest(summary: dict[str, Any]) -> Figure:
    """One row per claim's part: the mean paired difference in the claimed direction with the
    interval its verdict used (thick) and the raw 95 % one (thin), the minimum effect and the
    margin around 0 shaded; one panel per unit; the verdict beside each (the A/A control last)."""
    rows = [(name, study, part) for name, study in sorted(summary["studies"].items(),
                                                          key=lambda item: item[1]["control"])
            for part in study["parts"]]
    units = list(dict.fromkeys(part["unit"] for _, _, part in rows)) or ["points"]
    fig = Figure(figsize=(8.5, 0.5 * max(1, len(rows)) + 1.2 * len(units) + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(units), 1, squeeze=False)).ravel()
    for ax, unit in zip(axes, units):
        mine = [r for r in rows if r[2]["unit"] == unit]
        for y, (_, study, part) in enumerate(reversed(mine)):
            _interval_row(ax, y, part, VERDICT_COLOURS[study["verdict"]])
            ax.annotate(study["verdict"], (1.01, y), xycoords=("axes fraction", "data"), va="center",
                        fontsize=8, color=VERDICT_COLOURS[study["verdict"]])
        if mine:
            m = mine[0][2]["min_effect"]
            ax.axvspan(-m, m, color="0.92", zorder=0)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_yticks(range(len(mine)), [f"{n}{' [A/A]' if s['control'] else ''}: {p['metric'].replace('_', ' ')}"
                                         for n, s, p in reversed(mine)], fontsize=8)
        ax.set_ylim(-0.8, max(1, len(mine)) - 0.3)
        ax.set_xlabel(f"effect in the claimed direction ({unit}); shaded: within the minimum "
                      "effect (inside the margin: no meaningful difference)", fontsize=8)
    axes[0].set_title("Each claim's effect: thick, the interval its verdict used (the family's and "
                      "the looks' level); thin, below it, the raw 95 % one", fontsize=9)
    return fig


def _interval_row(ax, y: float, part: dict[str, Any], colour: str) -> None:
    """The verdict's interval (thick, with the mean) on the row; the raw 95 % one (thin, with
    end ticks) just below it, where it stays visible although it is the narrower."""
    for found, width, offset in ((part["interval"], 3, 0.0), (part["raw_interval"], 1, -0.22)):
        if found is None:
            continue
        low = found["low"] if found["low"] is not None else ax.get_xlim()[0]
        high = found["high"] if found["high"] is not None else ax.get_xlim()[1]
        ax.plot([low, high], [y + offset] * 2, color=colour, linewidth=width, solid_capstyle="butt",
                marker="|" if width == 1 else None, markersize=6)
        if width == 3:
            ax.plot(found["mean"], y, "o", color=colour)


def effect_along_budget(study: dict[str, Any], name: str) -> Figure:
    """One claim's effect (its first part) at each budget point with a band that holds at all
    points together, and each seed's difference."""
    along = study["budget"]["along"]
    unit = study["parts"][0]["unit"] if study["parts"] else "points"
    fig = Figure(figsize=(6.5, 3.2), layout="constrained")
    ax = fig.subplots()
    for point in along:
        for pair in point["pairs"]:
            ax.plot(point["fraction"], pair["difference"], ".", color="0.6", markersize=4)
        band = point["band"]
        if band is not None and band["low"] is not None and band["high"] is not None:
            ax.errorbar(point["fraction"], band["mean"], yerr=[[band["mean"] - band["low"]],
                        [band["high"] - band["mean"]]], fmt="o", capsize=4, color="tab:blue")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xscale("log", base=2)
    ax.set_xticks([p["fraction"] for p in along], [f"{p['fraction']:g}" for p in along])
    ax.set_xlabel("fraction of each run's budget (the best weights at that point)")
    ax.set_ylabel(f"difference ({unit})")
    ax.set_title(f"{name}: the effect along the budget (band: all points together; dots: seeds)",
                 fontsize=9)
    return fig


def study_accuracy(summary: dict[str, Any], studies: list[str] | None = None) -> Figure:
    """Per study, mean ± std test accuracy per variant over seeds (diverged runs counted)."""
    names = studies or list(summary["studies"])
    fig = Figure(figsize=(max(7.5, 4.2 * min(len(names), 3)), 3.4 * -(-len(names) // 3)),
                 layout="constrained")
    axes = np.atleast_1d(fig.subplots(-(-len(names) // 3), min(len(names), 3), squeeze=False)).ravel()
    for ax, name in zip(axes, names, strict=False):
        study = summary["studies"][name]
        variants = list(study["variants"])
        weights = {v: w for part in study["test"] for v, w in _weights(part).items()}
        stats = [study["variants"][v]["test_accuracy"] for v in variants]
        means = [s["mean"] if s["mean"] is not None else 0.0 for s in stats]
        stds = [s["std"] or 0.0 for s in stats]
        colors = ["tab:green" if weights.get(v, 0) > 0 else "tab:orange" if weights.get(v, 0) < 0
                  else "tab:gray" for v in variants]
        ax.bar(range(len(variants)), means, yerr=stds, color=colors, capsize=3)
        for i, v in enumerate(variants):
            if study["variants"][v]["n_diverged"]:
                ax.text(i, means[i], f"{study['variants'][v]['n_diverged']} diverged", ha="center",
                        va="bottom", fontsize=7, color="tab:red")
        ax.set_xticks(range(len(variants)), variants, rotation=40, ha="right", fontsize=7)
        ax.set_ylabel("test accuracy")
        ax.set_title(f"{name}: {study['verdict']}", fontsize=9)
    for ax in axes[len(names):]:
        ax.set_axis_off()
    fig.suptitle("Mean ± std test accuracy over seeds\n(green: counted for the claim, orange: "
                 "against it)", fontsize=9)
    return fig


def _weights(part: dict[str, Any]) -> dict[str, float]:
    return part.get("contrast") or {part["better"]: 1.0, part["than"]: -1.0}


def _varying(records: Records, *keys: str) -> Records:
    """Trained runs of the first study whose variants set all of ``keys``."""
    records = [r for r in records if not r.get("skipped")]
    for study in dict.fromkeys(r["study"] for r in records):
        mine = [r for r in records if r["study"] == study]
        if all(all(k in r["factors"] for k in keys) for r in mine):
            return mine
    return []


def _panel(records: Records, figsize: tuple[float, float], *keys: str, finished: bool = True):
    """A one-axes figure and the runs of the study that varies ``keys`` (only the finished
    ones if ``finished``); with no such study the panel says so and the runs are empty."""
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.subplots()
    runs = [r for r in _varying(records, *keys) if not (finished and r["diverged"])]
    if not runs:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "No study in this run varies " + " and ".join(keys) +
                "\n(see conf/base/parameters_ablation.yml)", ha="center", va="center")
    return fig, ax, runs


def augmentation_heatmap(records: Records) -> Figure:
    """Mean test accuracy per augmentation preset x training-set fraction."""
    keys = ("augmentation.preset", "training.fraction")
    fig, ax, runs = _panel(records, (6, 3.8), *keys)
    if not runs:
        return fig
    presets = list(dict.fromkeys(r["factors"][keys[0]] for r in runs))
    fractions = sorted({r["factors"][keys[1]] for r in runs})
    cells = defaultdict(list)
    for r in runs:
        cells[r["factors"][keys[0]], r["factors"][keys[1]]].append(r["test_accuracy"])
    grid = np.array([[np.mean(cells[p, f]) if cells[p, f] else np.nan for f in fractions]
                     for p in presets])
    shown = ax.imshow(grid, cmap="viridis", aspect="auto")
    for i, j in np.ndindex(grid.shape):
        if not np.isnan(grid[i, j]):
            best = np.nanargmax(grid[:, j]) == i
            ax.text(j, i, f"{grid[i, j]:.1%}" + (" *" if best else ""), ha="center", va="center",
                    color="white" if grid[i, j] < np.nanmean(grid) else "black", fontsize=8)
    n_train = {f: max(r["n_train"] for r in runs if r["factors"][keys[1]] == f) for f in fractions}
    ax.set_xticks(range(len(fractions)), [f"{f:g}\n({n_train[f]} images)" for f in fractions])
    ax.set_yticks(range(len(presets)), presets)
    ax.set_xlabel("training.fraction")
    ax.set_ylabel("augmentation.preset")
    fig.colorbar(shown, ax=ax, label="test accuracy")
    ax.set_title("Which augmentation for how much data (* best per column)", fontsize=9)
    return fig


def dead_units_by_layer(records: Records) -> Figure:
    """Fraction of channels that never fire on the validation images, per layer, by activation."""
    fig, ax, runs = _panel(records, (6, 3.4), "model.activation")
    runs = [r for r in runs if r["dead_units"]]
    if not runs:
        return fig
    groups = defaultdict(list)
    for r in runs:
        groups[r["variant"]].append(r["dead_units"])
    layers = list(runs[0]["dead_units"])
    width = 0.8 / len(groups)
    for k, (variant, rows) in enumerate(groups.items()):
        means = [np.mean([row[layer] for row in rows]) for layer in layers]
        ax.bar(np.arange(len(layers)) + k * width, means, width, label=variant)
    ax.set_xticks(np.arange(len(layers)) + 0.4 - width / 2, layers, fontsize=8)
    ax.set_ylabel("dead channels (fraction)")
    ax.legend(fontsize=7)
    ax.set_title("Units that never fire on validation images", fontsize=9)
    return fig


def accuracy_vs_batch_size(records: Records) -> Figure:
    """Mean test accuracy against batch size, one line per normalisation."""
    keys = ("model.norm", "training.batch_size")
    fig, ax, runs = _panel(records, (5.5, 3.4), *keys)
    if not runs:
        return fig
    for norm in dict.fromkeys(r["factors"][keys[0]] for r in runs):
        sizes = sorted({r["factors"][keys[1]] for r in runs if r["factors"][keys[0]] == norm})
        values = [[r["test_accuracy"] for r in runs if r["factors"][keys[0]] == norm
                   and r["factors"][keys[1]] == size] for size in sizes]
        ax.errorbar(sizes, [np.mean(v) for v in values], yerr=[np.std(v) for v in values],
                    marker="o", capsize=3, label=norm)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size")
    ax.set_ylabel("test accuracy")
    ax.legend(title="norm", fontsize=8)
    ax.set_title("Normalisation vs batch size", fontsize=9)
    return fig


def warmup_lr_traces(records: Records) -> Figure:
    """The LR of each warmup variant per step (first seed), diverged runs marked where they stopped."""
    fig, ax, runs = _panel(records, (6.5, 3.6), "training.warmup", finished=False)
    if not runs:
        return fig
    first_seed = min(r["seed"] for r in runs)
    for r in runs:
        if r["seed"] != first_seed:
            continue
        trace = r["lr_per_step"]
        (line,) = ax.plot(range(1, len(trace) + 1), trace, label=r["variant"])
        if r["diverged"]:
            ax.plot(len(trace), trace[-1], "x", color=line.get_color(), markersize=10, mew=2)
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.legend(fontsize=7, title="x: diverged there", title_fontsize=7)
    ax.set_title("Warmup variants: the LR actually used", fontsize=9)
    return fig


def report_figures(records: Records, config: TrainConfig) -> dict[str, Figure]:
    """The report's figures of the runs, each only where a study of this run varies what it
    shows (a figure with nothing to show is left out)."""
    shown = {
        "Augmentation preset x training-set size":
            (augmentation_heatmap, ("augmentation.preset", "training.fraction"), False),
        "Dead units per layer": (dead_units_by_layer, ("model.activation",), False),
        "Accuracy vs batch size per normalisation":
            (accuracy_vs_batch_size, ("model.norm", "training.batch_size"), False),
        "Warmup variants' learning rate": (warmup_lr_traces, ("training.warmup",), True),
    }
    figures = {title: draw(records) for title, (draw, keys, diverged_too) in shown.items()
               if any(diverged_too or not r["diverged"] for r in _varying(records, *keys))}
    figures["A hand-rolled warmup wrapper vs LinearLR + SequentialLR"] = warmup_wrapper_bug(config)
    return figures


def warmup_wrapper_bug(config: TrainConfig, steps_per_epoch: int = 20) -> Figure:
    """A hand-rolled warmup around ``StepLR`` (calls ``get_lr()`` without stepping it) beside
    ``LinearLR`` + ``SequentialLR``: the wrapper never decays."""
    fig = Figure(figsize=(6.5, 3.4), layout="constrained")
    ax = fig.subplots()
    for name, trace in lr_traces(config, steps_per_epoch).items():
        ax.plot(range(1, len(trace) + 1), trace, label=name,
                linestyle="--" if name.startswith("hand") else "-")
    ax.set_xlabel(f"step ({steps_per_epoch} per epoch)")
    ax.set_ylabel("learning rate")
    ax.legend(fontsize=8)
    ax.set_title("The same warmup + step decay, written two ways", fontsize=9)
    return fig
