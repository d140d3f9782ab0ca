"""The in-memory form every source produces, the train/val split, and dataset statistics."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simple_cnn.errors import ConfigError, DataError


@dataclass(frozen=True)
class RawImages:
    """Decoded images as uint8 (N, H, W, C) with int64 labels, before the train/val split.

    A source that has its own validation split (an image folder's ``val/``) sets ``val_*``."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: list[str]
    val_images: np.ndarray | None = None
    val_labels: np.ndarray | None = None

    @property
    def splits(self) -> tuple[str, ...]:
        return ("train", "test") if self.val_images is None else ("train", "val", "test")

    def validate(self, origin: str) -> RawImages:
        """Check shapes, dtypes and label range; ``origin`` names the source in errors."""
        n_classes = len(self.class_names)
        for split in self.splits:
            images = getattr(self, f"{split}_images")
            labels = getattr(self, f"{split}_labels")
            if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
                raise DataError(
                    f"{origin}: {split} images must be uint8 (N, H, W, 1 or 3), "
                    f"got {images.dtype} {images.shape}."
                )
            if len(images) != len(labels) or len(images) == 0:
                raise DataError(
                    f"{origin}: {split} has {len(images)} images and {len(labels)} labels."
                )
            if labels.min() < 0 or labels.max() >= n_classes:
                raise DataError(
                    f"{origin}: {split} labels must lie in 0-{n_classes - 1} "
                    f"({n_classes} classes), found {labels.min()}..{labels.max()}."
                )
        return self


def val_size_problem(val_size: int, n_train: int | None) -> str | None:
    """What is wrong with holding out ``val_size`` of ``n_train`` images (``None``: nothing;
    ``n_train=None``: the size is not known yet)."""
    if val_size < 1:
        return ("leaves no validation split, which picks the CNN's best epoch and the SVM's "
                "hyper-parameters: hold out some images, e.g. 10 % of the training set")
    if n_train is not None and val_size >= n_train:
        return (f"must be smaller than the training set ({n_train} images): choose a value "
                f"below {n_train}, e.g. {max(n_train // 10, 1)}")
    return None


def stratified_split(
    labels: np.ndarray, val_size: int, seed: int, class_names: list[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val) with ``val_size`` items held out in the class proportions of ``labels``."""
    from sklearn.model_selection import train_test_split

    n = len(labels)
    problem = val_size_problem(val_size, n)
    if problem:
        raise ConfigError(f"val_size={val_size} {problem}.")
    counts = np.bincount(labels, minlength=len(class_names or []))
    scarce = [int(c) for c in np.flatnonzero(counts < 2)]
    if scarce:
        names = ", ".join(f"{class_names[c] if class_names else c} ({counts[c]})" for c in scarce)
        raise DataError(
            f"Too few training images to split into train and validation for class(es): "
            f"{names}. Every class needs at least 2; add images of those classes or remove "
            "their folders."
        )
    indices = np.arange(n)
    n_classes = len(np.unique(labels))
    stratify = labels if n_classes <= val_size and n - val_size >= n_classes else None
    train, val = train_test_split(
        indices, test_size=val_size, random_state=seed, shuffle=True, stratify=stratify
    )
    return np.sort(train), np.sort(val)


def stratified_subset(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of a seeded, class-stratified ``fraction`` of ``labels`` (every class that
    has images keeps at least one)."""
    if fraction >= 1.0:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    keep = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        keep.append(rng.choice(members, max(1, round(fraction * len(members))), replace=False))
    return np.sort(np.concatenate(keep))


def subset_size(class_counts: list[int], fraction: float) -> int:
    """How many images :func:`stratified_subset` keeps of classes of these sizes."""
    if fraction >= 1.0:
        return sum(class_counts)
    return sum(max(1, round(fraction * n)) for n in class_counts if n)


def splits_fingerprint(*splits: dict[str, np.ndarray]) -> str:
    """A short content hash of the splits (images and labels): what a result was computed on."""
    import hashlib

    digest = hashlib.sha256()
    for split in splits:
        for key in sorted(split):
            array = np.ascontiguousarray(split[key])
            digest.update(f"{key}{array.dtype}{array.shape}".encode())
            digest.update(array.data.cast("B"))
    return digest.hexdigest()[:16]


def channel_stats(images: np.ndarray, chunk: int = 8192) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of uint8 images, on the 0-1 scale."""
    channels = images.shape[-1]
    total = np.zeros(channels, dtype=np.float64)
    total_sq = np.zeros(channels, dtype=np.float64)
    for start in range(0, len(images), chunk):
        block = images[start : start + chunk].reshape(-1, channels).astype(np.float64)
        total += block.sum(axis=0)
        total_sq += np.square(block).sum(axis=0)
    count = images.size // channels
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    return (mean / 255.0).tolist(), (std / 255.0).tolist()


GRAY_WEIGHTS = (0.2125, 0.7154, 0.0721)  # ITU-R BT.709 luma, as skimage.color.rgb2gray


def to_grayscale(images: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """RGB (N, H, W, 3) -> gray (N, H, W, 1): rounded luma for uint8, exact for floats; gray
    input passes through."""
    if images.shape[-1] == 1:
        return images
    if images.dtype != np.uint8:
        return (images @ np.asarray(GRAY_WEIGHTS, dtype=images.dtype))[..., None]
    weights = np.asarray(GRAY_WEIGHTS, dtype=np.float32)
    out = np.empty((*images.shape[:-1], 1), dtype=np.uint8)
    for start in range(0, len(images), chunk):
        block = images[start : start + chunk].astype(np.float32) @ weights
        out[start : start + chunk, ..., 0] = np.clip(np.rint(block), 0, 255)
    return out
