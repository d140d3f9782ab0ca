"""A trained SimpleCNN ready to predict, and the conversions its training and evaluation share.

Plain Python (no Kedro): the ``cnn``, ``ablation`` and ``first_lesson`` pipelines all reach a
saved ``cnn_model`` through :func:`inference`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from simple_cnn.augment import BatchAugment, resolve_preset
from simple_cnn.data.image_folder import read_images
from simple_cnn.data.raw import GRAY_WEIGHTS, to_grayscale
from simple_cnn.errors import ConfigError
from simple_cnn.models.config import ModelConfig
from simple_cnn.models.simple_cnn import SimpleCNN
from simple_cnn.parameters import CnnParams
from simple_cnn.params import build
from simple_cnn.training.device import resolve_amp, resolve_device
from simple_cnn.training.loop import autocast_factory, predict_logits, to_device_images


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
            "normalisation": {"mean": [float(m) for m in normalise.normalize.mean],
                              "std": [float(s) for s in normalise.normalize.std]},
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


@dataclass
class Inference:
    """A trained model ready to predict, with what its training used: the image conversion,
    the normalisation, the device and the autocast context."""

    model: SimpleCNN
    config: ModelConfig
    augment: BatchAugment
    device: torch.device
    autocast: Any
    class_names: list[str]
    flip_tta: bool = False
    """The mirror-image averaging the model was evaluated with: the default of every prediction."""

    def images(self, images: np.ndarray) -> torch.Tensor:
        """RGB uint8 (N, H, W, 3) NumPy -> the model's uint8 (N, C, H, W) on its device."""
        return to_device_images(model_images(images, self.config), self.device)

    def prepared(self, images: np.ndarray) -> torch.Tensor:
        """The normalised float batch the model takes."""
        return self.augment.prepare(self.images(images))

    def logits(self, images: np.ndarray, batch_size: int, flip_tta: bool | None = None) -> torch.Tensor:
        """float32 logits; ``flip_tta`` None: as the model was evaluated."""
        tta = self.flip_tta if flip_tta is None else flip_tta
        return predict_logits(self.model, self.images(images), self.augment, self.autocast,
                              batch_size, flip_tta=tta)

    def probabilities(self, images: np.ndarray, batch_size: int = 1024,
                      flip_tta: bool | None = None) -> np.ndarray:
        """float32 (N, classes) softmax probabilities of uint8 RGB (N, H, W, 3) images of the
        model's size."""
        if images.ndim != 4 or images.shape[1:] != (self.config.image_size, self.config.image_size, 3):
            raise ValueError(f"expected uint8 RGB images of shape (N, {self.config.image_size}, "
                             f"{self.config.image_size}, 3), got {images.shape}; files of any size "
                             "go through predict_files")
        return torch.softmax(self.logits(images, batch_size, flip_tta).float(), 1).cpu().numpy()

    def predict(self, images: np.ndarray, k: int = 3, batch_size: int = 1024,
                flip_tta: bool | None = None) -> list[list[tuple[str, float]]]:
        """Per image, the ``k`` likeliest classes with their probabilities, likeliest first."""
        if not 1 <= k <= len(self.class_names):
            raise ValueError(f"k={k}: the model has {len(self.class_names)} classes; ask for 1 to "
                             f"{len(self.class_names)}")
        probabilities = self.probabilities(images, batch_size, flip_tta)
        top = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
        return [[(self.class_names[c], float(row[c])) for c in picks]
                for row, picks in zip(probabilities, top)]

    def predict_files(self, source: str | Path, k: int = 3, batch_size: int = 1024,
                      flip_tta: bool | None = None) -> tuple[dict[str, list[tuple[str, float]]], list]:
        """Every image under a folder or ``.tar(.gz)`` (any format and size Pillow reads,
        shorter side to the model's size then a centre crop): ``{file: top-k}``, and the files
        not read with why."""
        names, images, skipped = read_images(source, self.config.image_size)
        return dict(zip(names, self.predict(images, k, batch_size, flip_tta))), skipped


def prediction_rows(names: list[str], top: list[list[tuple[str, float]]],
                    model_version: str | None) -> list[dict[str, Any]]:
    """The ``predict`` pipeline's table (and the served model's answer): per file, the
    likeliest class and its probability, then each of the top-k with theirs, and the model's
    version. Probabilities are rounded to 6 places."""
    rows = []
    for name, picks in zip(names, top):
        row = {"file": name, "predicted_class": picks[0][0], "probability": round(picks[0][1], 6)}
        for rank, (cls, p) in enumerate(picks, start=1):
            row[f"top{rank}_class"], row[f"top{rank}_probability"] = cls, round(p, 6)
        rows.append({**row, "model_version": model_version})
    return rows


def load(path: str | Path, device: str = "auto") -> Inference:
    """A saved ``cnn_model`` file (``data/06_models/cnn_model.pt/<version>/cnn_model.pt``),
    ready to predict: ``load(path).predict_files("my_photos/")``."""
    return inference(torch.load(path, map_location="cpu", weights_only=True), device)


def inference(cnn_model: dict[str, Any], device: str = "auto", amp: str | None = None) -> Inference:
    """Load a saved ``cnn_model`` for prediction on ``device`` (``cnn.training.device``'s
    choices), at the precision it was evaluated at (``amp``: ``cnn.training.amp``'s choices to
    force another). Needs nothing but the model: its configuration, classes, normalisation and
    evaluation settings are saved with the weights."""
    config = saved_config(cnn_model)
    device_ = resolve_device(device)
    record = evaluated_with(cnn_model)
    autocast = autocast_factory(device_, resolve_amp(record["amp"] if amp is None else amp, device_))
    model = load_model(cnn_model, config).to(device_).to(memory_format=torch.channels_last)
    norm = cnn_model["normalisation"]
    augment = BatchAugment("none", norm["mean"], norm["std"], config.num_classes)
    return Inference(model, config, augment, device_, autocast, list(cnn_model["class_names"]),
                     flip_tta=bool(record["flip_tta"]))


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
