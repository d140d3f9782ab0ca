"""What the run-profile hook costs: the same node work with and without its measurement.

The work is a real node's: ``train_cnn``'s core (``fit``) on the synthetic data, a few
seconds per round. Rounds alternate between bare and measured (a ``Measurement`` started
before and stopped after, as ``RunProfileHooks`` does around every node), and each side keeps
its fastest round. Last line: ``ratio <measured / bare>x (overhead <p> %)``.

    python benchmarks/profile_overhead.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from simple_cnn.augment import BatchAugment
from simple_cnn.data.raw import channel_stats
from simple_cnn.data.synthetic import make_synthetic
from simple_cnn.models.config import ModelConfig
from simple_cnn.models.simple_cnn import SimpleCNN
from simple_cnn.profiling import Measurement
from simple_cnn.training.config import TrainConfig
from simple_cnn.training.loop import fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    data = make_synthetic(n_train=4000, n_test=500)
    mean, std = channel_stats(data.train_images)
    config = ModelConfig(base_width=16)
    train_config = TrainConfig(epochs=6, batch_size=128, lr=0.05, warmup=0, progress_bar=False)

    def work(folder: str) -> None:
        torch.manual_seed(0)
        fit(SimpleCNN(config), data.train_images, data.train_labels, data.test_images,
            data.test_labels, BatchAugment("standard", mean, std, 10), train_config,
            checkpoint_path=Path(folder) / "last.pt", model_config=config.model_dump())

    bare, measured = [], []
    with tempfile.TemporaryDirectory() as folder:
        work(folder)  # warm-up
        for _ in range(args.rounds):
            started = time.perf_counter()
            work(folder)
            bare.append(time.perf_counter() - started)
            started = time.perf_counter()
            measurement = Measurement()
            work(folder)
            measurement.stop()
            measured.append(time.perf_counter() - started)
    b, m = min(bare), min(measured)
    print(f"bare node work:     {b:.3f} s (fastest of {args.rounds})")
    print(f"measured node work: {m:.3f} s (peak RSS {measurement.peak / 2**20:.0f} MiB)")
    print(f"ratio {m / b:.4f}x (overhead {(m / b - 1) * 100:+.2f} %)")


if __name__ == "__main__":
    main()
