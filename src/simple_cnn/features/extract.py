"""Hand-made features of whole image arrays: HOG (one or more cell sizes), raw pixels, colour histograms."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from simple_cnn import params as P
from simple_cnn.data.raw import to_grayscale
from simple_cnn.errors import ConfigError
from simple_cnn.features.hog import (
    BLOCK_NORMS,
    check_hog_options,
    hog_dimension,
    hog_features,
)

FEATURES = ("hog", "pixels", "hog+color")
PREFIX = "hog_svm"


@dataclass(frozen=True)
class FeatureConfig:
    kind: str = "hog+color"
    orientations: int = 9
    pixels_per_cell: tuple[tuple[int, int], ...] = ((8, 8),)
    cells_per_block: tuple[int, int] = (2, 2)
    block_norm: str = "L2-Hys"
    colour: bool = False
    color_histogram_bins: int = 8

    @classmethod
    def from_params(cls, params: Mapping[str, Any], image_shape: tuple[int, int]) -> FeatureConfig:
        """From ``hog_svm`` params; checks every option against the image size."""
        kind = P.choice(params, "features", FEATURES, PREFIX)
        hog = P.require(params, "hog", PREFIX)
        prefix = f"{PREFIX}.hog"
        orientations = P.number(hog, "orientations", prefix, integer=True, low=1, high=180)
        P.choice(hog, "block_norm", BLOCK_NORMS, prefix)
        colour = P.flag(hog, "colour", prefix)
        cells = [P.require(hog, "pixels_per_cell", prefix), *hog.get("extra_pixels_per_cell", [])]
        cell_sizes = []
        for cell in cells:
            size, block, _ = check_hog_options(image_shape, orientations, cell,
                                               P.require(hog, "cells_per_block", prefix),
                                               hog["block_norm"])
            cell_sizes.append(size)
        bins = 0
        if kind == "hog+color":
            bins = P.number(params, "color_histogram_bins", PREFIX, integer=True, low=1, high=256)
        return cls(kind, orientations, tuple(cell_sizes), block, hog["block_norm"], colour, bins)


def color_histograms(images: np.ndarray, bins: int, chunk: int = 4096) -> np.ndarray:
    """Per-channel intensity histograms, as fractions of the pixels: float32 (N, C x bins)."""
    n, channels = len(images), images.shape[-1]
    out = np.empty((n, channels * bins), dtype=np.float32)
    offsets = (np.arange(chunk)[:, None] * channels + np.arange(channels)[None, :]) * bins
    for start in range(0, n, chunk):
        block = images[start : start + chunk]
        m = len(block)
        block = block.reshape(m, -1, channels)
        quantised = (block.astype(np.int32) * bins) >> 8  # 0 .. bins-1
        index = (quantised + offsets[:m, None, :]).ravel()
        counts = np.bincount(index, minlength=m * channels * bins)
        out[start : start + m] = counts.reshape(m, channels * bins) / quantised.shape[1]
    return out


def extract_features(images: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """float32 (N, D) features of uint8 (N, H, W, C) images."""
    if config.kind == "pixels":
        return images.reshape(len(images), -1).astype(np.float32) / 255.0
    source = images if config.colour else to_grayscale(images)[..., 0]
    widths = [hog_dimension(source.shape[1:3], config.orientations, cell, config.cells_per_block)
              for cell in config.pixels_per_cell]
    if config.kind == "hog+color":
        widths.append(images.shape[-1] * config.color_histogram_bins)
    features = np.empty((len(images), sum(widths)), dtype=np.float32)  # filled part by part
    edges = np.cumsum([0, *widths])
    for cell, start, stop in zip(config.pixels_per_cell, edges[:-1], edges[1:]):
        hog_features(source, config.orientations, cell, config.cells_per_block, config.block_norm,
                     channel_axis=-1 if config.colour else None, out=features[:, start:stop])
    if config.kind == "hog+color":
        features[:, edges[-2]:] = color_histograms(images, config.color_histogram_bins)
    if not np.isfinite(features).all():
        raise ConfigError("Features hold NaN or inf values; check the input images.")
    return features
