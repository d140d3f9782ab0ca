"""Nodes of the ingestion pipeline."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from simple_cnn.data.cifar10 import Cifar10Archive
from simple_cnn.data.image_folder import ImageFolder
from simple_cnn.data.raw import RawImages, channel_stats, splits_fingerprint, stratified_split
from simple_cnn.data.synthetic import make_synthetic
from simple_cnn.errors import ConfigError
from simple_cnn.parameters import IngestionParams

logger = logging.getLogger(__name__)

Split = dict[str, np.ndarray]


def load_raw_images(
    cifar10_archive: Cifar10Archive, image_folder: ImageFolder, params: IngestionParams
) -> RawImages:
    """Read the images of the source that ``ingestion.source`` names (and only that one)."""
    source = params.source
    if source == "cifar10":
        raw = cifar10_archive.read()
    elif source == "image_folder":
        raw = image_folder.read(params.image_size)
    else:
        raw = make_synthetic(n_train=params.synthetic.n_train, n_test=params.synthetic.n_test,
                             image_size=params.image_size, seed=params.seed)
    logger.info(
        "Source %s: %d train and %d test images of shape %s, %d classes.",
        source, len(raw.train_images), len(raw.test_images), raw.train_images.shape[1:],
        len(raw.class_names),
    )
    return raw.validate(f"ingestion.source={source}")


def split_train_val(
    raw_images: RawImages, params: IngestionParams
) -> tuple[Split, Split, Split, list[str]]:
    """Hold out a stratified, seeded ``val_size`` images of train as the validation split (or
    take the source's own validation split, an image folder's ``val/``)."""
    test = {"images": raw_images.test_images, "labels": raw_images.test_labels}
    train = {"images": raw_images.train_images, "labels": raw_images.train_labels}
    if raw_images.val_images is not None and raw_images.val_labels is not None:
        logger.info("Using the source's own validation split (%d images); ingestion.val_size "
                    "is not used.", len(raw_images.val_labels))
        val = {"images": raw_images.val_images, "labels": raw_images.val_labels}
        return train, val, test, list(raw_images.class_names)
    try:
        train_index, val_index = stratified_split(raw_images.train_labels, params.val_size,
                                                  params.seed, list(raw_images.class_names))
    except ConfigError as error:  # val_size against an image folder's size, known only now
        raise ConfigError(f"ingestion.{error}") from None

    def take(index: np.ndarray) -> Split:
        return {"images": raw_images.train_images[index], "labels": raw_images.train_labels[index]}

    return take(train_index), take(val_index), test, list(raw_images.class_names)


def summarise_splits(
    train_split: Split, val_split: Split, test_split: Split, class_names: list[str]
) -> dict[str, Any]:
    """Counts per class and split, pixel mean/std per channel (train only, 0-1 scale), and the
    splits' content fingerprint (what a result computed on them records)."""
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
        "fingerprint": splits_fingerprint(train_split, val_split, test_split),
    }


def plot_sample_images(train_split: Split, class_names: list[str]):
    """A grid of training images, one row per class."""
    from simple_cnn import plots

    return plots.image_grid(train_split["images"], train_split["labels"], class_names)
