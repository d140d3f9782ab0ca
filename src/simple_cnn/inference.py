"""A trained SimpleCNN ready to predict, and the conversions its training and evaluation share.

Plain Python (no Kedro): the ``cnn``, ``ablation`` and ``first_lesson`` pipelines all reach a
saved ``cnn_model`` through :func:`inference`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from simple_cnn.augment import BatchAugment, resolve_preset
from simple_cnn.data.raw import GRAY_WEIGHTS, to_grayscale
from simple_cnn.errors import ConfigError
from simple_cnn.models import ModelConfig, SimpleCNN
from simple_cnn.parameters import CnnParams
from simple_cnn.params import build
from simple_cnn.training import predict_logits
from simple_cnn.training.config import resolve_amp, resolve_device
from simple_cnn.training.loop import autocast_factory, to_device_images


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


@dataclass
class Inference:
    """A trained model ready to predict, with what its training used: the image conversion,
    the normalisation, the device and the autocast context."""

    model: SimpleCNN
    config: ModelConfig
    augment: BatchAugment
    device: torch.device
    autocast: Any

    def images(self, images: np.ndarray) -> torch.Tensor:
        """RGB uint8 (N, H, W, 3) NumPy -> the model's uint8 (N, C, H, W) on its device."""
        return to_device_images(model_images(images, self.config), self.device)

    def prepared(self, images: np.ndarray) -> torch.Tensor:
        """The normalised float batch the model takes."""
        return self.augment.prepare(self.images(images))

    def logits(self, images: np.ndarray, batch_size: int, flip_tta: bool = False) -> torch.Tensor:
        return predict_logits(self.model, self.images(images), self.augment, self.autocast,
                              batch_size, flip_tta=flip_tta)


def inference(cnn_model: dict[str, Any], dataset_summary: dict[str, Any], params: CnnParams,
              device: str | None = None) -> Inference:
    """Load ``cnn_model`` for prediction on ``device`` (default: the training device)."""
    config = model_config(params, dataset_summary)
    device_ = torch.device(device) if device else resolve_device(params.training.device)
    autocast = (autocast_factory(device_, resolve_amp(params.training.amp, device_))
                if device is None else autocast_factory(device_, None))
    model = load_model(cnn_model, config).to(device_).to(memory_format=torch.channels_last)
    return Inference(model, config, normaliser(params, dataset_summary, config), device_, autocast)


def normaliser(params: CnnParams, summary: dict[str, Any], config: ModelConfig) -> BatchAugment:
    """The evaluation-time conversion: uint8 -> normalised float, no augmentation."""
    return batch_augment(params.model_copy(update={"augmentation": params.augmentation.model_copy(
        update={"preset": "none"})}), summary, config, n_train=0)


def load_model(cnn_model: dict[str, Any], config: ModelConfig) -> SimpleCNN:
    """The saved weights in a model of ``config``, in eval mode; a clear error if they do not fit."""
    if "state_dict" not in cnn_model:
        raise ConfigError(
            "This cnn_model version was saved by an older Simple CNN, without the details of "
            "its training run; re-run train_cnn (kedro run --from-nodes train_cnn)."
        )
    model = SimpleCNN(config)
    try:
        model.load_state_dict(cnn_model["state_dict"])
    except RuntimeError as error:
        raise ConfigError(
            "The saved cnn_model does not fit cnn.model's current shape; re-run train_cnn, or "
            f"load the matching version with --load-versions. ({error})"
        ) from error
    return model.eval()
