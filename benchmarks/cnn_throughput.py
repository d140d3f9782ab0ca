"""Training throughput: our batched on-device loop vs a tutorial-style loop, same model and batch.

Tutorial style: a Dataset that turns each image into a PIL image and applies
RandomCrop(32, padding=4) + RandomHorizontalFlip + ToTensor + Normalize, a DataLoader with 2
workers, fp32. Ours: ``simple_cnn.training.fit`` with the data resident as uint8 tensors, the
same crop + flip done for the whole batch at once, channels_last and AMP (bf16 on CPU).
Both train the default SimpleCNN on the same images for the same number of steps.
Last line: ``speedup <x>x``.

``--preset all`` measures our loop with every augmentation preset against ``standard``, in one
run (no tutorial loop); its last line is the slowest preset's ratio to ``standard``:
``slowest preset <name> <x>x standard``.

    python benchmarks/cnn_throughput.py --archive data/01_raw/cifar-10-binary.tar.gz
    python benchmarks/cnn_throughput.py --archive data/01_raw/cifar-10-binary.tar.gz --preset all
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from simple_cnn.augment import PRESETS, BatchAugment
from simple_cnn.data.cifar10 import parse_archive
from simple_cnn.data.raw import channel_stats
from simple_cnn.models.config import ModelConfig
from simple_cnn.models.simple_cnn import SimpleCNN
from simple_cnn.training.config import TrainConfig
from simple_cnn.training.loop import fit


class PILImages(Dataset):
    def __init__(self, images, labels, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def tutorial_loop(images, labels, mean, std, batch_size, epochs, workers) -> float:
    transform = transforms.Compose([
        transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
        transforms.ToTensor(), transforms.Normalize(mean, std),
    ])
    loader = DataLoader(PILImages(images, labels, transform), batch_size=batch_size, shuffle=True,
                        num_workers=workers, drop_last=True, persistent_workers=workers > 0)
    torch.manual_seed(0)
    model = SimpleCNN(ModelConfig())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    loss_fn = torch.nn.CrossEntropyLoss()
    seen, started = 0, time.perf_counter()
    for _ in range(epochs):
        for x, y in loader:
            loss = loss_fn(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen += len(x)
    return seen / (time.perf_counter() - started)


def our_loop(images, labels, mean, std, batch_size, epochs, amp, preset) -> float:
    torch.manual_seed(0)
    model = SimpleCNN(ModelConfig())
    augment = BatchAugment(preset, mean, std, num_classes=10)
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=0.05, warmup=0, amp=amp,
                         progress_bar=False)
    with tempfile.TemporaryDirectory() as tmp:
        result = fit(model, images, labels, images[:0], labels[:0], augment, config,
                     checkpoint_path=Path(tmp) / "last.pt")
    seen = sum(result.history["steps_per_epoch"] * batch_size for _ in result.history["epoch"])
    return seen / result.history["train_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", required=True, type=Path)
    parser.add_argument("--n", type=int, default=20_000, help="training images used")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--amp", default="auto")
    parser.add_argument("--preset", default="standard", choices=[p for p in PRESETS if p != "auto"] + ["all"],
                        help="our side's augmentation (the tutorial side always crops and flips); "
                             "all: every preset against standard")
    args = parser.parse_args()

    raw = parse_archive(args.archive)
    images, labels = raw.train_images[: args.n], raw.train_labels[: args.n]
    mean, std = channel_stats(images)
    if args.preset == "all":
        return every_preset(images, labels, mean, std, args)
    theirs = tutorial_loop(images, labels, mean, std, args.batch_size, args.epochs, args.workers)
    ours = our_loop(images, labels, mean, std, args.batch_size, args.epochs, args.amp, args.preset)
    print(f"model: default SimpleCNN, batch {args.batch_size}, {args.n:,} images x {args.epochs} epoch(s), "
          f"{torch.get_num_threads()} threads")
    print(f"tutorial loop (PIL transforms + DataLoader, {args.workers} workers, fp32): {theirs:8.0f} images/s")
    print(f"ours (preset {args.preset}, on-device batches, channels_last, amp={args.amp}): {ours:8.0f} images/s")
    print(f"speedup {ours / theirs:.2f}x")


def every_preset(images, labels, mean, std, args) -> None:
    print(f"model: default SimpleCNN, batch {args.batch_size}, {args.n:,} images x {args.epochs} "
          f"epoch(s), {torch.get_num_threads()} threads, amp={args.amp}")
    rates = {preset: our_loop(images, labels, mean, std, args.batch_size, args.epochs, args.amp, preset)
             for preset in ("standard", "none", "seed", "medium", "heavy")}
    for preset, rate in rates.items():
        print(f"ours (preset {preset}): {rate:8.0f} images/s  {rate / rates['standard']:.2f}x standard")
    slowest = min(rates, key=rates.get)
    print(f"slowest preset {slowest} {rates[slowest] / rates['standard']:.2f}x standard")


if __name__ == "__main__":
    main()
