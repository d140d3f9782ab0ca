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
    """A grid with one row per class and ``per_class`` sample images in each row: one mosaic
    image (a white gap between images), which draws in a fraction of the time 80 axes take."""
    n_classes, (height, width, channels) = len(class_names), images.shape[1:]
    gap = max(1, height // 16)
    mosaic = np.full((n_classes * (height + gap), per_class * (width + gap), channels), 255,
                     dtype=np.uint8)
    for row in range(n_classes):
        for col, index in enumerate(np.flatnonzero(labels == row)[:per_class]):
            top, left = row * (height + gap), col * (width + gap)
            mosaic[top:top + height, left:left + width] = images[index]
    fig = Figure(figsize=(per_class * 0.9 + 1.5, n_classes * 0.9), layout="constrained")
    ax = fig.subplots()
    ax.imshow(mosaic[:-gap, :-gap].squeeze(), cmap="gray" if channels == 1 else None)
    ax.set_xticks([])
    ax.set_yticks([row * (height + gap) + height / 2 for row in range(n_classes)], class_names,
                  fontsize=8)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    fig.suptitle("Training images, per class")
    return fig


def _draw_confusion(ax, matrix: np.ndarray, class_names: Sequence[str], counts: bool):
    """Row-normalised rates as colours on ``ax`` (counts written in the cells if asked)."""
    matrix = np.asarray(matrix)
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    shown = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(ticks, class_names, fontsize=8)
    ax.set(xlabel="predicted", ylabel="true")
    if counts:
        for i in range(len(class_names)):
            for j in range(len(class_names)):
                ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=6,
                        color="white" if rates[i, j] > 0.5 else "black")
    return shown


def confusion_matrix_figure(matrix: np.ndarray, class_names: Sequence[str], title: str) -> Figure:
    """A row-normalised confusion matrix with counts in the cells."""
    fig = Figure(figsize=(7.5, 6.5), layout="constrained")
    ax = fig.subplots()
    shown = _draw_confusion(ax, matrix, class_names, counts=True)
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


def training_curves(history: dict) -> Figure:
    """Loss and accuracy per epoch, train beside validation."""
    epochs = history["epoch"]
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    loss_ax, acc_ax = fig.subplots(1, 2)
    loss_ax.plot(epochs, history["train_loss"], "o-", label="train")
    loss_ax.plot(epochs, history["val_loss"], "o-", label="val")
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy", title="Loss")
    acc_ax.plot(epochs, history["train_accuracy"], "o-", label="train (augmented)")
    acc_ax.plot(epochs, history["val_accuracy"], "o-", label="val")
    acc_ax.axvline(history.get("best_epoch", epochs[-1]), color="gray", ls=":", label="best epoch")
    acc_ax.set(xlabel="epoch", ylabel="accuracy", title="Accuracy", ylim=(0, 1))
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.legend()
    return fig


