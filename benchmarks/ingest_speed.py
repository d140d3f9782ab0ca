"""Archive to arrays: our NumPy parse of cifar-10-binary.tar.gz vs torchvision's CIFAR10.

torchvision reads the *python* (pickle) flavour, so the same images are first written in that
layout (cifar-10-python.tar.gz) in a temporary folder. Each side goes from its archive to
uint8 arrays of all 60,000 images: torchvision extracts the archive, then its CIFAR10 class
reads train and test. Last line: ``speedup <x>x``.

    python benchmarks/ingest_speed.py --archive data/01_raw/cifar-10-binary.tar.gz
"""

from __future__ import annotations

import argparse
import pickle
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

from simple_cnn.data.cifar10 import parse_archive


def write_python_layout(raw, folder: Path) -> Path:
    """The same images in the python layout (our own pickles of our own arrays)."""
    batches = folder / "cifar-10-batches-py"
    batches.mkdir(parents=True)

    def dump(name, images, labels):
        data = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
        with open(batches / name, "wb") as f:
            pickle.dump({"data": data, "labels": labels.tolist()}, f)

    for i, (images, labels) in enumerate(
        zip(np.array_split(raw.train_images, 5), np.array_split(raw.train_labels, 5)), start=1
    ):
        dump(f"data_batch_{i}", images, labels)
    dump("test_batch", raw.test_images, raw.test_labels)
    with open(batches / "batches.meta", "wb") as f:
        pickle.dump({"label_names": raw.class_names}, f)
    archive = folder / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(batches, arcname="cifar-10-batches-py")
    return archive


def best_of(repeat, fn):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", required=True, type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import extract_archive

    class LocalCIFAR10(CIFAR10):
        meta = {**CIFAR10.meta, "md5": None}  # our python-layout copy has other checksums

        def _check_integrity(self) -> bool:  # our python-layout copy has other checksums
            return True

    ours_s, raw = best_of(args.repeat, lambda: parse_archive(args.archive))
    with tempfile.TemporaryDirectory() as tmp:
        python_archive = write_python_layout(raw, Path(tmp) / "src")

        def torchvision_read():
            root = Path(tempfile.mkdtemp(dir=tmp))
            extract_archive(str(python_archive), str(root))
            train, test = LocalCIFAR10(root, train=True), LocalCIFAR10(root, train=False)
            return train.data, np.asarray(train.targets), test.data, np.asarray(test.targets)

        theirs_s, (train_x, train_y, test_x, test_y) = best_of(args.repeat, torchvision_read)
    assert np.array_equal(train_x, raw.train_images) and np.array_equal(test_y, raw.test_labels)
    print(f"images: {len(raw.train_images) + len(raw.test_images):,} (same arrays on both sides)")
    print(f"ours (NumPy parse of the binary tar.gz):          {ours_s:6.2f} s")
    print(f"torchvision (extract python tar.gz + CIFAR10 x2):  {theirs_s:6.2f} s")
    print(f"speedup {theirs_s / ours_s:.2f}x")


if __name__ == "__main__":
    main()
