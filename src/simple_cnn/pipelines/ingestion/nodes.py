"""Nodes of the ingestion pipeline."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from simple_cnn import params as P
from simple_cnn.data.cifar10 import Cifar10Archive
from simple_cnn.data.image_folder import ImageFolder
from simple_cnn.data.raw import RawImages, channel_stats, stratified_split
from simple_cnn.data.synthetic import make_synthetic
from simple_cnn.plots import image_grid

logger = logging.getLogger(__name__)

SOURCES = ("cifar10", "image_folder", "synthetic")
Split = dict[str, np.ndarray]


def load_raw_images(
    cifar10_archive: Cifar10Archive, image_folder: ImageFolder, params: dict[str, Any]
) -> RawImages:
    """Read the images of the source that ``ingestion.source`` names (and only that one)."""
    source = P.choice(params, "source", SOURCES, "ingestion")
    P.number(params, "val_size", "ingestion", integer=True, low=0)
    if source == "cifar10":
        raw = cifar10_archive.read()
    elif source == "image_folder":
        size = P.number(params, "image_size", "ingestion", integer=True, low=8, high=512)
        raw = image_folder.read(size)
    else:
        synthetic = P.require(params, "synthetic", "ingestion")
        raw = make_synthetic(
            n_train=P.number(synthetic, "n_train", "ingestion.synthetic", integer=True, low=20),
            n_test=P.number(synthetic, "n_test", "ingestion.synthetic", integer=True, low=10),
            image_size=P.number(params, "image_size", "ingestion", integer=True, low=8, high=512),
            seed=P.number(params, "seed", "ingestion", integer=True),
        )
    logger.info(
        "Source %s: %d train and %d test images of shape %s, %d classes.",
        source, len(raw.train_images), len(raw.test_images), raw.train_images.shape[1:],
        len(raw.class_names),
    )
    return raw.validate(f"ingestion.source={source}")


def split_train_val(
    raw_images: RawImages, params: dict[str, Any]
) -> tuple[Split, Split, Split, list[str]]:
    """Hold out a stratified, seeded ``val_size`` images of train as the validation split."""
    val_size = P.number(params, "val_size", "ingestion", integer=True, low=0)
    seed = P.number(params, "seed", "ingestion", integer=True)
    train_index, val_index = stratified_split(raw_images.train_labels, val_size, seed)

    def take(index: np.ndarray) -> Split:
        return {"images": raw_images.train_images[index], "labels": raw_images.train_labels[index]}

    test = {"images": raw_images.test_images, "labels": raw_images.test_labels}
    return take(train_index), take(val_index), test, list(raw_images.class_names)


def summarise_splits(
    train_split: Split, val_split: Split, test_split: Split, class_names: list[str]
) -> dict[str, Any]:
    """Counts per class and split, and pixel mean/std per channel (train only, 0-1 scale)."""
    mean, std = channel_stats(train_split["images"])
    splits = {"train": train_split, "val": val_split, "test": test_split}
    return {
        "class_names": class_names,
        "image_shape": list(train_split["images"].shape[1:]),
        "counts": {
            name: {
                "total": int(len(split["labels"])),
                "per_class": dict(
                    zip(class_names, np.bincount(split["labels"], minlength=len(class_names)).tolist())
                ),
            }
            for name, split in splits.items()
        },
        "train_pixel_mean": mean,
        "train_pixel_std": std,
    }


def plot_sample_images(train_split: Split, class_names: list[str]) -> Figure:
    """A grid of training images, one row per class."""
    return image_grid(train_split["images"], train_split["labels"], class_names)
