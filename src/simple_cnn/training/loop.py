"""The training loop: data resident on the device, batched augmentation, AMP, warmup, checkpoints.

``fit`` trains a model on uint8 image tensors and returns the best weights (by validation
accuracy) with the history. Every epoch ends with a checkpoint (model, optimiser, scheduler,
grad scaler, history, early-stopping state) written atomically, so a run killed at any point
resumes with ``resume=True`` and ends exactly as an uninterrupted one would (on CPU).

In a process group (``distributed``) the same loop is one rank of DistributedDataParallel:
``batch_size`` is the global batch, each epoch's permutation (seeded by seed and epoch) is the
same on every rank and each rank takes its slice of every global batch; augmentation is seeded
per rank and epoch; rank 0 evaluates, decides and writes the checkpoint.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from simple_cnn.augment import BatchAugment
from simple_cnn.training import distributed
from simple_cnn.training.checkpoint import (
    checkpoint_lock,
    load_checkpoint,
    run_signature,
    save_checkpoint,
)
from simple_cnn.training.config import TrainConfig
from simple_cnn.training.device import resolve_amp, resolve_device
from simple_cnn.training.diagnostics import (
    NonFiniteLossError,
    first_non_finite_layer,
    non_finite_message,
)
from simple_cnn.training.distributed import PeerStopped, World
from simple_cnn.training.schedule import build_scheduler

logger = logging.getLogger(__name__)


@dataclass
class FitResult:
    best_state: dict[str, torch.Tensor]
    history: dict[str, Any]
    device: str
    amp: str
    kept: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)
    """``keep_at`` step -> the weights the run would have ended with had it stopped after that
    many steps: the best by validation accuracy of its epochs so far and of its weights at that
    step (a run that stopped early keeps its best for the later steps)."""


@dataclass
class _State:
    """Everything besides model/optimiser/scheduler/scaler that a resumed run needs."""

    epoch: int = 0
    history: dict[str, list] = field(default_factory=lambda: {
        "epoch": [], "train_loss": [], "train_accuracy": [], "val_loss": [], "val_accuracy": [],
        "lr": [], "seconds": [], "images_per_second": [], "skipped_steps": [], "lr_per_step": [],
    })
    best_accuracy: float = -1.0
    best_epoch: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    epochs_without_improvement: int = 0
    finished: bool = False  # the last epoch, or early stopping, is done
    kept: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)  # see FitResult.kept


def to_device_images(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (N, H, W, C) NumPy -> uint8 (N, C, H, W) tensor on ``device``."""
    return torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).contiguous()


def autocast_factory(device: torch.device, dtype: torch.dtype | None) -> Callable[[], contextlib.AbstractContextManager]:
    if dtype is None:
        return contextlib.nullcontext
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


def amp_name(dtype: torch.dtype | None) -> str:
    return {None: "off", torch.float16: "fp16", torch.bfloat16: "bf16"}[dtype]


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    # no weight decay on norm parameters and biases (decay there only fights the normalisation)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": config.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum,
                               nesterov=config.nesterov)
    return torch.optim.AdamW(groups, lr=config.lr)


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    images: torch.Tensor,
    augment: BatchAugment,
    autocast: Callable[[], contextlib.AbstractContextManager],
    batch_size: int = 1024,
    flip_tta: bool = False,
) -> torch.Tensor:
    """Logits (float32) for uint8 images; with ``flip_tta`` averaged over the image and its mirror."""
    was_training = model.training
    model.eval()
    outputs = []
    for start in range(0, len(images), batch_size):
        x = augment.prepare(images[start : start + batch_size]).contiguous(
            memory_format=torch.channels_last)
        with autocast():
            logits = model(x).float()
            if flip_tta:
                logits = (logits + model(x.flip(-1)).float()) / 2
        outputs.append(logits)
    model.train(was_training)
    return torch.cat(outputs)


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def fit(
    model: nn.Module,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    val_images: np.ndarray,
    val_labels: np.ndarray,
    augment: BatchAugment,
    config: TrainConfig,
    checkpoint_path: str | Path,
    model_config: dict[str, Any] | None = None,
    on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None,
    keep_at: tuple[int, ...] = (),
) -> FitResult:
    """Train ``model``; return the weights of its best validation epoch and the history (and
    the best weights as they were after each number of steps in ``keep_at``).

    Seed the RNG before building ``model`` for reproducible initial weights; each epoch seeds
    its order and augmentation (and dropout) from ``config.seed``. The checkpoint at
    ``checkpoint_path`` belongs to this call while it runs: a concurrent one is refused. In a
    process group (torchrun, or ``fit_on_processes``) this is one rank's part of the run.
    """
    world = distributed.current()
    with checkpoint_lock(Path(checkpoint_path)) if world.main else contextlib.nullcontext():
        return _fit(world, model, train_images, train_labels, val_images, val_labels, augment, config,
                    Path(checkpoint_path), model_config or {}, on_epoch_end, tuple(keep_at))


