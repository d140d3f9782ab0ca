"""Predictions of a model on uint8 images: logits in batches (with mirror averaging), and a
run's validation loss and accuracy."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable

import torch
from torch import nn

from simple_cnn.augment import BatchAugment
from simple_cnn.training.state import TrainingRun


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    images: torch.Tensor,
    augment: BatchAugment,
    autocast: Callable[[], contextlib.AbstractContextManager],
    batch_size: int = 1024,
    flip_tta: bool = False,
) -> torch.Tensor:
    """Logits (float32) for uint8 images; with ``flip_tta`` averaged over the image and its mirror."""
    was_training = model.training
    model.eval()
    outputs = []
    for start in range(0, len(images), batch_size):
        x = augment.prepare(images[start : start + batch_size]).contiguous(
            memory_format=torch.channels_last)
        with autocast():
            logits = model(x).float()
            if flip_tta:
                logits = (logits + model(x.flip(-1)).float()) / 2
        outputs.append(logits)
    model.train(was_training)
    return torch.cat(outputs)


def evaluate(run: TrainingRun, val_x: torch.Tensor, val_y: torch.Tensor) -> dict[str, float]:
    """Validation loss and accuracy (NaN without a validation split)."""
    if not len(val_y):
        return {"val_loss": math.nan, "val_accuracy": math.nan}
    logits = predict_logits(run.model, val_x, run.augment, run.autocast)
    return {"val_loss": nn.functional.cross_entropy(logits, val_y).item(),
            "val_accuracy": (logits.argmax(1) == val_y).float().mean().item()}


