"""Batched data augmentation on the training device, by preset.

Training images stay on the device as uint8 (N, C, H, W); each batch is augmented there, then
converted to float and normalised with the train split's per-channel mean/std.

A ``torchvision.transforms.v2`` transform called on a batch tensor draws *one* set of random
parameters for the whole batch (every image gets the same crop). Per-image randomness is what
augmentation needs, so:

- the cheap, always-used pair, random crop with padding and horizontal flip, is done for the
  whole batch at once with per-image offsets and flips (one gather, as in cifar10-airbench);
- the other per-image v2 transforms (RandomResizedCrop, ColorJitter, GaussianBlur, rotation,
  RandomErasing) run image by image over the on-device batch;
- CutMix and MixUp are batch transforms by design and use v2.CutMix / v2.MixUp directly.

Presets: ``none`` (only normalisation), ``standard`` (crop 4 px + flip), ``seed`` (RandomResizedCrop 0.8-1 + ColorJitter 0.4/0.4
+ GaussianBlur(3) p=0.3 + flip), ``medium`` (standard + small rotation + RandomErasing),
``heavy`` (medium + CutMix/MixUp, soft labels), ``auto`` (by training-set size).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import v2

from simple_cnn.errors import ConfigError

logger = logging.getLogger(__name__)

PRESETS = ("none", "standard", "seed", "medium", "heavy", "auto")
Preset = Literal["none", "standard", "seed", "medium", "heavy", "auto"]


def resolve_preset(preset: str, n_train: int) -> str:
    """``auto``: heavy below 10k training images, medium below 100k, else standard."""
    if preset not in PRESETS:
        raise ConfigError(
            f"preset={preset!r} is not allowed; choose one of: {', '.join(PRESETS)}."
        )
    if preset != "auto":
        return preset
    chosen = "heavy" if n_train < 10_000 else "medium" if n_train < 100_000 else "standard"
    logger.info("Augmentation preset 'auto' chose %r for %d training images.", chosen, n_train)
    return chosen


def random_crop_flip(images: torch.Tensor, padding: int, flip: bool = True) -> torch.Tensor:
    """Per-image random crop (zero padding of ``padding`` px) and horizontal flip of a batch."""
    n, c, h, w = images.shape
    device = images.device
    if padding:
        images = F.pad(images, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n, 1), device=device)
    dx = torch.randint(0, 2 * padding + 1, (n, 1), device=device)
    rows = dy + torch.arange(h, device=device)
    cols = dx + torch.arange(w, device=device)
    if flip:
        flipped = torch.rand(n, 1, device=device) < 0.5
        cols = torch.where(flipped, cols.flip(1), cols)
    batch = torch.arange(n, device=device)[:, None, None, None]
    channel = torch.arange(c, device=device)[None, :, None, None]
    return images[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]


def per_image(transform: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Apply a v2 transform to each image on its own, so each draws its own parameters."""
    return torch.stack([transform(image) for image in images])


class BatchAugment(nn.Module):
    """uint8 batch (N, C, H, W) -> normalised float batch, and labels -> training targets.

    Targets are class indices, or soft labels (N, classes) when CutMix/MixUp is on.
    ``train=False`` only converts and normalises (validation, test, plots).
    """

    def __init__(
        self,
        preset: str,
        mean: Sequence[float],
        std: Sequence[float],
        num_classes: int,
        image_size: int = 32,
    ) -> None:
        super().__init__()
        if preset not in PRESETS or preset == "auto":
            raise ConfigError(f"BatchAugment needs a resolved preset, got {preset!r}.")
        self.preset = preset
        self.num_classes = num_classes
        self.to_float = v2.ToDtype(torch.float32, scale=True)
        self.normalize = v2.Normalize(list(mean), list(std))
        self.uint8_per_image: nn.Module | None = None
        self.float_per_image: nn.Module | None = None
        self.batch_mix: nn.Module | None = None
        if preset == "seed":
            self.uint8_per_image = v2.Compose([
                v2.RandomResizedCrop(image_size, scale=(0.8, 1.0), antialias=True),
                v2.ColorJitter(brightness=0.4, contrast=0.4),
                v2.RandomApply([v2.GaussianBlur(3)], p=0.3),
                v2.RandomHorizontalFlip(),
            ])
        if preset in ("medium", "heavy"):
            self.uint8_per_image = v2.RandomRotation(10)
            self.float_per_image = v2.RandomErasing(p=0.5, scale=(0.02, 0.2), value=0)
        if preset == "heavy":
            self.batch_mix = v2.RandomChoice([
                v2.CutMix(num_classes=num_classes), v2.MixUp(num_classes=num_classes)
            ])

    @property
    def soft_labels(self) -> bool:
        return self.batch_mix is not None

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 -> normalised float, no randomness."""
        return self.normalize(self.to_float(images))

    def forward(
        self, images: torch.Tensor, labels: torch.Tensor, train: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not train or self.preset == "none":
            return self.prepare(images), labels
        if self.preset != "seed":
            images = random_crop_flip(images, padding=4)
        if self.uint8_per_image is not None:
            images = per_image(self.uint8_per_image, images)
        images = self.prepare(images)
        if self.float_per_image is not None:
            images = per_image(self.float_per_image, images)
        if self.batch_mix is not None:
            images, labels = self.batch_mix(images, labels)
        return images, labels
