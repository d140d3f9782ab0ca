"""Batched HOG that equals ``skimage.feature.hog`` image by image, without a loop per image.

The computation follows scikit-image's exactly: central-difference gradients (zero on the
border), for colour images the channel with the largest gradient magnitude per pixel,
orientation ``rad2deg(arctan2(g_row, g_col)) % 180`` binned into ``[i, i+1) x 180/n`` (bin
edges computed in float32, as scikit-image's Cython does), magnitude-weighted cell histograms
averaged over the cell, then per-block normalisation (L1, L1-sqrt, L2, L2-Hys).

For uint8 images the gradients are integers in [-255, 255], so the orientation bin and the
magnitude of every possible (g_row, g_col) pair are computed once, with scikit-image's own
formulas, into a lookup table; each pixel then costs two table reads. Cell histograms are one
``bincount`` per chunk of images. Float images take the direct (slower) path.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np

from simple_cnn.errors import ConfigError

BLOCK_NORMS = ("L1", "L1-sqrt", "L2", "L2-Hys")
_EPS = 1e-5
_MAX_GRADIENT = 255


def _pair(value, name: str) -> tuple[int, int]:
    if isinstance(value, int | np.integer):
        value = (value, value)
    try:
        pair = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be an int or a pair of ints, got {value!r}.") from None
    if len(pair) != 2 or min(pair) < 1:
        raise ConfigError(f"{name} must be one or two positive ints, got {value!r}.")
    return pair[0], pair[1]


def check_hog_options(
    image_shape: tuple[int, int],
    orientations: int,
    pixels_per_cell,
    cells_per_block,
    block_norm: str,
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """Validate options against the image size; return (cell, block, cells grid)."""
    if isinstance(orientations, bool) or not isinstance(orientations, int | np.integer) or orientations < 1:
        raise ConfigError(f"orientations must be a whole number >= 1, got {orientations!r}.")
    if block_norm not in BLOCK_NORMS:
        raise ConfigError(
            f"block_norm={block_norm!r} is not allowed; choose one of: {', '.join(BLOCK_NORMS)}."
        )
    cell = _pair(pixels_per_cell, "pixels_per_cell")
    block = _pair(cells_per_block, "cells_per_block")
    height, width = image_shape
    if cell[0] > height or cell[1] > width:
        raise ConfigError(
            f"pixels_per_cell={list(cell)} is larger than the {height}x{width} images; "
            f"allowed: 1 to {height} (rows) and 1 to {width} (columns)."
        )
    cells = (height // cell[0], width // cell[1])
    if block[0] > cells[0] or block[1] > cells[1]:
        raise ConfigError(
            f"cells_per_block={list(block)} is larger than the grid of "
            f"{cells[0]}x{cells[1]} cells ({height}x{width} images, {list(cell)} pixels per "
            f"cell); allowed: 1 to {cells[0]} (rows) and 1 to {cells[1]} (columns)."
        )
    return cell, block, cells


def _bin_edges(orientations: int) -> np.ndarray:
    """Bin edges as scikit-image's Cython computes them: float32 step times the bin index."""
    step = np.float32(180.0 / orientations)
    return np.array([np.float32(step * np.float32(i)) for i in range(orientations + 1)],
                    dtype=np.float32).astype(np.float64)


def _orientation_bins(g_row: np.ndarray, g_col: np.ndarray, orientations: int) -> np.ndarray:
    """Bin index per pixel; ``orientations`` (one past the last) where no bin takes it."""
    orientation = np.rad2deg(np.arctan2(g_row, g_col)) % 180
    edges = _bin_edges(orientations)
    bins = np.searchsorted(edges, orientation, side="right") - 1
    bins[orientation >= edges[-1]] = orientations  # above the last float32 edge: no bin
    return bins


_SIDE = 2 * _MAX_GRADIENT + 1
_ZERO_GRADIENT = _MAX_GRADIENT * _SIDE + _MAX_GRADIENT


@lru_cache(maxsize=8)
def _lookup_table(orientations: int) -> tuple[np.ndarray, np.ndarray]:
    """(bin, magnitude) for every integer gradient pair; index (g_row + 255) * 511 + g_col + 255."""
    values = np.arange(-_MAX_GRADIENT, _MAX_GRADIENT + 1, dtype=np.float64)
    g_row, g_col = np.meshgrid(values, values, indexing="ij")
    magnitude = np.hypot(g_col, g_row).ravel()
    bins = _orientation_bins(g_row, g_col, orientations).ravel().astype(np.int16)
    return bins, magnitude


