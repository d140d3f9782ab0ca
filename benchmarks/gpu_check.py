"""What a first GPU run must show, stage by stage, each on its own (a failing stage prints its
traceback and the next one runs); the same script runs on a CPU (``--device cpu``, a test does)
so that it cannot rot between GPU runs.

Stages:

1. ``precision``: the default CNN trained in fp32, bf16 and fp16 + GradScaler (on a CPU: fp32
   and bf16; fp16 needs CUDA), each with its test accuracy and images/s, against the bare
   forward-backward-step on the same batches (no augmentation, no bookkeeping); and bf16 at a
   batch of 1024, where a batch of 256 leaves a big GPU waiting for launches.
2. ``overflow``: infinite gradients forced into the first steps: every such step is skipped by
   GradScaler and counted in the history, and the weights stay finite.
3. ``resume``: a run stopped after its first epoch and resumed ends where the uninterrupted one
   does (bit for bit on a CPU; within a stated tolerance on CUDA, whose kernels are not exact).
4. ``syncs``: steady-state training steps of every augmentation preset: no host-device
   synchronisation (CUDA's sync debug mode; on a CPU, the host reads that would wait on a
   GPU), each one found printed with its Python stack.
5. ``ddp``: DistributedDataParallel on every visible GPU over NCCL (with one GPU, two processes
   share it over Gloo, and the summary says so); on a CPU, two Gloo processes.
6. ``syncbn``: SyncBatchNorm over NCCL (CUDA, two GPUs or more; otherwise the summary says why
   it did not run).
7. ``batch``: the global batch adapted to every GPU count from 1 to 8 and accepted.

    python benchmarks/gpu_check.py [--device cuda|cpu] [--archive data/01_raw/cifar-10-binary.tar.gz]

Last line: every stage's result, e.g. ``ok precision (bf16 1.9x fp16 images/s) | ok overflow ...``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

from simple_cnn.augment import PRESETS, BatchAugment
from simple_cnn.data.raw import channel_stats
from simple_cnn.models.config import ModelConfig
from simple_cnn.models.simple_cnn import SimpleCNN
from simple_cnn.training import distributed
from simple_cnn.training.config import TrainConfig
from simple_cnn.training.device import autocast_factory, to_device_images
from simple_cnn.training.distributed import check_world
from simple_cnn.training.evaluation import predict_logits
from simple_cnn.training.launch import fit_on_processes
from simple_cnn.training.loop import _build, _labels, fit
from simple_cnn.training.state import Totals
from simple_cnn.training.steps import _train_step
from simple_cnn.training.syncs import syncs_in


class Check:
    """The data, the device and the sizes every stage uses."""

    def __init__(self, args: argparse.Namespace, folder: Path) -> None:
        self.device = torch.device(args.device)
        self.cuda = self.device.type == "cuda"
        self.folder, self.epochs = folder, args.epochs
        self.data = load(args.archive, small=not self.cuda)
        self.mean, self.std = channel_stats(self.data[0])
        self.model = ModelConfig() if self.cuda else ModelConfig(base_width=8, hidden_units=32)
        self.batch = 256 if self.cuda else 64

    def config(self, **changes) -> TrainConfig:
        return TrainConfig(**{"epochs": self.epochs, "warmup": 0.5, "batch_size": self.batch,
                              "device": self.device.type, "progress_bar": False, **changes})

    def augment(self, preset: str = "standard") -> BatchAugment:
        return BatchAugment(preset, self.mean, self.std, 10)

    def network(self) -> SimpleCNN:
        torch.manual_seed(0)
        return SimpleCNN(self.model)

    def checkpoint(self, name: str) -> Path:
        return self.folder / f"{name}.pt"

    def accuracy(self, state: dict[str, torch.Tensor], amp: str) -> float:
        model = self.network().to(self.device)
        model.load_state_dict(state)
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
        logits = predict_logits(model, to_device_images(self.data[2], self.device),
                                self.augment().to(self.device), autocast_factory(self.device, dtype))
        return float((logits.argmax(1).cpu().numpy() == self.data[3]).mean())


def load(archive: Path | None, small: bool):
    if archive is None:
        from simple_cnn.data.synthetic import make_synthetic

        data = make_synthetic(n_train=640 if small else 20000, n_test=128 if small else 2000)
        return data.train_images, data.train_labels, data.test_images, data.test_labels
    from simple_cnn.data.cifar10 import parse_archive

    raw = parse_archive(archive)
    return raw.train_images, raw.train_labels, raw.test_images, raw.test_labels


# ------------------------------------------------------------------------------ the stages
def precision(check: Check) -> str:
    modes = ["off", "bf16", *(["fp16"] if check.cuda else [])]
    rates = {}
    for amp, batch in [*((m, check.batch) for m in modes), *((("bf16", 1024),) if check.cuda else ())]:
        config = check.config(amp=amp, batch_size=batch, lr=0.2 * batch / 256)
        started = time.perf_counter()
        result = fit_on_processes(check.network(), check.data[0], check.data[1], check.data[2][:0],
                                  check.data[3][:0], check.augment(), config, check.checkpoint(f"{amp}{batch}"))
        seconds = time.perf_counter() - started
        steady = float(np.median(result.history["images_per_second"][1:] or result.history["images_per_second"]))
        bare = bare_steps(check, amp, batch)
        rates[(amp, batch)] = steady
        print(f"  {amp:4s} batch {batch:4d}: accuracy {check.accuracy(result.best_state, amp):.4f}, "
              f"{seconds:6.1f} s, {steady:9.0f} images/s; the bare step {bare:9.0f} images/s "
              f"(loop / bare {steady / bare:.2f}); skipped steps {sum(result.history['skipped_steps'])}",
              flush=True)
    versus = "fp16" if check.cuda else "off"
    return f"bf16 {rates[('bf16', check.batch)] / rates[(versus, check.batch)]:.2f}x {versus} images/s" + (
        f", batch 1024 {rates[('bf16', 1024)] / rates[('bf16', check.batch)]:.2f}x batch 256" if check.cuda else "")


def bare_steps(check: Check, amp: str, batch: int, steps: int = 60) -> float:
    """Images/s of forward, loss, backward and optimiser step alone, on the same batches."""
    config = check.config(amp=amp, batch_size=batch)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    run = _build(check.network(), check.augment("none"), config, check.device, dtype,
                 config.steps_per_epoch(len(check.data[0])), None)
    images = run.augment.prepare(to_device_images(check.data[0][: batch * 4], check.device))
    labels = _labels(check.data[1][: batch * 4], check.device)
    batches = [(images[i * batch:(i + 1) * batch].contiguous(memory_format=torch.channels_last),
                labels[i * batch:(i + 1) * batch]) for i in range(4)]

    def step(x, y):
        with run.autocast():
            loss = run.loss_fn(run.model(x), y)
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        run.scaler.step(run.optimizer)
        run.scaler.update()

    for x, y in batches:
        step(x, y)
    synchronize(check.device)
    started = time.perf_counter()
    for i in range(steps):
        step(*batches[i % 4])
    synchronize(check.device)
    return steps * batch / (time.perf_counter() - started)


def overflow(check: Check, poisoned: int = 5) -> str:
    """Infinite gradients in the first ``poisoned`` steps: each skipped and counted."""
    config = check.config(amp="fp16" if check.cuda else "bf16", epochs=1)
    dtype = torch.float16 if check.cuda else torch.bfloat16
    run = _build(check.network(), check.augment(), config, check.device, dtype,
                 config.steps_per_epoch(len(check.data[0])), None)
    if not check.cuda:  # the CPU's own GradScaler, as fp16 training uses on CUDA
        run.scaler = torch.amp.GradScaler("cpu", enabled=True)
    calls = {"n": 0}

    def poison(grad: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        return grad * float("inf") if calls["n"] <= poisoned else grad

    handle = next(run.model.parameters()).register_hook(poison)
    from simple_cnn.training.steps import train_one_epoch

    row = train_one_epoch(run, 1, to_device_images(check.data[0], check.device), _labels(check.data[1], check.device))
    handle.remove()
    finite = all(bool(torch.isfinite(p).all()) for p in run.model.parameters())
    print(f"  {poisoned} poisoned steps: {row['skipped_steps']} skipped, weights finite: {finite}")
    if row["skipped_steps"] != poisoned or not finite:
        raise AssertionError(f"expected {poisoned} skipped steps and finite weights, got {row['skipped_steps']}")
    return f"{row['skipped_steps']} of {poisoned} forced overflows skipped and counted"


def resume(check: Check) -> str:
    """Stopped after epoch 1 of 2 and resumed, against the same run uninterrupted."""
    config = check.config(epochs=2, amp="bf16" if check.cuda else "off")
    args = (check.data[0], check.data[1], check.data[2][:512], check.data[3][:512], check.augment(), config)
    whole = fit(check.network(), *args, check.checkpoint("whole"))

    def stop(epoch: int, row: dict) -> None:
        if epoch == 1:
            raise KeyboardInterrupt

    try:
        fit(check.network(), *args, check.checkpoint("stopped"), on_epoch_end=stop)
    except KeyboardInterrupt:
        pass
    resumed = fit(check.network(), *args[:-1], config.model_copy(update={"resume": True}), check.checkpoint("stopped"))
    gap = max(float((a.float() - b.float()).abs().max()) for a, b in zip(whole.best_state.values(),
                                                                         resumed.best_state.values()))
    loss = abs(whole.history["train_loss"][-1] - resumed.history["train_loss"][-1])
    tolerance = 5e-2 if check.cuda else 0.0  # cuDNN picks non-deterministic kernels
    print(f"  largest weight difference {gap:.3g}, last epoch's loss differs by {loss:.3g} (tolerance {tolerance:g})")
    if loss > tolerance:
        raise AssertionError(f"the resumed run's last loss differs by {loss:.3g} > {tolerance:g}")
    return f"resumed loss within {tolerance:g} (weights differ by at most {gap:.2g})"


def syncs(check: Check, steps: int = 20) -> str:
    counts = {}
    steps = min(steps, len(check.data[0]) // check.batch - 3)
    for preset in [p for p in PRESETS if p != "auto"]:
        config = check.config(amp="bf16" if check.cuda else "off")
        dtype = torch.bfloat16 if check.cuda else None
        run = _build(check.network(), check.augment(preset), config, check.device, dtype,
                     config.steps_per_epoch(len(check.data[0])), None)
        images, labels = to_device_images(check.data[0], check.device), _labels(check.data[1], check.device)
        order = torch.randperm(len(images), device=check.device)
        totals = Totals.zeros(check.device)
        def train(first: int, last: int, run=run, images=images, labels=labels, order=order,
                  totals=totals) -> None:
            for step in range(first, last):
                _train_step(run, 1, step, images, labels, order, totals, check=False)

        train(0, 3)  # warm-up: first calls allocate and initialise
        found = syncs_in(lambda train=train: train(3, 3 + steps), check.device)
        counts[preset] = len(found)
        print(f"  {preset:8s}: {len(found)} synchronisation(s) in {steps} steps")
        for sync in {s.where(): s for s in found}.values():
            print(f"      {sync.what} at {sync.where()}")
    if any(counts.values()):
        raise AssertionError(f"host syncs in steady-state steps: {counts}")
    return f"0 in every preset ({', '.join(counts)})"


def ddp(check: Check, sync_batchnorm: bool = False) -> str:
    gpus = torch.cuda.device_count() if check.cuda else 0
    if sync_batchnorm and gpus < 2:
        raise NotRun(f"SyncBatchNorm needs NCCL between 2 or more GPUs; {gpus or 'no'} GPU(s) here")
    processes = max(gpus, 2)
    backend = "nccl" if gpus >= 2 else "gloo"
    config = check.config(epochs=1, amp="bf16" if check.cuda else "off", batch_size=adapted(check.batch, processes),
                          distributed={"nproc_per_node": processes, "backend": backend, "sync_batchnorm": sync_batchnorm})
    if gpus == 1:  # two processes, one GPU: DistributedDataParallel exercised, NCCL cannot be
        check_world(processes, config, torch.device("cpu"))
        result = distributed.launch(_fit_on_rank, (check, config), processes, "gloo", None, "cuda")[0]
    else:
        result = fit_on_processes(check.network(), check.data[0], check.data[1], check.data[2][:512],
                                  check.data[3][:512], check.augment(), config, check.checkpoint("ddp"))
    rate = float(np.median(result.history["images_per_second"]))
    where = f"{processes} processes sharing 1 GPU over Gloo (NCCL needs 2 GPUs)" if gpus == 1 else (
        f"{processes} GPUs over NCCL" if gpus else f"{processes} CPU processes over Gloo")
    print(f"  {where}: {rate:.0f} images/s, val accuracy {result.history['val_accuracy'][-1]:.3f}")
    return where


def _fit_on_rank(check: Check, config: TrainConfig):
    result = fit(check.network(), check.data[0], check.data[1], check.data[2][:512], check.data[3][:512],
                 check.augment(), config, check.checkpoint("ddp1"))
    return result if distributed.current().main else None


def batch(check: Check) -> str:
    sizes = {n: adapted(256, n) for n in range(1, 9)}
    for n, size in sizes.items():
        check_world(n, check.config(batch_size=size), torch.device("cpu"))
    print("  global batch per GPU count: " + ", ".join(f"{n}: {s}" for n, s in sizes.items()))
    return "adapted for 1-8 GPUs"


def adapted(batch_size: int, processes: int) -> int:
    """The nearest multiple of ``processes`` at or below ``batch_size``."""
    return max(processes, batch_size - batch_size % processes)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


class NotRun(Exception):
    """A stage that cannot run on this machine, and why."""


STAGES = {"precision": precision, "overflow": overflow, "resume": resume, "syncs": syncs,
          "ddp": ddp, "syncbn": lambda check: ddp(check, sync_batchnorm=True), "batch": batch}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--archive", type=Path, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--stages", default=",".join(STAGES), help="comma-separated stages to run")
    args = parser.parse_args()
    args.epochs = args.epochs or (5 if args.device == "cuda" else 2)
    name = torch.cuda.get_device_name(0) if args.device == "cuda" else "CPU"
    print(f"{name}, torch {torch.__version__}, {torch.cuda.device_count()} GPU(s)", flush=True)
    results = []
    with tempfile.TemporaryDirectory() as folder:
        check = Check(args, Path(folder))
        for stage in args.stages.split(","):
            print(f"[{stage}]", flush=True)
            started = time.perf_counter()
            try:
                results.append(f"ok {stage} ({STAGES[stage](check)})")
            except NotRun as why:
                results.append(f"not run {stage} ({why})")
            except Exception:  # noqa: BLE001 - reported, and the next stage runs
                traceback.print_exc()
                results.append(f"FAILED {stage}")
            print(f"  ({time.perf_counter() - started:.1f} s)", flush=True)
    print(" | ".join(results))
    return 1 if any(r.startswith("FAILED") for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
