"""A deterministic synthetic dataset: ten classes of oriented, tinted gratings.

Each class is a sinusoidal grating at its own orientation (18 degrees apart) with a class
tint; frequency, phase, contrast, colour and noise vary per image. Both a CNN and HOG
features learn it well above chance in seconds, which makes it the dataset of the tests and
of the offline ``smoke`` environment.
"""

from __future__ import annotations

import numpy as np

from simple_cnn.data.raw import RawImages

CLASS_NAMES = [f"grating_{angle:03d}" for angle in range(0, 180, 18)]


def make_images(n: int, image_size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    labels = np.arange(n, dtype=np.int64) % len(CLASS_NAMES)
    rng.shuffle(labels)
    theta = labels * (np.pi / len(CLASS_NAMES)) + rng.normal(0.0, np.deg2rad(3.0), n)
    frequency = rng.uniform(0.12, 0.3, n)  # cycles per pixel
    phase = rng.uniform(0.0, 2 * np.pi, n)
    contrast = rng.uniform(0.5, 1.0, n)
    yy, xx = np.mgrid[0:image_size, 0:image_size].astype(np.float64)
    along = (
        np.cos(theta)[:, None, None] * xx[None] + np.sin(theta)[:, None, None] * yy[None]
    )
    wave = np.sin(2 * np.pi * frequency[:, None, None] * along + phase[:, None, None])
    hues = np.linspace(0.0, 1.0, len(CLASS_NAMES), endpoint=False)
    tint = 0.5 + 0.25 * np.stack(
        [np.cos(2 * np.pi * (hues + shift)) for shift in (0.0, 1 / 3, 2 / 3)], axis=-1
    )
    colour = np.clip(tint[labels] + rng.normal(0.0, 0.15, (n, 3)), 0.1, 0.9)
    image = colour[:, None, None, :] * (1.0 + 0.6 * contrast[:, None, None, None] * wave[..., None])
    image += rng.normal(0.0, 0.08, image.shape)
    return (np.clip(image, 0.0, 1.0) * 255).round().astype(np.uint8), labels


def make_synthetic(
    n_train: int = 3000, n_test: int = 1000, image_size: int = 32, seed: int = 0
) -> RawImages:
    """The synthetic dataset; the same arguments always give the same bytes."""
    rng = np.random.default_rng(seed)
    train_images, train_labels = make_images(n_train, image_size, rng)
    test_images, test_labels = make_images(n_test, image_size, rng)
    return RawImages(train_images, train_labels, test_images, test_labels, list(CLASS_NAMES))
