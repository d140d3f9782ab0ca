"""Transformed copies of a whole uint8 image batch, at a stated strength, for robustness tests.

Each transform is applied to the batch at once (no Python loop over images):

- ``rotation`` (degrees): each image turned by the strength, clockwise or counter-clockwise
  (a seeded coin per image), bilinear, about its centre (``kornia.geometry.rotate``);
- ``brightness`` (a factor): pixel values times the factor, clipped to 0..255
  (``torchvision.transforms.v2.functional.adjust_brightness``);
- ``contrast`` (a factor): each image blended with its own mean gray level, clipped
  (``adjust_contrast``: below 1 flatter, above 1 harsher);
- ``shift`` (pixels): each image moved by the strength along x, y or both, in one of the 8
  directions (seeded per image), whole pixels (``kornia.geometry.translate``, nearest).

What the move uncovers at the border is filled by ``fill``: ``reflection`` (the image mirrored
about its edge pixels), ``border`` (the edge pixels repeated) or ``zeros`` (black).
The same seed gives every strength the same coins and directions, so the curves against
strength are of the same images moved further.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Kind = Literal["rotation", "brightness", "contrast", "shift"]
Fill = Literal["reflection", "border", "zeros"]
UNITS: dict[Kind, str] = {"rotation": "degrees", "brightness": "factor", "contrast": "factor",
                         "shift": "pixels"}
IDENTITY: dict[str, float] = {"rotation": 0.0, "brightness": 1.0, "contrast": 1.0, "shift": 0.0}
DIRECTIONS = np.array([(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if (dx, dy) != (0, 0)])
"""The 8 unit moves (dx, dy) of a shift: x to the right, y down."""


def shift_directions(n: int, seed: int, unlike: np.ndarray | None = None) -> np.ndarray:
    """Per image, an index into :data:`DIRECTIONS`; with ``unlike``, a different one than it
    (for Zhang's consistency between two shifts)."""
    rng = np.random.default_rng([seed, 1 if unlike is None else 2])
    if unlike is None:
        return rng.integers(0, len(DIRECTIONS), n)
    return (unlike + rng.integers(1, len(DIRECTIONS), n)) % len(DIRECTIONS)


def rotation_signs(n: int, seed: int) -> np.ndarray:
    """Per image, +1 (counter-clockwise) or -1."""
    return np.where(np.random.default_rng([seed, 0]).random(n) < 0.5, -1.0, 1.0)


def transformed(images: np.ndarray, kind: Kind, strength: float, *, fill: Fill = "reflection",
                seed: int = 0, directions: np.ndarray | None = None,
                chunk: int = 4096) -> np.ndarray:
    """uint8 (N, H, W, C) -> the same images transformed by ``kind`` at ``strength``.

    ``directions`` (shift only): the per-image moves, as :func:`shift_directions` gives them;
    by default those of ``seed``."""
    if kind not in UNITS:
        raise ValueError(f"unknown transform {kind!r}; choose one of: {', '.join(UNITS)}")
    if strength == IDENTITY[kind]:
        return images
    if kind == "shift" and directions is None:
        directions = shift_directions(len(images), seed)
    signs = rotation_signs(len(images), seed) if kind == "rotation" else None
    out = np.empty_like(images)
    for start in range(0, len(images), chunk):
        part = slice(start, start + chunk)
        out[part] = _transformed_chunk(
            images[part], kind, strength, fill,
            None if signs is None else signs[part],
            None if directions is None else directions[part])
    return out


def _transformed_chunk(images, kind, strength, fill, signs, directions) -> np.ndarray:
    import torch
    from torchvision.transforms.v2 import functional as F

    batch = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    if kind == "brightness":
        return F.adjust_brightness(batch, strength).permute(0, 2, 3, 1).numpy()
    if kind == "contrast":
        return F.adjust_contrast(batch, strength).permute(0, 2, 3, 1).numpy()
    from kornia.geometry.transform import rotate, translate

    floats = batch.float()
    if kind == "rotation":
        moved = rotate(floats, torch.from_numpy(signs * strength).float(), mode="bilinear",
                       padding_mode=fill, align_corners=True)
    else:
        offsets = torch.from_numpy(DIRECTIONS[directions] * strength).float()
        moved = translate(floats, offsets, mode="nearest", padding_mode=fill, align_corners=True)
    return moved.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