@lru_cache(maxsize=1)
def _magnitude_rank() -> np.ndarray:
    """Dense rank of scikit-image's float64 magnitude per gradient pair: comparing ranks picks
    the dominant channel exactly as its argmax over ``np.hypot`` does (ties included)."""
    values = np.arange(-_MAX_GRADIENT, _MAX_GRADIENT + 1, dtype=np.float64)
    g_row, g_col = np.meshgrid(values, values, indexing="ij")
    rank = np.unique(np.hypot(g_row, g_col).ravel(), return_inverse=True)[1]
    return rank.astype(np.uint16 if rank.max() < 2**16 else np.uint32)


def _gradient_index(channel: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W) -> int32 lookup-table index of each pixel's (g_row, g_col)."""
    x = channel.astype(np.int32)
    index = np.full(x.shape, _ZERO_GRADIENT, dtype=np.int32)
    index[:, 1:-1, :] += (x[:, 2:, :] - x[:, :-2, :]) * _SIDE
    index[:, :, 1:-1] += x[:, :, 2:] - x[:, :, :-2]
    return index


def _gradients(images: np.ndarray, dtype) -> tuple[np.ndarray, np.ndarray]:
    """Central differences along rows and columns, zero on the border; images (N, H, W[, C])."""
    g_row = np.zeros(images.shape, dtype=dtype)
    g_col = np.zeros(images.shape, dtype=dtype)
    np.subtract(images[:, 2:, :], images[:, :-2, :], out=g_row[:, 1:-1, :], dtype=dtype)
    np.subtract(images[:, :, 2:], images[:, :, :-2], out=g_col[:, :, 1:-1], dtype=dtype)
    return g_row, g_col


def _dominant_channel(g_row: np.ndarray, g_col: np.ndarray, magnitude: np.ndarray):
    """Per pixel, the channel with the largest magnitude (the first one on ties)."""
    channel = magnitude.argmax(axis=-1)[..., None]
    return (np.take_along_axis(g_row, channel, -1)[..., 0],
            np.take_along_axis(g_col, channel, -1)[..., 0])


def _bins_and_magnitudes(images: np.ndarray, orientations: int, colour: bool):
    """(bin index, magnitude) per pixel, (N, H, W)."""
    if images.dtype == np.uint8:
        bins_lut, magnitude_lut = _lookup_table(orientations)
        if not colour:
            index = _gradient_index(images)
        else:  # keep, per pixel, the index of the channel with the largest magnitude
            rank = _magnitude_rank()
            planes = np.ascontiguousarray(np.moveaxis(images, -1, 0))
            index = _gradient_index(planes[0])
            best = np.take(rank, index)
            for plane in planes[1:]:
                other = _gradient_index(plane)
                other_rank = np.take(rank, other)
                better = other_rank > best  # strict: the first channel wins ties, as argmax
                np.copyto(index, other, where=better)
                np.maximum(best, other_rank, out=best)
        return np.take(bins_lut, index), np.take(magnitude_lut, index)
    float_dtype = np.float32 if images.dtype in (np.float16, np.float32) else np.float64
    g_row, g_col = _gradients(images.astype(float_dtype, copy=False), float_dtype)
    if colour:
        g_row, g_col = _dominant_channel(g_row, g_col, np.hypot(g_row, g_col))
    g_row, g_col = g_row.astype(np.float64), g_col.astype(np.float64)
    return _orientation_bins(g_row, g_col, orientations), np.hypot(g_col, g_row)


def _cell_histograms(bins, magnitude, orientations, cell, cells) -> np.ndarray:
    """(N, cells_row, cells_col, orientations): mean magnitude per cell and orientation bin."""
    n = len(bins)
    rows, cols = cells[0] * cell[0], cells[1] * cell[1]
    bins, magnitude = bins[:, :rows, :cols], magnitude[:, :rows, :cols]
    cell_row = np.arange(rows) // cell[0]
    cell_col = np.arange(cols) // cell[1]
    cell_id = (cell_row[:, None] * cells[1] + cell_col[None, :]) * (orientations + 1)
    slots = cells[0] * cells[1] * (orientations + 1)
    index = (np.arange(n)[:, None, None] * slots + cell_id[None]) + bins
    sums = np.bincount(index.ravel(), weights=magnitude.ravel(), minlength=n * slots)
    sums = sums.reshape(n, cells[0], cells[1], orientations + 1)[..., :orientations]
    if magnitude.dtype.kind == "f" and np.isnan(magnitude).any():
        # scikit-image adds a NaN magnitude to every bin of its cell (NaN compares false)
        nan_cells = np.isnan(magnitude).reshape(n, cells[0], cell[0], cells[1], cell[1]).any(axis=(2, 4))
        sums[nan_cells] = np.nan
    # scikit-image divides in float32 (its accumulator's type)
    return (sums / (cell[0] * cell[1])).astype(np.float32).astype(np.float64)


