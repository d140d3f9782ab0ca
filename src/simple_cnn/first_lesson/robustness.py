"""Accuracy and consistency of a classifier on transformed copies of the test images.

*Consistency* (Zhang 2019, "Making convolutional networks shift-invariant again") is the
fraction of images whose predicted class does not change: here between each transformed copy
and the untransformed image, and for shifts also between two different random shifts of the
same strength (:func:`~simple_cnn.first_lesson.transforms.shift_directions` with ``unlike``).
A model is any function from a uint8 (N, H, W, C) batch to predicted classes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import numpy as np
from pydantic import Field, model_validator

from simple_cnn.first_lesson.transforms import IDENTITY, UNITS, Fill, shift_directions, transformed
from simple_cnn.params import Float, Int, Model, invalid

Predict = Callable[[np.ndarray], np.ndarray]
SECOND_SHIFT = "shift_second"
"""The key of the second of two random shifts (two-shift consistency)."""


class RobustnessParams(Model):
    """``first_lesson.robustness``: the test images and the strengths of each transform (the
    untransformed images are always measured; list the other strengths)."""

    test_images: Int = Field(2000, ge=0)
    seed: Int = Field(0, ge=0)
    rotation: list[Annotated[Float, Field(ge=0, le=180)]] = [5, 10, 15, 20, 30]
    brightness: list[Annotated[Float, Field(gt=0, le=4)]] = [0.5, 0.75, 1.25, 1.5]
    contrast: list[Annotated[Float, Field(gt=0, le=4)]] = [0.5, 0.75, 1.25, 1.5]
    shift: list[Annotated[Int, Field(ge=0)]] = [1, 2, 3, 4, 6, 8]
    fill: Fill = "reflection"
    batch_size: Int = Field(1024, ge=1)

    @model_validator(mode="after")
    def _strengths(self) -> RobustnessParams:
        for kind in UNITS:
            values = getattr(self, kind)
            if not values:
                raise invalid(kind, values, "is empty; list at least one strength")
            if IDENTITY[kind] in values:
                raise invalid(kind, values, f"lists the identity ({IDENTITY[kind]:g}), which is "
                              "always measured; list the other strengths")
            if len(set(values)) < len(values):
                raise invalid(kind, values, "repeats a strength")
        return self

    def strengths(self, kind: str) -> list[float]:
        """The listed strengths and the identity, in increasing order."""
        return sorted([IDENTITY[kind], *getattr(self, kind)])

    def changes(self, kind: str) -> list[float]:
        """The listed strengths (all but the identity), in increasing order."""
        return sorted(getattr(self, kind))


def key(kind: str, strength: float) -> str:
    """``rotation@15``: the name of one transformed copy's predictions."""
    return f"{kind}@{strength:g}"


def measured_images(n_images: int, wanted: int, seed: int) -> np.ndarray:
    """Sorted indices of the test images measured: a seeded random ``wanted`` of them (all
    when ``wanted`` is 0 or at least ``n_images``)."""
    if wanted == 0 or wanted >= n_images:
        return np.arange(n_images)
    return np.sort(np.random.default_rng(seed).choice(n_images, wanted, replace=False))


def predictions_under_transforms(images: np.ndarray, predict: Predict,
                                 params: RobustnessParams) -> dict[str, np.ndarray]:
    """Predicted classes of every transformed copy: ``{"rotation@0": ..., "shift@2": ...,
    "shift_second@2": ...}`` (int64 arrays, one entry per image)."""
    out: dict[str, np.ndarray] = {}
    identity = np.asarray(predict(images), dtype=np.int64)
    first = shift_directions(len(images), params.seed)
    second = shift_directions(len(images), params.seed, unlike=first)
    for kind in UNITS:
        for strength in params.strengths(kind):
            if strength == IDENTITY[kind]:
                out[key(kind, strength)] = identity
                continue
            moved = transformed(images, kind, strength, fill=params.fill, seed=params.seed,
                                directions=first if kind == "shift" else None)
            out[key(kind, strength)] = np.asarray(predict(moved), dtype=np.int64)
    for strength in params.changes("shift"):
        moved = transformed(images, "shift", strength, fill=params.fill, directions=second)
        out[key(SECOND_SHIFT, strength)] = np.asarray(predict(moved), dtype=np.int64)
    return out


def consistency(a: np.ndarray, b: np.ndarray) -> float:
    """The fraction of images with the same predicted class in ``a`` and ``b``."""
    return float(np.mean(np.asarray(a) == np.asarray(b)))


def robustness_table(predictions: dict[str, np.ndarray], labels: np.ndarray,
                     params: RobustnessParams) -> dict[str, dict]:
    """Per transform: its unit, strengths, and per strength the accuracy and the consistency
    with the untransformed images (for ``shift`` also between two shifts)."""
    identity = predictions[key("rotation", IDENTITY["rotation"])]
    table: dict[str, dict] = {}
    for kind in UNITS:
        strengths = params.strengths(kind)
        row = {"unit": UNITS[kind], "strengths": strengths,
               "accuracy": [consistency(predictions[key(kind, s)], labels) for s in strengths],
               "consistency": [consistency(predictions[key(kind, s)], identity) for s in strengths]}
        if kind == "shift":
            row["two_shift_consistency"] = [
                1.0 if s == IDENTITY[kind] else
                consistency(predictions[key(kind, s)], predictions[key(SECOND_SHIFT, s)])
                for s in strengths]
        table[kind] = row
    return table
