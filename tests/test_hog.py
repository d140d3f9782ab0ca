"""Our batched HOG equals skimage.feature.hog image by image, for every option combination."""

import itertools

import numpy as np
import pytest
from skimage.feature import hog

from simple_cnn.data.synthetic import make_synthetic
from simple_cnn.errors import ConfigError
from simple_cnn.features.hog import BLOCK_NORMS, hog_features

RNG = np.random.default_rng(0)


def structured(n, shape, colour):
    """Edges, gratings and flat areas: many exact-angle and zero gradients."""
    images = make_synthetic(n_train=n, n_test=1, image_size=max(shape), seed=1).train_images
    images = images[:, : shape[0], : shape[1]]
    images[:, : shape[0] // 3, : shape[1] // 2] = 200  # a flat block with straight edges
    images[1::3, :, ::4] = 0  # vertical stripes
    return images if colour else images[..., 0]


def reference(images, **options):
    return np.stack([hog(image, **options) for image in images])


IMAGE_CASES = {
    "random uint8 32x32": lambda colour: RNG.integers(0, 256, (6, 32, 32, 3) if colour else (6, 32, 32), dtype=np.uint8),
    "structured uint8 32x32": lambda colour: structured(6, (32, 32), colour),
    "random uint8 37x29": lambda colour: RNG.integers(0, 256, (4, 37, 29, 3) if colour else (4, 37, 29), dtype=np.uint8),
    "random float64 24x40": lambda colour: RNG.random((3, 24, 40, 3) if colour else (3, 24, 40)),
    "random float32 32x32": lambda colour: RNG.random((3, 32, 32, 3) if colour else (3, 32, 32)).astype(np.float32),
}
OPTIONS = list(itertools.product([9, 7, 12], [(8, 8), (4, 6)], [(2, 2), (1, 3), (3, 3)], BLOCK_NORMS))


@pytest.mark.parametrize("colour", [False, True], ids=["gray", "colour"])
@pytest.mark.parametrize("case", list(IMAGE_CASES))
def test_equals_skimage_for_every_option_combination(case, colour):
    images = IMAGE_CASES[case](colour)
    for orientations, cell, block, norm in OPTIONS:
        if block[0] > images.shape[1] // cell[0] or block[1] > images.shape[2] // cell[1]:
            continue
        options = dict(orientations=orientations, pixels_per_cell=cell, cells_per_block=block,
                       block_norm=norm, channel_axis=-1 if colour else None)
        ours = hog_features(images, **options, chunk_size=2)
        theirs = reference(images, **options)
        assert ours.dtype == np.float32 and ours.shape == theirs.shape
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6, err_msg=str(options))


@pytest.mark.parametrize("orientations", [9, 7, 12])
def test_every_integer_gradient_lands_in_skimages_bin(orientations):
    """The lookup table against scikit-image's own histogram routine, for all 511 x 511 integer
    gradient pairs (1x1 cells: each pixel's histogram is its magnitude in its bin)."""
    from skimage.feature import _hoghistogram

    from simple_cnn.features.hog import _lookup_table

    values = np.arange(-255, 256, dtype=np.float64)
    g_row, g_col = np.meshgrid(values, values, indexing="ij")
    theirs = np.zeros((511, 511, orientations))
    _hoghistogram.hog_histograms(g_col, g_row, 1, 1, 511, 511, 511, 511, orientations, theirs)
    bins, magnitude = _lookup_table(orientations)
    ours = np.zeros((511 * 511, orientations + 1))
    ours[np.arange(511 * 511), bins] = magnitude  # the extra column: no bin takes it
    ours = ours[:, :orientations].reshape(511, 511, orientations)
    np.testing.assert_array_equal(ours > 0, theirs > 0)  # the same bin for every pair
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)  # skimage's magnitudes are float32
    assert (theirs.sum(-1) > 0).sum() == 511 * 511 - 1  # all but (0, 0) land in a bin


def test_chunking_and_threads_do_not_change_the_result():
    images = RNG.integers(0, 256, (50, 32, 32, 3), dtype=np.uint8)
    a = hog_features(images, channel_axis=-1, chunk_size=7, n_jobs=2)
    b = hog_features(images, channel_axis=-1, chunk_size=1000, n_jobs=1)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("options, message", [
    ({"pixels_per_cell": (40, 8)}, r"pixels_per_cell=\[40, 8\] is larger than the 32x32 images"),
    ({"cells_per_block": (5, 5)}, r"cells_per_block=\[5, 5\] is larger than the grid of 4x4 cells"),
    ({"block_norm": "L3"}, "block_norm='L3' .* L1, L1-sqrt, L2, L2-Hys"),
    ({"orientations": 0}, "orientations must be a whole number >= 1"),
])
def test_bad_options_are_named(options, message):
    with pytest.raises(ConfigError, match=message):
        hog_features(np.zeros((1, 32, 32), dtype=np.uint8), **options)


