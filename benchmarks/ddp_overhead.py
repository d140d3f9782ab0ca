"""What DistributedDataParallel costs on CPU: one process against two Gloo processes that
train the same global batch on the same cores.

Both train the default ``cnn`` model and settings (``batch_size`` 256 is the global batch) for
``--epochs`` epochs on ``--n-train`` images (CIFAR-10 from ``--archive``, synthetic without):
one process with ``--cores`` threads, then ``cnn.training.distributed.nproc_per_node: 2`` with
``--cores / 2`` threads each, through ``fit_on_processes`` as ``train_cnn`` calls it. images/s
is the median of the epochs after the first, summed over the processes. The last line is
``2 processes vs 1: <x>x images/s``.

On a 2-core machine this cannot show a speed-up: the two processes share the cores that the
one process had, each multiplies matrices half as tall, and every step adds an all-reduce of
the gradients over TCP. What it shows is the overhead of the distributed step, which is what
stays the same when each process has a GPU of its own.

    python benchmarks/ddp_overhead.py [--archive data/01_raw/cifar-10-binary.tar.gz] [--cores 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from simple_cnn.augment import BatchAugment
from simple_cnn.data.raw import channel_stats
from simple_cnn.models.config import ModelConfig
from simple_cnn.models.simple_cnn import SimpleCNN
from simple_cnn.training.config import TrainConfig
from simple_cnn.training.launch import fit_on_processes


def load(archive: Path | None, n_train: int):
    if archive is None:
        from simple_cnn.data.synthetic import make_synthetic

        data = make_synthetic(n_train=n_train, n_test=500)
        return data.train_images, data.train_labels
    from simple_cnn.data.cifar10 import parse_archive

    raw = parse_archive(archive)
    return raw.train_images[:n_train], raw.train_labels[:n_train]


def images_per_second(images, labels, epochs: int, nproc: int, cores: int, folder: str) -> tuple[float, float]:
    """(median images/s of the steady epochs, wall seconds including the processes' start)."""
    mean, std = channel_stats(images)
    config = TrainConfig(epochs=epochs, warmup=1, device="cpu", progress_bar=False,
                         distributed={"nproc_per_node": nproc, "threads_per_process": cores // nproc})
    torch.set_num_threads(cores)
    torch.manual_seed(0)
    started = time.perf_counter()
    result = fit_on_processes(SimpleCNN(ModelConfig()), images, labels, images[:0], labels[:0],
                              BatchAugment("standard", mean, std, 10), config,
                              checkpoint_path=Path(folder) / f"{nproc}.pt")
    wall = time.perf_counter() - started
    return statistics.median(result.history["images_per_second"][1:]), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, default=None)
    parser.add_argument("--n-train", type=int, default=10240)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--cores", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args()
    if args.cores < 2 or args.cores % 2:
        parser.error("--cores must be even and at least 2 (two processes share them)")
    images, labels = load(args.archive, args.n_train)
    print(f"{len(images)} images, {args.epochs} epochs, global batch 256, {args.cores} cores, "
          f"torch {torch.__version__}")
    rates = {}
    with tempfile.TemporaryDirectory() as folder:
        for nproc in (1, 2):
            rates[nproc], wall = images_per_second(images, labels, args.epochs, nproc, args.cores, folder)
            print(f"{nproc} process(es) x {args.cores // nproc} thread(s): {rates[nproc]:7.0f} "
                  f"images/s ({wall:.1f} s wall)", flush=True)
    print(f"2 processes vs 1: {rates[2] / rates[1]:.2f}x images/s")


if __name__ == "__main__":
    main()
