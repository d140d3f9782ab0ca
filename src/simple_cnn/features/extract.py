"""Hand-made features of whole image arrays: HOG (one or more cell sizes), raw pixels, colour histograms."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BeforeValidator, Field

from simple_cnn.data.raw import to_grayscale
from simple_cnn.errors import DataError
from simple_cnn.features.hog import check_hog_options, hog_dimension, hog_features
from simple_cnn.params import Int, Model


def _pair(value: Any) -> Any:
    """``8`` -> ``(8, 8)``, as ``skimage.feature.hog`` reads one int."""
    return (value, value) if isinstance(value, int) and not isinstance(value, bool) else value


Pair = Annotated[tuple[Annotated[Int, Field(ge=1)], Annotated[Int, Field(ge=1)]],
                 BeforeValidator(_pair)]


class HogParams(Model):
    """``hog_svm.hog``: the options of ``skimage.feature.hog``, plus extra cell sizes."""

    orientations: Int = Field(9, ge=1, le=180)
    pixels_per_cell: Pair = (4, 4)
    extra_pixels_per_cell: list[Pair] = [(8, 8)]
    cells_per_block: Pair = (2, 2)
    block_norm: Literal["L1", "L1-sqrt", "L2", "L2-Hys"] = "L1-sqrt"
    colour: bool = True


@dataclass(frozen=True)
class FeatureConfig:
    """What ``extract_features`` computes; :meth:`for_images` checks it against the image size."""

    kind: Literal["hog", "pixels", "hog+color"] = "hog+color"
    hog: HogParams = HogParams()
    color_histogram_bins: int = 8

    @property
    def cell_sizes(self) -> tuple[tuple[int, int], ...]:
        return (self.hog.pixels_per_cell, *self.hog.extra_pixels_per_cell)

    def check(self, image_shape: tuple[int, int]) -> FeatureConfig:
        """Raise ``ConfigError`` (naming the HOG option) if a cell or block does not fit."""
        if self.kind != "pixels":
            for cell in self.cell_sizes:
                check_hog_options(image_shape, self.hog.orientations, cell,
                                  self.hog.cells_per_block, self.hog.block_norm)
        return self


    def describe(self) -> dict[str, Any]:
        """These settings as JSON-ready values (a model's report keeps them)."""
        return {"kind": self.kind, "hog": self.hog.model_dump(mode="json"),
                "color_histogram_bins": self.color_histogram_bins}

    @classmethod
    def from_description(cls, described: dict[str, Any]) -> FeatureConfig:
        """The settings :meth:`describe` wrote."""
        return cls(described["kind"], HogParams.model_validate(described["hog"]),
                   described["color_histogram_bins"])


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
    hog = config.hog
    source = images if hog.colour else to_grayscale(images)[..., 0]
    widths = [hog_dimension(source.shape[1:3], hog.orientations, cell, hog.cells_per_block)
              for cell in config.cell_sizes]
    if config.kind == "hog+color":
        widths.append(images.shape[-1] * config.color_histogram_bins)
    features = np.empty((len(images), sum(widths)), dtype=np.float32)  # filled part by part
    edges = np.cumsum([0, *widths])
    for cell, start, stop in zip(config.cell_sizes, edges[:-1], edges[1:]):
        hog_features(source, hog.orientations, cell, hog.cells_per_block, hog.block_norm,
                     channel_axis=-1 if hog.colour else None, out=features[:, start:stop])
    if config.kind == "hog+color":
        features[:, edges[-2]:] = color_histograms(images, config.color_histogram_bins)
    if not np.isfinite(features).all():
        raise DataError("Features hold NaN or inf values; check the input images.")
    return features