def _warn_small_batch_norm(model: nn.Module, batch_size: int) -> None:
    if batch_size <= 2 and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        logger.warning(
            "batch_size=%d with BatchNorm: batch statistics over %d image(s) are meaningless, so "
            "training stays near chance. Use norm: group or layer (they normalise each image on "
            "its own), or a batch of 16 or more.", batch_size, batch_size)


@dataclass
class _Run:
    """One training run's parts: what each epoch, evaluation and checkpoint works with."""

    model: nn.Module
    step_model: nn.Module  # the compiled model when config.compile, else ``model``
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    loss_fn: nn.Module
    autocast: Callable[[], contextlib.AbstractContextManager]
    augment: BatchAugment
    config: TrainConfig
    steps_per_epoch: int
    total_steps: int
    epochs: int
    checkpoint_path: Path
    world: World = World()
    state: _State = field(default_factory=_State)
    keep_at: tuple[int, ...] = ()  # steps after which to keep the weights the run would end with
    at_kept_step: Callable[[int], None] = lambda step: None  # called after each such step

    def steps_in(self, epoch: int) -> int:
        """Steps of ``epoch`` (with ``max_steps`` the last epoch is cut short)."""
        return min(self.steps_per_epoch, self.total_steps - (epoch - 1) * self.steps_per_epoch)