def test_nan_pixels_poison_their_cells_as_in_skimage():
    image = RNG.random((32, 32))
    image[5, 5] = np.nan
    ours = hog_features(image[None], pixels_per_cell=(8, 8), cells_per_block=(1, 1))[0]
    theirs = hog(image, pixels_per_cell=(8, 8), cells_per_block=(1, 1))
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    np.testing.assert_allclose(ours[~np.isnan(ours)], theirs[~np.isnan(theirs)], atol=1e-6)


def test_a_cell_or_block_as_large_as_the_image_is_allowed():
    image = np.random.default_rng(1).integers(0, 256, (32, 24), dtype=np.uint8)
    options = dict(orientations=9, pixels_per_cell=(32, 24), cells_per_block=(1, 1), block_norm="L2")
    np.testing.assert_allclose(hog_features(image[None], **options)[0], hog(image, **options), atol=1e-6)
    options = dict(orientations=9, pixels_per_cell=(8, 8), cells_per_block=(4, 3), block_norm="L2")
    np.testing.assert_allclose(hog_features(image[None], **options)[0], hog(image, **options), atol=1e-6)


@pytest.mark.parametrize("options, message", [
    ({"pixels_per_cell": (8, 40)}, r"pixels_per_cell=\[8, 40\] is larger than the 32x24 images; allowed: 1 to 32 \(rows\) and 1 to 24 \(columns\)"),
    ({"pixels_per_cell": (40, 8)}, r"pixels_per_cell=\[40, 8\] is larger than the 32x24"),
    ({"cells_per_block": (5, 1)}, r"cells_per_block=\[5, 1\] is larger than the grid of 4x3 cells \(32x24 images, \[8, 8\] pixels per cell\); allowed: 1 to 4 \(rows\) and 1 to 3 \(columns\)"),
    ({"cells_per_block": (1, 4)}, r"cells_per_block=\[1, 4\] is larger than the grid of 4x3"),
    ({"pixels_per_cell": (8, 8, 8)}, r"pixels_per_cell must be one or two positive ints, got \(8, 8, 8\)"),
    ({"cells_per_block": (0, 2)}, r"cells_per_block must be one or two positive ints"),
    ({"pixels_per_cell": "big"}, r"pixels_per_cell must be an int or a pair of ints, got 'big'"),
    ({"orientations": 9.0}, r"orientations must be a whole number >= 1, got 9.0"),
    ({"orientations": True}, r"orientations must be a whole number"),
])
def test_options_are_checked_against_non_square_images(options, message):
    full = {"orientations": 9, "pixels_per_cell": (8, 8), "cells_per_block": (2, 2),
            "block_norm": "L2", **options}
    with pytest.raises(ConfigError, match=message):
        hog_features(np.zeros((1, 32, 24), dtype=np.uint8), **full)


def test_one_int_means_a_square_cell_and_block_as_in_skimage():
    image = np.random.default_rng(2).integers(0, 256, (32, 24), dtype=np.uint8)
    ours = hog_features(image[None], 9, pixels_per_cell=8, cells_per_block=2, block_norm="L2")[0]
    np.testing.assert_allclose(ours, hog(image, 9, (8, 8), (2, 2), "L2"), atol=1e-6)


def test_nan_cells_of_non_square_float_images_match_skimage():
    image = np.random.default_rng(3).random((32, 24))
    image[5, 20] = np.nan
    options = dict(orientations=9, pixels_per_cell=(8, 8), cells_per_block=(1, 1), block_norm="L1")
    np.testing.assert_array_equal(np.isnan(hog_features(image[None], **options)[0]),
                                  np.isnan(hog(image, **options)))


def test_non_square_cells_match_skimage():
    image = np.random.default_rng(4).integers(0, 256, (32, 24), dtype=np.uint8)
    options = dict(orientations=9, pixels_per_cell=(8, 4), cells_per_block=(2, 3), block_norm="L2-Hys")
    np.testing.assert_allclose(hog_features(image[None], **options)[0], hog(image, **options), atol=1e-6)


def test_channel_axis_counts_in_the_image_and_out_is_checked():
    images = np.random.default_rng(5).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    options = dict(orientations=9, pixels_per_cell=(8, 8), cells_per_block=(1, 1), block_norm="L1")
    last = hog_features(images, **options, channel_axis=-1)
    np.testing.assert_array_equal(hog_features(images, **options, channel_axis=2), last)
    first = np.moveaxis(images, -1, 1)  # (N, C, H, W): channel_axis=0 of each image
    np.testing.assert_array_equal(hog_features(first, **options, channel_axis=0), last)
    out = np.empty((2, last.shape[1]), dtype=np.float32)
    assert hog_features(images, **options, channel_axis=-1, out=out) is out
    with pytest.raises(ValueError, match=r"out has shape \(2, 3\), the features need \(2, 36\)"):
        hog_features(images, **options, channel_axis=-1, out=np.empty((2, 3), dtype=np.float32))
