"""HOG speed: our batched ``hog_features`` vs a per-image ``skimage.feature.hog`` loop.

Both sides get the same uint8 images and options (default: grayscale, 9 orientations, 8x8
cells, 2x2 blocks, L2-Hys) and must give the same features. Each side is timed best of
``--repeat`` runs. Last line: ``speedup <x>x (max abs diff <d>)``.

    python benchmarks/hog_speed.py --archive data/01_raw/cifar-10-binary.tar.gz [--n 60000] [--colour]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from skimage.feature import hog

from simple_cnn.data.cifar10 import parse_archive
from simple_cnn.data.raw import to_grayscale
from simple_cnn.features.hog import hog_features


def best_of(repeat, fn):
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", required=True, type=Path)
    parser.add_argument("--n", type=int, default=60_000, help="images (train then test)")
    parser.add_argument("--colour", action="store_true", help="colour HOG (channel_axis=-1)")
    parser.add_argument("--orientations", type=int, default=9)
    parser.add_argument("--cell", type=int, default=8)
    parser.add_argument("--block", type=int, default=2)
    parser.add_argument("--block-norm", default="L2-Hys")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    raw = parse_archive(args.archive)
    images = np.concatenate([raw.train_images, raw.test_images])[: args.n]
    if not args.colour:
        images = to_grayscale(images)[..., 0]
    options = dict(orientations=args.orientations, pixels_per_cell=(args.cell, args.cell),
                   cells_per_block=(args.block, args.block), block_norm=args.block_norm,
                   channel_axis=-1 if args.colour else None)
    ours_s, ours = best_of(args.repeat, lambda: hog_features(images, **options))
    theirs_s, theirs = best_of(max(1, args.repeat - 2),
                               lambda: np.stack([hog(image, **options) for image in images]))
    diff = float(np.abs(ours - theirs).max())
    print(f"{len(images):,} images {images.shape[1:]}, options {options}, {ours.shape[1]} features")
    print(f"skimage.feature.hog, one image at a time: {theirs_s:7.3f} s")
    print(f"simple_cnn hog_features, batched:         {ours_s:7.3f} s")
    print(f"speedup {theirs_s / ours_s:.1f}x (max abs diff {diff:.1e})")


if __name__ == "__main__":
    main()