def _fit(world: World, model, train_images, train_labels, val_images, val_labels, augment, config,
         checkpoint_path: Path, model_config: dict[str, Any], on_epoch_end,
         keep_at: tuple[int, ...] = ()) -> FitResult:
    device = world.device(resolve_device(config.device))
    distributed.check_world(world.size, config, device)
    amp_dtype = resolve_amp(config.amp, device)
    steps_per_epoch = config.steps_per_epoch(len(train_images))
    config.check_schedule(steps_per_epoch)
    _warn_small_batch_norm(model, config.batch_size // world.size)
    signature = run_signature(config, augment.preset, train_images, train_labels)
    checkpoint = load_checkpoint(checkpoint_path, model_config, signature) if config.resume else None
    run = _build(model, augment, config, device, amp_dtype, steps_per_epoch, checkpoint_path, world)
    if checkpoint is not None:
        _restore(run, checkpoint)
    images, labels = to_device_images(train_images, device), _labels(train_labels, device)
    val_x, val_y = to_device_images(val_images, device), _labels(val_labels, device)
    run.keep_at = keep_at
    run.at_kept_step = lambda step: _keep_now(run, step, val_x, val_y)
    _log_start(run, device, amp_dtype, len(images))
    for epoch in range(run.state.epoch + 1, run.epochs + 1):
        row = _epoch_row(run, epoch, images, labels, val_x, val_y)
        _record(run, row)
        stop = _update_best(run, epoch, row["val_accuracy"], has_val=len(val_y) > 0)
        _keep_at_epoch_end(run, epoch)
        if world.main:
            _checkpoint(run, model_config, signature)
        if on_epoch_end is not None:
            on_epoch_end(epoch, row)
        if stop:
            logger.info("Early stopping after epoch %d: val accuracy has not improved for %d "
                        "epochs (best %.4f at epoch %d).", epoch, run.state.epochs_without_improvement,
                        run.state.best_accuracy, run.state.best_epoch)
            break
    return _result(run, has_val=len(val_labels) > 0, device=device, amp_dtype=amp_dtype)


def _log_start(run: _Run, device: torch.device, amp_dtype: torch.dtype | None, n_images: int) -> None:
    world, config = run.world, run.config
    processes = (f", {world.size} processes of {config.batch_size // world.size} images per step"
                 if world.size > 1 else "")
    logger.info("Training on %s (AMP %s): %d images, %d steps/epoch, %d epochs (%d steps), "
                "augmentation %s%s.", device, amp_name(amp_dtype), n_images, run.steps_per_epoch,
                run.epochs, run.total_steps, run.augment.preset, processes)


def _epoch_row(run: _Run, epoch: int, images: torch.Tensor, labels: torch.Tensor,
               val_x: torch.Tensor, val_y: torch.Tensor) -> dict[str, Any]:
    """Train one epoch, then evaluate. In a process group rank 0 evaluates and its row is every
    rank's (with its BatchNorm statistics copied first), so all ranks hold the same model and
    make the same decisions (best epoch, early stopping)."""
    row = train_one_epoch(run, epoch, images, labels)
    run.world.copy_buffers(run.model)
    return run.world.from_main({**row, **evaluate(run, val_x, val_y)} if run.world.main else None)


def _checkpoint(run: _Run, model_config: dict[str, Any], signature: dict[str, Any]) -> None:
    """Everything a resumed run needs, written atomically to the run's checkpoint."""
    save_checkpoint(run.checkpoint_path, {
        "model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(), "scaler": run.scaler.state_dict(),
        "state": asdict(run.state), "model_config": model_config, "signature": signature,
        "world_size": run.world.size,
    })


def _labels(labels: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(device)


def _build(model, augment, config, device, amp_dtype, steps_per_epoch, checkpoint_path,
           world: World = World()) -> _Run:
    """Seed, move the model, and make its optimiser, schedule, scaler, loss and autocast; in a
    process group, the model of the step is DistributedDataParallel's."""
    torch.manual_seed(config.seed)
    model = model.to(device).to(memory_format=torch.channels_last)
    model, step_model = distributed.wrap(model, device, world, config.distributed.sync_batchnorm)
    optimizer = make_optimizer(model, config)
    return _Run(
        model=model, step_model=torch.compile(step_model) if config.compile else step_model,
        optimizer=optimizer, scheduler=build_scheduler(optimizer, config, steps_per_epoch),
        scaler=torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16),
        loss_fn=nn.CrossEntropyLoss(label_smoothing=config.label_smoothing),
        autocast=autocast_factory(device, amp_dtype), augment=augment, config=config,
        steps_per_epoch=steps_per_epoch, total_steps=config.total_steps(steps_per_epoch),
        epochs=config.num_epochs(steps_per_epoch), checkpoint_path=checkpoint_path, world=world,
    )


def _restore(run: _Run, checkpoint: dict[str, Any]) -> None:
    """Continue where ``checkpoint`` ended: weights, optimiser, schedule, scaler, history. (Each
    epoch seeds its own order and augmentation, so no RNG state needs restoring.)"""
    run.model.load_state_dict(checkpoint["model"])
    run.optimizer.load_state_dict(checkpoint["optimizer"])
    run.scheduler.load_state_dict(checkpoint["scheduler"])
    run.scaler.load_state_dict(checkpoint["scaler"])
    run.state = _State(**checkpoint["state"])
    logger.info("Resumed from %s after epoch %d.", run.checkpoint_path, run.state.epoch)
    written_by = checkpoint.get("world_size", 1)
    if written_by != run.world.size:
        logger.warning(
            "Resuming a run of %d process(es) on %d: the data order, weights, optimiser and "
            "schedule continue exactly, but each process now takes %d images per step (was %d), "
            "so augmentation draws and per-process BatchNorm statistics differ from an "
            "uninterrupted run.", written_by, run.world.size, run.config.batch_size // run.world.size,
            run.config.batch_size // written_by)


@dataclass
class _Totals:
    """An epoch's running sums, kept on the device: read every ``log_every`` steps, not each step."""

    loss: torch.Tensor
    correct: torch.Tensor
    skipped: torch.Tensor
    finite: torch.Tensor  # every loss since the epoch began was finite

    @classmethod
    def zeros(cls, device: torch.device) -> _Totals:
        zero = torch.zeros((), device=device)
        return cls(zero.clone(), zero.clone(), zero.clone(), torch.ones((), dtype=torch.bool, device=device))

    def copy(self) -> _Totals:
        return _Totals(*(t.clone() for t in (self.loss, self.correct, self.skipped, self.finite)))


def train_one_epoch(run: _Run, epoch: int, images: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
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
    order = epoch_order(config.seed, epoch, len(images)).to(images.device)
    torch.manual_seed(epoch_seed(config.seed, "augment", epoch, world.rank))
    totals = _Totals.zeros(images.device)
    show_bar = config.progress_bar and world.main and sys.stderr.isatty()
    bar = tqdm(total=n_steps, desc=f"epoch {epoch}/{run.epochs}", disable=not show_bar,
               leave=False, unit="step")
    before = (epoch - 1) * run.steps_per_epoch  # steps of the earlier epochs
    for first, last in _intervals(n_steps, config.log_every, [k - before for k in run.keep_at]):
        steps = range(first, last)
        snapshot = _Snapshot.take(run, totals)
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


def _train_step(run: _Run, epoch: int, step: int, images: torch.Tensor, labels: torch.Tensor,
                order: torch.Tensor, totals: _Totals, check: bool) -> None:
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
class _Snapshot:
    """What an interval of steps changes, to replay it: weights, optimiser, schedule, scaler,
    RNG, the running sums and the LR history's length."""

    model: dict[str, Any]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    scaler: dict[str, Any]
    rng: dict[str, Any]
    totals: _Totals
    n_lr: int

    @classmethod
    def take(cls, run: _Run, totals: _Totals) -> _Snapshot:
        return cls(copy.deepcopy(run.model.state_dict()), copy.deepcopy(run.optimizer.state_dict()),
                   copy.deepcopy(run.scheduler.state_dict()), copy.deepcopy(run.scaler.state_dict()),
                   _rng_state(), totals.copy(), len(run.state.history["lr_per_step"]))

    def restore(self, run: _Run, totals: _Totals) -> None:
        run.model.load_state_dict(self.model)
        run.optimizer.load_state_dict(self.optimizer)
        run.scheduler.load_state_dict(self.scheduler)
        run.scaler.load_state_dict(self.scaler)
        _set_rng_state(self.rng)
        for name in ("loss", "correct", "skipped", "finite"):
            setattr(totals, name, getattr(self.totals, name).clone())
        del run.state.history["lr_per_step"][self.n_lr:]


def _optimiser_step(run: _Run, loss: torch.Tensor) -> torch.Tensor:
    """Backward, step and schedule; 1 (a device tensor) if GradScaler skipped the step."""
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    scale_before = run.scaler._get_scale_async().clone() if run.scaler.is_enabled() else None
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.scheduler.step()
    if scale_before is None:
        return torch.zeros((), device=loss.device)
    return (run.scaler._get_scale_async() < scale_before).float()


def _non_finite(run: _Run, epoch: int, step: int, lr: float, loss: torch.Tensor,
                x: torch.Tensor, y: torch.Tensor) -> NonFiniteLossError:
    """The NaN trap's error: when, at what LR, the first non-finite layer, the last good checkpoint."""
    where = first_non_finite_layer(run.model, x, y, run.loss_fn, run.autocast)
    global_step = (epoch - 1) * run.steps_per_epoch + step + 1
    return NonFiniteLossError(
        non_finite_message(loss.item(), epoch, step + 1, run.steps_per_epoch, global_step, lr,
                           where, run.checkpoint_path, run.state.epoch),
        epoch=epoch, step=global_step, lr=lr, layer=where,
        lr_per_step=[*run.state.history["lr_per_step"], lr],
    )


def evaluate(run: _Run, val_x: torch.Tensor, val_y: torch.Tensor) -> dict[str, float]:
    """Validation loss and accuracy (NaN without a validation split)."""
    if not len(val_y):
        return {"val_loss": math.nan, "val_accuracy": math.nan}
    logits = predict_logits(run.model, val_x, run.augment, run.autocast)
    return {"val_loss": nn.functional.cross_entropy(logits, val_y).item(),
            "val_accuracy": (logits.argmax(1) == val_y).float().mean().item()}


def _record(run: _Run, row: dict[str, Any]) -> None:
    """Append the epoch's row to the history and log it."""
    for key, value in row.items():
        run.state.history[key].append(value)
    logger.info(
        "epoch %d/%d  loss %.4f  acc %.4f  val_loss %.4f  val_acc %.4f  lr %.3g  %.1fs  %.0f img/s%s",
        row["epoch"], run.epochs, row["train_loss"], row["train_accuracy"], row["val_loss"],
        row["val_accuracy"], row["lr"], row["seconds"], row["images_per_second"],
        f"  skipped {row['skipped_steps']}" if row["skipped_steps"] else "",
    )


def _update_best(run: _Run, epoch: int, val_accuracy: float, has_val: bool) -> bool:
    """Keep the best epoch's weights (the last epoch without a validation split); True to stop."""
    state = run.state
    state.epoch = epoch
    score = val_accuracy if has_val else epoch
    if score > state.best_accuracy:
        state.best_accuracy, state.best_epoch = score, epoch
        state.best_state = {k: v.detach().to("cpu", copy=True) for k, v in run.model.state_dict().items()}
        state.epochs_without_improvement = 0
    else:
        state.epochs_without_improvement += 1
    stop = 0 < run.config.early_stopping_patience <= state.epochs_without_improvement
    state.finished = stop or epoch == run.epochs
    return stop


def _keep_now(run: _Run, step: int, val_x: torch.Tensor, val_y: torch.Tensor) -> None:
    """After ``step`` steps (one of ``keep_at``): keep the better of the best epoch so far and
    the weights now, by validation accuracy. Training goes on unchanged (the best epoch is
    still chosen among epoch ends); in a process group rank 0 keeps."""
    state = run.state
    if not run.world.main or step in state.kept:
        return
    accuracy = evaluate(run, val_x, val_y)["val_accuracy"] if len(val_y) else math.inf
    if state.best_state is None or accuracy > state.best_accuracy:
        state.kept[step] = {k: v.detach().to("cpu", copy=True) for k, v in run.model.state_dict().items()}
    else:
        state.kept[step] = state.best_state


def _keep_at_epoch_end(run: _Run, epoch: int) -> None:
    """The best weights (this epoch included) for the step of ``keep_at`` that ends this epoch,
    and, once the run is finished (the last epoch, or early stopping), for every later one."""
    done = min(epoch * run.steps_per_epoch, run.total_steps)
    for step in run.keep_at:
        if step <= done or run.state.finished:
            run.state.kept.setdefault(step, run.state.best_state)


def _result(run: _Run, has_val: bool, device: torch.device, amp_dtype) -> FitResult:
    state = run.state
    history = copy.deepcopy(state.history)
    history.update(world_size=run.world.size, global_batch_size=run.config.batch_size,
                   best_epoch=state.best_epoch,
                   best_val_accuracy=state.best_accuracy if has_val else None,
                   train_seconds=float(sum(history["seconds"])),
                   steps_per_epoch=run.steps_per_epoch, total_steps=run.total_steps,
                   stopped_early=len(history["epoch"]) < run.epochs,
                   warmup_steps=run.config.warmup_steps(run.steps_per_epoch))
    return FitResult(best_state=state.best_state, history=history, device=str(device),
                     amp=amp_name(amp_dtype), kept=dict(state.kept))
