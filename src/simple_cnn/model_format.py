"""What training, evaluation and prediction share about a model: its configuration from the
parameters and the data, the images it takes, its augmentation and normalisation, and the
description saved beside its weights (so that a saved ``cnn_model`` needs nothing else).

Below both ``training/run.py`` and ``inference.py``: each imports from here, neither from the
other.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from simple_cnn.augment import BatchAugment, resolve_preset
from simple_cnn.data.raw import GRAY_WEIGHTS, to_grayscale
from simple_cnn.errors import ConfigError
from simple_cnn.models.config import ModelConfig
from simple_cnn.models.simple_cnn import SimpleCNN
from simple_cnn.parameters import CnnParams
from simple_cnn.params import build


def model_config(params: CnnParams, summary: dict[str, Any]) -> ModelConfig:
    """``cnn.model`` plus what the data decides: classes and image size."""
    height, width, _ = summary["image_shape"]
    if height != width:
        raise ConfigError(f"SimpleCNN expects square images, the dataset has {height}x{width}.")
    return build(ModelConfig, "cnn.model", **params.model.model_dump(),
                 num_classes=len(summary["class_names"]), image_size=height)


def model_images(images: np.ndarray, config: ModelConfig) -> np.ndarray:
    """RGB uint8 (N, H, W, 3) -> what the model takes (gray when ``in_channels`` is 1)."""
    return to_grayscale(images) if config.in_channels == 1 else images


def batch_augment(params: CnnParams, summary: dict[str, Any], config: ModelConfig,
                  n_train: int) -> BatchAugment:
    """The training-time conversion: ``cnn.augmentation``'s preset, then the train split's
    normalisation."""
    mean, std = np.array(summary["train_pixel_mean"]), np.array(summary["train_pixel_std"])
    if config.in_channels == 1:  # gray = weighted channel sum: exact for the mean, close for std
        weights = np.array(GRAY_WEIGHTS)
        mean, std = mean[None] @ weights, std[None] @ weights
    preset = resolve_preset(params.augmentation.preset, n_train)
    return BatchAugment(preset, mean.tolist(), std.tolist(), config.num_classes)


MODEL_FORMAT = 2
"""A saved ``cnn_model`` of this format describes itself: its configuration, classes, input
and normalisation are stored beside the weights."""

EVALUATION_AMP = "off"
"""The precision every prediction of a saved model runs at, whatever its training used: full
precision (fp32), so that the test metrics ``evaluate_cnn`` reports are those of the model that
``predict``, :func:`load` and the served model call, on any CPU or GPU (a bf16 autocast gives
other probabilities on a CPU with native bf16 than on one without)."""


def describe_model(config: ModelConfig, class_names: list[str], normalise: BatchAugment,
                   flip_tta: bool = False) -> dict[str, Any]:
    """What a saved model needs to be used without the parameters or data that trained it,
    and how it is evaluated (``evaluated_with``: the precision and the mirror-image averaging
    that every prediction of it uses unless told otherwise)."""
    return {"format": MODEL_FORMAT, "model_config": config.model_dump(mode="json"),
            "class_names": list(class_names),
            "input": {"image_size": config.image_size, "channels": config.in_channels},
            "normalisation": {"mean": list(normalise.mean), "std": list(normalise.std)},
            "evaluated_with": {"amp": EVALUATION_AMP, "flip_tta": bool(flip_tta)}}


def evaluated_with(cnn_model: dict[str, Any]) -> dict[str, Any]:
    """How a saved model is evaluated: ``{"amp": ..., "flip_tta": ...}`` (a model saved before
    the record: full precision, no mirror averaging)."""
    return {"amp": EVALUATION_AMP, "flip_tta": False, **cnn_model.get("evaluated_with", {})}


def saved_config(cnn_model: dict[str, Any]) -> ModelConfig:
    """The configuration a saved model was trained with; a clear error for an older file."""
    if cnn_model.get("format") != MODEL_FORMAT or "state_dict" not in cnn_model:
        raise ConfigError(
            "This cnn_model version was saved by an older Simple CNN, without the description "
            "of the model it holds (configuration, classes, normalisation); re-run train_cnn "
            "(kedro run --from-nodes train_cnn).")
    return ModelConfig.model_validate(cnn_model["model_config"])


def normaliser(params: CnnParams, summary: dict[str, Any], config: ModelConfig) -> BatchAugment:
    """The evaluation-time conversion: uint8 -> normalised float, no augmentation."""
    return batch_augment(params.model_copy(update={"augmentation": params.augmentation.model_copy(
        update={"preset": "none"})}), summary, config, n_train=0)


def load_model(cnn_model: dict[str, Any], config: ModelConfig) -> SimpleCNN:
    """The saved weights in a model of ``config``, in eval mode; a clear error if they do not fit."""
    model = SimpleCNN(config)
    try:
        model.load_state_dict(cnn_model["state_dict"])
    except RuntimeError as error:
        raise ConfigError(
            f"The saved cnn_model's weights do not fit its own configuration ({error}); the "
            "file is damaged: re-run train_cnn.") from error
    return model.eval()
