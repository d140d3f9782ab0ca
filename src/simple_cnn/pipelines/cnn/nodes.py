"""Nodes of the cnn pipeline. Heavy lifting lives in the core modules; these glue params to it.
``train_cnn`` and ``evaluate_cnn`` are the core's own (``simple_cnn.training.run``). The figure
nodes return matplotlib figures; torch and matplotlib are imported inside the node functions,
when they run."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from simple_cnn.parameters import CnnParams

logger = logging.getLogger(__name__)

Split = dict[str, np.ndarray]


def summarise_cnn(dataset_summary: dict[str, Any], params: CnnParams) -> str:
    """A torchinfo summary: per-layer output shapes and parameter counts."""
    from torchinfo import summary

    from simple_cnn import model_format
    from simple_cnn.models import simple_cnn as models

    config = model_format.model_config(params, dataset_summary)
    stats = summary(models.SimpleCNN(config), input_size=(1, config.in_channels, config.image_size,
                    config.image_size), col_names=("output_size", "num_params"), verbose=0,
                    device="cpu")
    return f"SimpleCNN({config})\n\n{stats}\n"


def record_cnn_activation_stats(cnn_model: dict[str, Any], val_split: Split) -> dict[str, Any]:
    """Per-layer activation statistics for one validation batch (spot dead ReLUs, blow-ups)."""
    from simple_cnn import inference
    from simple_cnn.training import diagnostics

    run = inference.inference(cnn_model, "cpu")
    return diagnostics.activation_stats(run.model, run.prepared(val_split["images"][:256]))


def plot_cnn_training_curves(cnn_training_history: dict[str, Any]):
    """Loss and accuracy per epoch."""
    from simple_cnn import plots

    return plots.training_curves(cnn_training_history)


def plot_cnn_lr_schedule(cnn_training_history: dict[str, Any]):
    """The LR used at each step, warmup visible."""
    from simple_cnn import plots

    return plots.lr_schedule(cnn_training_history)


def plot_cnn_confusion_matrix(cnn_test_metrics: dict[str, Any], class_names: list[str]):
    from simple_cnn import plots

    return plots.confusion_matrix_figure(
        np.array(cnn_test_metrics["confusion_matrix"]), class_names,
        f"SimpleCNN on test: accuracy {cnn_test_metrics['accuracy']:.1%}")


def plot_activation_functions(params: CnnParams):
    """ReLU vs LeakyReLU vs GELU response curves (LeakyReLU with cnn.model.negative_slope)."""
    from simple_cnn import plots

    return plots.activation_curves(params.model.negative_slope)


def plot_cnn_feature_maps(cnn_model: dict[str, Any], test_split: Split, params: CnnParams):
    """Feature maps of ``cnn.plots.feature_map_layer`` for a few test images."""
    import torch

    from simple_cnn import inference, model_format, plots

    run = inference.inference(cnn_model, "cpu")
    layer, n_images = params.plots.feature_map_layer, params.plots.n_feature_map_images
    images = test_split["images"][:n_images]
    captured: dict[str, torch.Tensor] = {}
    module = dict(run.model.named_modules())[layer]
    handle = module.register_forward_hook(lambda m, i, o: captured.setdefault("maps", o))
    with torch.no_grad():
        run.model(run.prepared(images))
    handle.remove()
    return plots.feature_maps(model_format.model_images(images, run.config), captured["maps"].float().numpy(), layer)


def plot_cnn_misclassified(
    test_split: Split, cnn_test_predictions: Split, class_names: list[str]
):
    from simple_cnn import plots

    return plots.misclassified(test_split["images"], test_split["labels"],
                               cnn_test_predictions["predictions"], class_names)


def preview_augmentation(
    train_split: Split, dataset_summary: dict[str, Any], params: CnnParams
):
    """Originals beside augmented views, as the model sees them (de-normalised for display)."""
    import torch

    from simple_cnn import model_format, plots

    config = model_format.model_config(params, dataset_summary)
    augment = model_format.batch_augment(params, dataset_summary, config, len(train_split["labels"]))
    torch.manual_seed(0)
    originals = model_format.model_images(train_split["images"][:6], config)
    x = torch.from_numpy(originals).permute(0, 3, 1, 2).contiguous()
    y = torch.from_numpy(train_split["labels"][:6])
    mean = torch.tensor(augment.mean)[:, None, None]
    std = torch.tensor(augment.std)[:, None, None]
    views = []
    for _ in range(5):
        out, _ = augment(x, y)
        views.append(((out * std + mean).clamp(0, 1) * 255).byte().permute(0, 2, 3, 1).numpy())
    return plots.augmentation_preview(originals, views, augment.preset)
