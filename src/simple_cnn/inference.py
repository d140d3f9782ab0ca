"""A trained SimpleCNN ready to predict.

Plain Python (no Kedro): the ``cnn``, ``ablation``, ``first_lesson`` and ``predict`` pipelines
and the served model all reach a saved ``cnn_model`` through :func:`inference` (or
:func:`load`); what a saved model holds is ``model_format.py``'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from simple_cnn.augment import BatchAugment
from simple_cnn.data.image_folder import read_images
from simple_cnn.model_format import evaluated_with, load_model, model_images, saved_config
from simple_cnn.models.config import ModelConfig
from simple_cnn.models.simple_cnn import SimpleCNN
from simple_cnn.training.device import autocast_factory, resolve_amp, resolve_device, to_device_images
from simple_cnn.training.evaluation import predict_logits


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
    augment = BatchAugment("none", norm["mean"], norm["std"], config.num_classes).to(device_)
    return Inference(model, config, augment, device_, autocast, list(cnn_model["class_names"]),
                     flip_tta=bool(record["flip_tta"]))