def lr_schedule(history: dict) -> Figure:
    """The learning rate actually used at every optimiser step, warmup shaded."""
    lrs = history["lr_per_step"]
    fig = Figure(figsize=(7, 3.5), layout="constrained")
    ax = fig.subplots()
    ax.plot(np.arange(1, len(lrs) + 1), lrs)
    warmup = history.get("warmup_steps", 0)
    if warmup:
        ax.axvspan(0, warmup, color="orange", alpha=0.2, label=f"warmup ({warmup} steps)")
        ax.legend()
    steps = history.get("steps_per_epoch")
    if steps:
        for epoch in range(1, len(lrs) // steps + 1):
            ax.axvline(epoch * steps, color="gray", lw=0.5, alpha=0.4)
    ax.set(xlabel="optimiser step", ylabel="learning rate", title="Learning-rate schedule")
    ax.grid(alpha=0.3)
    return fig


def activation_curves(negative_slope: float = 0.3) -> Figure:
    """ReLU, LeakyReLU and GELU: responses and derivatives."""
    import torch

    x = torch.linspace(-4, 4, 401, requires_grad=True)
    functions = {
        "ReLU": torch.nn.functional.relu,
        f"LeakyReLU ({negative_slope})": lambda t: torch.nn.functional.leaky_relu(t, negative_slope),
        "GELU": torch.nn.functional.gelu,
    }
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    value_ax, grad_ax = fig.subplots(1, 2)
    for name, fn in functions.items():
        y = fn(x)
        (grad,) = torch.autograd.grad(y.sum(), x)
        value_ax.plot(x.detach(), y.detach(), label=name)
        grad_ax.plot(x.detach(), grad, label=name)
    value_ax.set(title="response f(x)", xlabel="x")
    grad_ax.set(title="derivative f'(x): zero means no gradient flows", xlabel="x")
    for ax in (value_ax, grad_ax):
        ax.grid(alpha=0.3)
        ax.legend()
    return fig


def feature_maps(images: np.ndarray, maps: np.ndarray, layer: str, n_maps: int = 8) -> Figure:
    """Each row: one input image, then the first ``n_maps`` channels of ``layer``'s output."""
    n_images = len(images)
    n_maps = min(n_maps, maps.shape[1])
    fig = Figure(figsize=(1.2 * (n_maps + 1), 1.25 * n_images + 0.4), layout="constrained")
    axes = fig.subplots(n_images, n_maps + 1, squeeze=False)
    for row in range(n_images):
        axes[row, 0].imshow(images[row].squeeze(), cmap="gray" if images.shape[-1] == 1 else None)
        for col in range(n_maps):
            axes[row, col + 1].imshow(maps[row, col], cmap="viridis")
        for ax in axes[row]:
            ax.set_axis_off()
    for col in range(n_maps):
        axes[0, col + 1].set_title(f"ch {col}", fontsize=8)
    fig.suptitle(f"Feature maps of {layer}")
    return fig


def misclassified(
    images: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str],
    n: int = 24,
) -> Figure:
    """The first ``n`` misclassified test images, titled true -> predicted."""
    wrong = np.flatnonzero(y_true != y_pred)[:n]
    cols = 8
    rows = max(1, int(np.ceil(len(wrong) / cols)))
    fig = Figure(figsize=(cols * 1.4, rows * 1.6), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, i in zip(axes.flat, wrong):
        ax.imshow(images[i].squeeze(), cmap="gray" if images.shape[-1] == 1 else None)
        ax.set_title(f"{class_names[y_true[i]]}\n-> {class_names[y_pred[i]]}", fontsize=7)
    fig.suptitle(f"Misclassified test images ({len(np.flatnonzero(y_true != y_pred))} in all)")
    return fig


def contact_sheet(images: np.ndarray, captions: Sequence[str], title: str, cols: int = 8) -> Figure:
    """Images in a grid, each captioned (e.g. its file and predicted class)."""
    rows = max(1, int(np.ceil(len(images) / cols)))
    fig = Figure(figsize=(cols * 1.5, rows * 1.75), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, image, caption in zip(axes.flat, images, captions):
        ax.imshow(image)
        ax.set_title(caption, fontsize=6)
    fig.suptitle(title)
    return fig


def augmentation_preview(originals: np.ndarray, views: list[np.ndarray], preset: str) -> Figure:
    """Each row: an original image, then augmented views of it (all uint8 HWC, 0-255)."""
    n, n_views = len(originals), len(views)
    fig = Figure(figsize=(1.3 * (n_views + 1), 1.35 * n + 0.4), layout="constrained")
    axes = fig.subplots(n, n_views + 1, squeeze=False)
    for row in range(n):
        axes[row, 0].imshow(originals[row].squeeze())
        for col in range(n_views):
            axes[row, col + 1].imshow(views[col][row].squeeze())
        for ax in axes[row]:
            ax.set_axis_off()
    axes[0, 0].set_title("original", fontsize=8)
    for col in range(n_views):
        axes[0, col + 1].set_title(f"view {col + 1}", fontsize=8)
    fig.suptitle(f"Augmentation preset '{preset}'")
    return fig


def model_comparison(metrics: dict[str, dict], class_names: Sequence[str]) -> Figure:
    """Accuracy and macro-F1 side by side, then per-class accuracy (recall) bars per model."""
    names = list(metrics)
    fig = Figure(figsize=(12, 4.2), layout="constrained")
    head_ax, class_ax = fig.subplots(1, 2, width_ratios=[1, 3])
    x = np.arange(2)
    width = 0.8 / len(names)
    for k, name in enumerate(names):
        values = [metrics[name]["accuracy"], metrics[name]["macro_f1"]]
        bars = head_ax.bar(x + (k - (len(names) - 1) / 2) * width, values, width, label=name)
        head_ax.bar_label(bars, fmt="%.3f", fontsize=7)
        recalls = [metrics[name]["per_class"][c]["recall"] for c in class_names]
        class_ax.bar(np.arange(len(class_names)) + (k - (len(names) - 1) / 2) * width, recalls,
                     width, label=name)
    head_ax.set_xticks(x, ["accuracy", "macro-F1"])
    head_ax.set(ylim=(0, 1), title="Test scores")
    class_ax.set_xticks(np.arange(len(class_names)), class_names, rotation=30, ha="right")
    class_ax.set(ylim=(0, 1), ylabel="accuracy on the class (recall)", title="Per class")
    for ax in (head_ax, class_ax):
        ax.grid(axis="y", alpha=0.3)
    class_ax.legend(loc="lower right", fontsize=8)
    return fig


def confusion_matrices(matrices: dict[str, np.ndarray], class_names: Sequence[str]) -> Figure:
    """Row-normalised confusion matrices of several models, side by side on one colour scale."""
    fig = Figure(figsize=(6.5 * len(matrices), 6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(matrices)))
    for ax, (name, matrix) in zip(axes, matrices.items()):
        shown = _draw_confusion(ax, matrix, class_names, counts=False)
        matrix = np.asarray(matrix)
        ax.set_title(f"{name}: accuracy {np.trace(matrix) / matrix.sum():.1%}")
    fig.colorbar(shown, ax=list(axes), label="fraction of the true class", shrink=0.8)
    return fig


def to_png_base64(fig: Figure, dpi: int = 90) -> str:
    """A figure as a base64 PNG, for embedding in HTML."""
    import base64
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return base64.b64encode(buffer.getvalue()).decode("ascii")