def _normalise_blocks(histograms: np.ndarray, block: tuple[int, int], method: str) -> np.ndarray:
    """(N, cells_row, cells_col, o) -> (N, D): blocks laid out (blocks_row, blocks_col, b_row,
    b_col, o) and normalised one by one, as scikit-image does."""
    n = len(histograms)
    windows = np.lib.stride_tricks.sliding_window_view(histograms, block, axis=(1, 2))
    # (N, blocks_row, blocks_col, o, b_row, b_col) -> contiguous (N, blocks, b_row * b_col * o)
    blocks = np.ascontiguousarray(np.moveaxis(windows, 3, -1))
    blocks = blocks.reshape(n, blocks.shape[1] * blocks.shape[2], -1)
    if method in ("L1", "L1-sqrt"):
        out = blocks / (np.abs(blocks).sum(axis=-1, keepdims=True) + _EPS)
        if method == "L1-sqrt":
            np.sqrt(out, out=out)
    else:
        out = blocks / np.sqrt(np.einsum("nbd,nbd->nb", blocks, blocks)[..., None] + _EPS**2)
        if method == "L2-Hys":
            np.minimum(out, 0.2, out=out)
            out /= np.sqrt(np.einsum("nbd,nbd->nb", out, out)[..., None] + _EPS**2)
    return out.reshape(n, -1)


def hog_dimension(image_shape: tuple[int, int], orientations: int, pixels_per_cell,
                  cells_per_block) -> int:
    """Length of one image's HOG descriptor."""
    cell, block = _pair(pixels_per_cell, "pixels_per_cell"), _pair(cells_per_block, "cells_per_block")
    cells = (image_shape[0] // cell[0], image_shape[1] // cell[1])
    return (cells[0] - block[0] + 1) * (cells[1] - block[1] + 1) * block[0] * block[1] * orientations


def _chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def hog_features(
    images: np.ndarray,
    orientations: int = 9,
    pixels_per_cell=(8, 8),
    cells_per_block=(3, 3),
    block_norm: str = "L2-Hys",
    channel_axis: int | None = None,
    chunk_size: int = 256,
    n_jobs: int | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """HOG descriptors of a batch of images, as float32 (N, D).

    ``images`` is (N, H, W) for grayscale or, with ``channel_axis=-1``, (N, H, W, C) with the
    per-pixel dominant channel (scikit-image's semantics). Row ``i`` equals
    ``skimage.feature.hog(images[i], ...)`` with the same options (within float32 rounding).
    Work is chunked (``chunk_size`` images at a time) to bound memory, and chunks run on
    ``n_jobs`` threads (default: all cores). ``out``, if given, receives the features.
    """
    images = np.asarray(images)
    colour = channel_axis is not None
    if channel_axis is not None:
        images = np.moveaxis(images, channel_axis if channel_axis < 0 else channel_axis + 1, -1)
    if images.ndim != (4 if colour else 3):
        raise ConfigError(
            f"hog_features expects (N, H, W) images{' with channels last' if colour else ''}, "
            f"got shape {images.shape}; pass channel_axis=-1 for colour images."
        )
    cell, block, cells = check_hog_options(images.shape[1:3], orientations, pixels_per_cell,
                                           cells_per_block, block_norm)
    shape = (len(images), hog_dimension(images.shape[1:3], orientations, cell, block))
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    elif out.shape != shape:
        raise ValueError(f"out has shape {out.shape}, the features need {shape}.")

    def work(part: slice) -> None:
        bins, magnitude = _bins_and_magnitudes(images[part], orientations, colour)
        histograms = _cell_histograms(bins, magnitude, orientations, cell, cells)
        out[part] = _normalise_blocks(histograms, block, block_norm)

    parts = list(_chunks(len(images), chunk_size))
    workers = n_jobs or os.cpu_count() or 1
    if workers == 1 or len(parts) == 1:
        for part in parts:
            work(part)
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(work, parts))
    return out
