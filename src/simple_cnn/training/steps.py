"""One epoch of training steps that never wait for the device, and the NaN trap.

An epoch is a fresh permutation of the training images (seeded by the run's shuffle seed and
the epoch, the same on every rank and after a resume), cut into intervals of ``log_every``
steps: the loss check, the skipped fp16 steps and the sums stay on the device and are read
once per interval. If a loss was not finite, the interval is replayed from a snapshot taken
at its start, checking each step, so that the trap names the exact step and layer.
"""

from __future__ import annotations

import copy
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from simple_cnn.training.diagnostics import (
    NonFiniteLossError,
    first_non_finite_layer,
    non_finite_message,
)
from simple_cnn.training.distributed import PeerStopped
from simple_cnn.training.state import Totals, TrainingRun


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def train_one_epoch(run: TrainingRun, epoch: int, images: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
    """One pass over a fresh permutation of the training images; the epoch's row of history.

    The steps do not wait for the device: the loss check, the skipped fp16 steps and the sums
    stay on it and are read once every ``log_every`` steps. If a loss was not finite, the
    interval is replayed from a snapshot taken at its start, checking each step, so that the
    NaN trap names the exact step and layer as a per-step check would. In a process group the
    row holds every rank's images (loss and accuracy over the global batch, images/s summed)."""
    from tqdm.auto import tqdm

    config, n_steps, world = run.config, run.steps_in(epoch), run.world
    run.model.train()
    started = time.perf_counter()
    order = epoch_order(config.shuffle_seed, epoch, len(images)).to(images.device)
    torch.manual_seed(epoch_seed(config.shuffle_seed, "augment", epoch, world.rank))
    totals = Totals.zeros(images.device)
    show_bar = config.progress_bar and world.main and sys.stderr.isatty()
    bar = tqdm(total=n_steps, desc=f"epoch {epoch}/{run.epochs}", disable=not show_bar,
               leave=False, unit="step")
    before = (epoch - 1) * run.steps_per_epoch  # steps of the earlier epochs
    for first, last in _intervals(n_steps, config.log_every, [k - before for k in run.keep_at]):
        steps = range(first, last)
        snapshot = Snapshot.take(run, totals)
        for step in steps:
            _train_step(run, epoch, step, images, labels, order, totals, check=False)
        if not bool(world.all(totals.finite)):  # the interval's one wait for the device
            snapshot.restore(run, totals)
            for step in steps:  # raises at the first non-finite loss
                _train_step(run, epoch, step, images, labels, order, totals, check=True)
            raise NonFiniteLossError(f"A non-finite loss in epoch {epoch}, steps {first + 1}-"
                                     f"{steps[-1] + 1}, did not recur when replayed (a "
                                     f"non-deterministic kernel); lower cnn.training.lr.")
        if before + last in run.keep_at and last < n_steps:  # an epoch's end is kept after evaluation
            run.at_kept_step(before + last)
        if show_bar:
            seen = (steps[-1] + 1) * config.batch_size // world.size
            bar.update(len(steps))
            bar.set_postfix(loss=f"{totals.loss.item() / (steps[-1] + 1):.3f}",
                            acc=f"{totals.correct.item() / seen:.3f}",
                            lr=f"{run.optimizer.param_groups[0]['lr']:.3g}",
                            img_s=f"{seen / (time.perf_counter() - started):.0f}")
    bar.close()
    seconds = time.perf_counter() - started
    n_seen = n_steps * config.batch_size  # over all ranks
    loss, correct, rate = world.sum(torch.stack([
        totals.loss, totals.correct.float(), torch.tensor(n_seen / world.size / seconds,
                                                          device=totals.loss.device)]).double()).tolist()
    return {"epoch": epoch, "train_loss": loss / (n_steps * world.size),
            "train_accuracy": correct / n_seen, "lr": run.optimizer.param_groups[0]["lr"],
            "seconds": seconds, "images_per_second": rate,
            "skipped_steps": int(totals.skipped.item())}  # the same on every rank


def _intervals(n_steps: int, every: int, cuts: list[int]) -> list[tuple[int, int]]:
    """The epoch's steps in intervals of ``every`` (one wait for the device each), also cut
    after each step count in ``cuts`` that falls inside the epoch."""
    ends = sorted({*range(every, n_steps, every), *(c for c in cuts if 0 < c < n_steps), n_steps})
    return list(zip([0, *ends[:-1]], ends))


def epoch_seed(seed: int, purpose: str, *keys: int) -> int:
    """A seed for one purpose of one epoch (and rank), well mixed by NumPy's SeedSequence."""
    words = [seed, *purpose.encode(), *keys]
    return int(np.random.SeedSequence(words).generate_state(1, np.uint64)[0])


def epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The epoch's permutation of the training images: the same on every rank, and after a
    resume, whatever ran before."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(epoch_seed(seed, "order", epoch)))


def _train_step(run: TrainingRun, epoch: int, step: int, images: torch.Tensor, labels: torch.Tensor,
                order: torch.Tensor, totals: Totals, check: bool) -> None:
    """One optimiser step on (this rank's slice of) global batch ``step`` of ``order``, adding to
    ``totals`` on the device. With ``check`` it waits for the loss, and raises the NaN trap's
    error on a non-finite one (on every rank: the others stop with ``PeerStopped``)."""
    world, per_rank = run.world, run.config.batch_size // run.world.size
    start = step * run.config.batch_size + world.rank * per_rank
    index = order[start : start + per_rank]
    x, y = run.augment(images[index], labels[index])
    x = x.contiguous(memory_format=torch.channels_last)
    lr = run.optimizer.param_groups[0]["lr"]
    with run.autocast():
        logits = run.step_model(x)
        loss = run.loss_fn(logits, y)
    finite = torch.isfinite(loss)
    if check and not world.all(finite):
        if not finite:
            raise _non_finite(run, epoch, step, lr, loss, x, y)
        raise PeerStopped(f"another rank's loss was not finite at step {step + 1}")
    totals.finite &= finite
    totals.skipped += _optimiser_step(run, loss)
    run.state.history["lr_per_step"].append(lr)
    with torch.no_grad():
        totals.loss += loss.detach().float()
        hard = y if y.ndim == 1 else y.argmax(1)
        totals.correct += (logits.argmax(1) == hard).sum()


@dataclass
class Snapshot:
    """What an interval of steps changes, to replay it: weights, optimiser, schedule, scaler,
    RNG, the running sums and the LR history's length."""

    model: dict[str, Any]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    scaler: dict[str, Any]
    rng: dict[str, Any]
    totals: Totals
    n_lr: int

    @classmethod
    def take(cls, run: TrainingRun, totals: Totals) -> Snapshot:
        return cls(copy.deepcopy(run.model.state_dict()), copy.deepcopy(run.optimizer.state_dict()),
                   copy.deepcopy(run.scheduler.state_dict()), copy.deepcopy(run.scaler.state_dict()),
                   _rng_state(), totals.copy(), len(run.state.history["lr_per_step"]))

    def restore(self, run: TrainingRun, totals: Totals) -> None:
        run.model.load_state_dict(self.model)
        run.optimizer.load_state_dict(self.optimizer)
        run.scheduler.load_state_dict(self.scheduler)
        run.scaler.load_state_dict(self.scaler)
        _set_rng_state(self.rng)
        for name in ("loss", "correct", "skipped", "finite"):
            setattr(totals, name, getattr(self.totals, name).clone())
        del run.state.history["lr_per_step"][self.n_lr:]


def _optimiser_step(run: TrainingRun, loss: torch.Tensor) -> torch.Tensor:
    """Backward, step and schedule; 1 (a device tensor) if GradScaler skipped the step."""
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    scale_before = _scale(run.scaler).clone() if run.scaler.is_enabled() else None
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.scheduler.step()
    if scale_before is None:
        return torch.zeros((), device=loss.device)
    return (_scale(run.scaler) < scale_before).float()


def _scale(scaler: torch.amp.GradScaler) -> torch.Tensor:
    """The loss scale as a device tensor: ``get_scale()`` would read it to the host (a sync)."""
    scale = scaler._get_scale_async()
    if scale is None:
        raise RuntimeError("GradScaler has no scale before its first scale(); call it after backward.")
    return scale


def plain_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` that takes part in no collective: fresh tensors (no
    DistributedDataParallel hooks on them), and every SyncBatchNorm a BatchNorm of the same state."""
    copied = copy.deepcopy(model)
    for name, module in list(copied.named_modules()):
        if isinstance(module, nn.SyncBatchNorm):
            plain = nn.BatchNorm2d(module.num_features, module.eps, module.momentum, module.affine,
                                   module.track_running_stats).to(module.weight.device if module.affine else "cpu")
            plain.load_state_dict(module.state_dict())
            plain.train(module.training)
            parent, _, leaf = name.rpartition(".")
            setattr(copied.get_submodule(parent) if parent else copied, leaf, plain)
    return copied


def _non_finite(run: TrainingRun, epoch: int, step: int, lr: float, loss: torch.Tensor,
                x: torch.Tensor, y: torch.Tensor) -> NonFiniteLossError:
    """The NaN trap's error: when, at what LR, the first non-finite layer, the last good checkpoint.
    The layer is searched on a plain copy of the model: in a process group its backward would
    otherwise run DistributedDataParallel's gradient all-reduce (and SyncBatchNorm's forward its
    collectives) on the ranks that saw the NaN only, and the others would wait forever."""
    where = first_non_finite_layer(plain_copy(run.model), x, y, run.loss_fn, run.autocast)
    global_step = (epoch - 1) * run.steps_per_epoch + step + 1
    return NonFiniteLossError(
        non_finite_message(loss.item(), epoch, step + 1, run.steps_per_epoch, global_step, lr,
                           where, run.checkpoint_path, run.state.epoch),
        epoch=epoch, step=global_step, lr=lr, layer=where,
        lr_per_step=[*run.state.history["lr_per_step"], lr],
    )


