"""Batched data augmentation on the training device, by preset.

Training images stay on the device as uint8 (N, C, H, W); each batch is augmented there, then
converted to float and normalised with the train split's per-channel mean/std. Move the module
to the training device (``.to(device)``): its normalisation statistics are buffers, and kornia
draws its random parameters on the device its modules are on.

Every random transform draws its parameters *per image* and is applied to the whole batch at
once (no Python loop over images; a ``torchvision.transforms.v2`` transform called on a batch
would give every image the same crop):

- random crop with padding and horizontal flip, the cheap pair most presets use, is one
  gather with per-image offsets and flips (as in cifar10-airbench);
- a resized crop and flip is one ``grid_sample`` with a per-image affine map;
- rotation is one ``grid_sample`` with a per-image rotation, erasing one mask, blur one grouped
  convolution; colour jitter is ``kornia.augmentation``'s (in a fixed order). Each draws its
  parameters on the batch's device and reads nothing back (kornia's rotation, erasing and blur
  kept numbers on the host: synchronisations in every GPU step, found by
  ``benchmarks/gpu_check.py`` on an H200);
- CutMix and MixUp are batch transforms by design: ``v2.CutMix`` / ``v2.MixUp``.

Presets: ``none`` (only normalisation), ``standard`` (crop 4 px + flip), ``seed``
(RandomResizedCrop 0.8-1 + ColorJitter 0.4/0.4, brightness then contrast + GaussianBlur(3) p=0.3
+ flip), ``medium``
(standard + rotation up to 10 degrees + RandomErasing p=0.5), ``heavy`` (medium + CutMix/MixUp,
soft labels), ``auto`` (by training-set size).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import kornia.augmentation as K
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import v2

from simple_cnn.errors import ConfigError
from simple_cnn.presets import PRESETS, Preset, resolve_preset  # noqa: F401 - augment's API

logger = logging.getLogger(__name__)

def random_resized_crop_flip(
    images: torch.Tensor, scale: tuple[float, float] = (0.8, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3), flip: bool = True,
) -> torch.Tensor:
    """Per-image RandomResizedCrop (area ``scale``, aspect ``ratio``) and horizontal flip of a
    float batch, as one ``grid_sample``: each image's crop and flip are one affine map.

    Like ``v2.RandomResizedCrop`` except for crops wider or taller than the image, which are
    clipped to it rather than redrawn. Written here because kornia's ``RandomResizedCrop`` took
    23 ms for a CPU batch of 256; with this in its place the whole ``seed`` preset took 21 ms
    (against 33 ms), and ``benchmarks/cnn_throughput.py --preset all`` puts it at 0.87x ``standard``."""
    n, device = len(images), images.device
    area = torch.empty(n, device=device).uniform_(*scale)
    aspect = torch.empty(n, device=device).uniform_(math.log(ratio[0]), math.log(ratio[1])).exp()
    width, height = (area * aspect).sqrt().clamp(max=1.0), (area / aspect).sqrt().clamp(max=1.0)
    cx = (torch.rand(n, device=device) * 2 - 1) * (1 - width)  # crop centre, in [-1, 1] units
    cy = (torch.rand(n, device=device) * 2 - 1) * (1 - height)
    sign = torch.where(torch.rand(n, device=device) < 0.5, -1.0, 1.0) if flip else torch.ones(n, device=device)
    theta = torch.zeros(n, 2, 3, device=device, dtype=images.dtype)
    theta[:, 0, 0], theta[:, 0, 2] = width * sign, cx
    theta[:, 1, 1], theta[:, 1, 2] = height, cy
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


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


class ResizedCropFlip(nn.Module):
    """:func:`random_resized_crop_flip` as a module."""

    def __init__(self, scale: tuple[float, float]) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return random_resized_crop_flip(images, self.scale)


class RandomBlur(nn.Module):
    """Per-image Gaussian blur with probability ``p`` (a 3x3 kernel, sigma drawn per image), as
    one grouped convolution with reflected borders. kornia's ``RandomGaussianBlur`` checks its
    sigmas on the host: with the module on a GPU that is a synchronisation in every step."""

    def __init__(self, sigma: tuple[float, float], p: float) -> None:
        super().__init__()
        self.sigma, self.p = sigma, p

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        n, c, h, w = images.shape
        device, dtype = images.device, images.dtype
        sigma = torch.empty(n, 1, device=device, dtype=dtype).uniform_(*self.sigma)
        taps = torch.exp(-torch.arange(-1, 2, device=device, dtype=dtype).square() / (2 * sigma.square()))
        taps = taps / taps.sum(1, keepdim=True)
        kernels = taps[:, :, None] * taps[:, None, :]  # (n, 3, 3), separable
        identity = (torch.arange(9, device=device) == 4).to(dtype).view(3, 3)  # no host scalar
        blurred = torch.rand(n, 1, 1, device=device) < self.p
        kernels = torch.where(blurred, kernels, identity)
        weight = kernels.repeat_interleave(c, 0)[:, None]  # one kernel per image and channel
        padded = F.pad(images.reshape(1, n * c, h, w), (1, 1, 1, 1), mode="reflect")
        return F.conv2d(padded, weight, groups=n * c).reshape(n, c, h, w)


class RandomRotate(nn.Module):
    """Per-image rotation by an angle drawn uniformly in ``degrees`` (counter-clockwise, as
    ``torchvision``'s ``rotate``), nearest neighbour, zeros outside: one ``grid_sample``.
    Written here because kornia's ``RandomRotation`` keeps its angle range on the host, so on a
    GPU every batch's angles were copied back to it (a synchronisation in every step)."""

    def __init__(self, degrees: tuple[float, float]) -> None:
        super().__init__()
        self.degrees = degrees

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        n, _, h, w = images.shape
        angle = torch.empty(n, device=images.device, dtype=torch.float32).uniform_(*self.degrees)
        return rotate(images, angle)


def rotate(images: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Each image rotated about its centre by its own angle (counter-clockwise, in degrees)."""
    n, _, h, w = images.shape
    radians = torch.deg2rad(degrees.to(torch.float32))
    cos, sin = radians.cos(), radians.sin()
    # output pixel -> where it is read in the input, in grid_sample's [-1, 1] units per axis
    theta = torch.stack([torch.stack([cos, -sin * h / w, torch.zeros_like(cos)], 1),
                         torch.stack([sin * w / h, cos, torch.zeros_like(cos)], 1)], 1)
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="nearest", padding_mode="zeros", align_corners=False)


class RandomErase(nn.Module):
    """Per image, with probability ``p``, one rectangle set to ``value``: its area a fraction
    ``scale`` of the image's, its aspect ratio log-uniform in ``ratio``, its position uniform
    (``torchvision``'s RandomErasing rule, clipped to the image instead of redrawn), as one
    mask over the batch. Written here because kornia's ``RandomErasing`` samples on its host
    tensors: four synchronisations in every step on a GPU."""

    def __init__(self, scale: tuple[float, float], ratio: tuple[float, float] = (0.3, 3.3),
                 value: float = 0.0, p: float = 0.5) -> None:
        super().__init__()
        self.scale, self.ratio, self.value, self.p = scale, ratio, value, p

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        n, _, h, w = images.shape
        device = images.device
        area = torch.empty(n, device=device).uniform_(*self.scale) * (h * w)
        aspect = torch.empty(n, device=device).uniform_(math.log(self.ratio[0]), math.log(self.ratio[1])).exp()
        height = (area * aspect).sqrt().round().clamp(1, h)
        width = (area / aspect).sqrt().round().clamp(1, w)
        top = (torch.rand(n, device=device) * (h - height + 1)).floor().view(n, 1, 1)
        left = (torch.rand(n, device=device) * (w - width + 1)).floor().view(n, 1, 1)
        rows = torch.arange(h, device=device).view(1, h, 1)
        cols = torch.arange(w, device=device).view(1, 1, w)
        inside = ((rows >= top) & (rows < top + height.view(n, 1, 1))
                  & (cols >= left) & (cols < left + width.view(n, 1, 1)))
        erased = inside & (torch.rand(n, 1, 1, device=device) < self.p)
        return images.masked_fill(erased.unsqueeze(1), self.value)


class BatchAugment(nn.Module):
    """uint8 batch (N, C, H, W) -> normalised float batch, and labels -> training targets.

    Targets are class indices, or soft labels (N, classes) when CutMix/MixUp is on.
    ``train=False`` only converts and normalises (validation, test, plots).
    """

    _mean: torch.Tensor
    _std: torch.Tensor

    def __init__(
        self,
        preset: str,
        mean: Sequence[float],
        std: Sequence[float],
        num_classes: int,
    ) -> None:
        super().__init__()
        if preset not in PRESETS or preset == "auto":
            raise ConfigError(f"BatchAugment needs a resolved preset, got {preset!r}.")
        self.preset = preset
        self.mean, self.std = [float(m) for m in mean], [float(s) for s in std]
        # Buffers: they move with the module, so normalising a batch on the GPU copies nothing
        # from the host (v2.Normalize makes tensors of its lists on every call: two blocking
        # copies per batch).
        self.register_buffer("_mean", torch.tensor(self.mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(self.std).view(1, -1, 1, 1), persistent=False)
        self.crop_flip = preset in ("standard", "medium", "heavy")
        self.before_normalize: nn.Module | None = None  # on floats in [0, 1]
        self.after_normalize: nn.Module | None = None
        self.batch_mix: nn.Module | None = None
        if preset == "seed":
            self.before_normalize = nn.Sequential(
                ResizedCropFlip(scale=(0.8, 1.0)),
                # a fixed order (brightness, then contrast): kornia's sync-free path; a random
                # order is read on the host in every call
                K.ColorJitter(brightness=0.4, contrast=0.4, order=(0, 1)),
                RandomBlur(sigma=(0.1, 2.0), p=0.3),
            )
        if preset in ("medium", "heavy"):
            self.before_normalize = RandomRotate((-10.0, 10.0))
            self.after_normalize = RandomErase(scale=(0.02, 0.2), value=0.0, p=0.5)
        if preset == "heavy":
            self.batch_mix = v2.RandomChoice([
                v2.CutMix(num_classes=num_classes), v2.MixUp(num_classes=num_classes)
            ])

    @property
    def soft_labels(self) -> bool:
        return self.batch_mix is not None

    def to_float(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 in 0..255 -> float32 in 0..1."""
        return images.to(torch.float32).div_(255.0)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Per channel: (x - mean) / std, with the train split's statistics."""
        return (images - self._mean) / self._std

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 -> normalised float, no randomness."""
        return self.normalize(self.to_float(images))

    def forward(
        self, images: torch.Tensor, labels: torch.Tensor, train: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not train or self.preset == "none":
            return self.prepare(images), labels
        if self.crop_flip:
            images = random_crop_flip(images, padding=4)
        images = self.to_float(images)
        if self.before_normalize is not None:
            images = self.before_normalize(images)
        images = self.normalize(images)
        if self.after_normalize is not None:
            images = self.after_normalize(images)
        if self.batch_mix is not None:
            images, labels = self.batch_mix(images, labels)
        return images, labels
