"""The CUDA path, measured: the default CNN in fp16 + GradScaler, bf16, and bf16 + torch.compile,
and a check that the training step never waits for the device.

For each mode it trains the default ``cnn`` settings with ``fit_on_processes`` (as
``train_cnn`` does) on the archive's images (or synthetic ones without ``--archive``) and prints test accuracy, seconds
and images/s. Then it runs steady-state training steps under
``torch.cuda.set_sync_debug_mode("error")``: any host-device synchronisation in the step (an
``.item()``, a ``bool(tensor)``, a blocking copy) raises there. With more than one GPU it then
trains fp16 on all of them (``cnn.training.distributed.nproc_per_node``, one process per GPU,
NCCL) and runs the same synchronisation check in every process of DistributedDataParallel.
Without CUDA it says so and exits 0. Last line:
``bf16 vs fp16: <x>x images/s; compile vs bf16: <y>x`` and, with several GPUs,
``; <n> GPUs vs 1: <z>x``.

    python benchmarks/gpu_check.py [--archive data/01_raw/cifar-10-binary.tar.gz] [--epochs 15]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from simple_cnn.augment import BatchAugment
from simple_cnn.data.raw import channel_stats
from simple_cnn.models.config import ModelConfig
from simple_cnn.models.simple_cnn import SimpleCNN
from simple_cnn.training import distributed
from simple_cnn.training.config import TrainConfig
from simple_cnn.training.launch import fit_on_processes
from simple_cnn.training.loop import (
    _build,
    _labels,
    _Totals,
    _train_step,
    predict_logits,
    to_device_images,
)

MODES = {"fp16": {"amp": "fp16"}, "bf16": {"amp": "bf16"}, "bf16+compile": {"amp": "bf16", "compile": True}}


def load(archive: Path | None):
    if archive is None:
        from simple_cnn.data.synthetic import make_synthetic

        data = make_synthetic(n_train=20000, n_test=2000)
        return data.train_images, data.train_labels, data.test_images, data.test_labels
    from simple_cnn.data.cifar10 import parse_archive

    raw = parse_archive(archive)
    return raw.train_images, raw.train_labels, raw.test_images, raw.test_labels


def train(mode: dict, data, epochs: int, folder: str) -> dict:
    train_x, train_y, test_x, test_y = data
    mean, std = channel_stats(train_x)
    config = TrainConfig(epochs=epochs, device="cuda", progress_bar=False, **mode)
    augment = BatchAugment("standard", mean, std, 10)
    torch.manual_seed(0)
    model = SimpleCNN(ModelConfig())
    started = time.perf_counter()
    checkpoint = Path(folder) / f"run{len(list(Path(folder).glob('*.pt')))}.pt"
    result = fit_on_processes(model, train_x, train_y, test_x[:0], test_y[:0], augment, config,
                              checkpoint_path=checkpoint)
    seconds = time.perf_counter() - started
    model.load_state_dict(result.best_state)
    logits = predict_logits(model.cuda(), to_device_images(test_x, torch.device("cuda")), augment,
                            lambda: torch.autocast("cuda", dtype=torch.bfloat16))
    accuracy = (logits.argmax(1).cpu().numpy() == np.asarray(test_y)).mean()
    steady = result.history["images_per_second"][1:] or result.history["images_per_second"]
    return {"accuracy": accuracy, "seconds": seconds, "images_per_second": float(np.median(steady))}


def sync_free(data, folder: str, steps: int = 30) -> str:
    """Steady-state steps under sync debug mode "error": 'none' or the first synchronisation.
    In a process group (``distributed.launch``), the steps of this rank's DDP model."""
    train_x, train_y = data[0], data[1]
    mean, std = channel_stats(train_x)
    world = distributed.current()
    config = TrainConfig(epochs=2, device="cuda", amp="fp16", progress_bar=False)
    device = world.device(torch.device("cuda"))
    run = _build(SimpleCNN(ModelConfig()), BatchAugment("standard", mean, std, 10), config, device,
                 torch.float16, config.steps_per_epoch(len(train_x)), Path(folder) / "sync.pt", world)
    images, labels = to_device_images(train_x, device), _labels(train_y, device)
    order = torch.randperm(len(images), device=device)  # the same on every rank
    totals = _Totals.zeros(device)
    for step in range(5):  # warm-up: first calls allocate and initialise
        _train_step(run, 1, step, images, labels, order, totals, check=False)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for step in range(5, 5 + steps):
            _train_step(run, 1, step, images, labels, order, totals, check=False)
        return "none"
    except RuntimeError as error:
        return str(error).splitlines()[0]
    finally:
        torch.cuda.set_sync_debug_mode("default")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, default=None)
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("No CUDA device here: nothing to check (run it on a machine with an NVIDIA GPU).")
        return
    print(f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    data = load(args.archive)
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, mode in MODES.items():
            results[name] = row = train(mode, data, args.epochs, folder)
            print(f"{name:13s} accuracy {row['accuracy']:.4f}  {row['seconds']:6.1f} s  "
                  f"{row['images_per_second']:9.0f} images/s", flush=True)
        print(f"synchronisations in the training step: {sync_free(data, folder)}")
        n_gpus = torch.cuda.device_count()
        if n_gpus > 1:
            name = f"fp16 x {n_gpus} GPUs"
            results[name] = row = train({"amp": "fp16", "distributed": {"nproc_per_node": n_gpus}},
                                        data, args.epochs, folder)
            print(f"{name:13s} accuracy {row['accuracy']:.4f}  {row['seconds']:6.1f} s  "
                  f"{row['images_per_second']:9.0f} images/s", flush=True)
            per_rank = distributed.launch(sync_free, (data, folder), n_gpus, "nccl", None)
            print(f"synchronisations in the DDP training step, by rank: {per_rank}")
    ips = {name: row["images_per_second"] for name, row in results.items()}
    several = (f"; {n_gpus} GPUs vs 1: {ips[f'fp16 x {n_gpus} GPUs'] / ips['fp16']:.2f}x"
               if n_gpus > 1 else "")
    print(f"bf16 vs fp16: {ips['bf16'] / ips['fp16']:.2f}x images/s; "
          f"compile vs bf16: {ips['bf16+compile'] / ips['bf16']:.2f}x{several}")


if __name__ == "__main__":
    main()
