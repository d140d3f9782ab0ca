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
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from simple_cnn.augment import BatchAugment
from simple_cnn.errors import ConfigError
from simple_cnn.training import distributed
from simple_cnn.training.checkpoint import (
    checkpoint_lock,
    load_checkpoint,
    run_signature,
    save_checkpoint,
)
from simple_cnn.training.config import TrainConfig
from simple_cnn.training.device import (
    amp_name,
    autocast_factory,
    configure_cuda,
    resolve_amp,
    resolve_device,
    to_device_images,
)
from simple_cnn.training.distributed import World
from simple_cnn.training.evaluation import evaluate
from simple_cnn.training.schedule import build_scheduler
from simple_cnn.training.state import FitResult, RunState, TrainingRun
from simple_cnn.training.steps import train_one_epoch

logger = logging.getLogger(__name__)


def make_optimizer(model: nn.Module, config: TrainConfig, fused: bool = False) -> torch.optim.Optimizer:
    """SGD (Nesterov) or AdamW, with no weight decay on norm parameters and biases (decay there
    only fights the normalisation). ``fused`` (on CUDA): one kernel for the whole update, and
    GradScaler hands it the found-inf flag on the device instead of reading it on the host."""
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": config.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if config.optimizer == "sgd":
        sgd = torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum,
                              nesterov=config.nesterov, fused=fused or None)
        if fused and config.momentum > 0:
            zero_momentum(sgd)
        return sgd
    return torch.optim.AdamW(groups, lr=config.lr, fused=fused or None)


def zero_momentum(sgd: torch.optim.SGD) -> None:
    """Momentum buffers of zeros before the first step. Fused SGD makes them with
    ``empty_like`` at its first step and fills them in the kernel, which a step that GradScaler
    skips (fp16's first steps often overflow) never runs: the next step then reads
    uninitialised memory (found by ``benchmarks/gpu_check.py``'s overflow stage on an H200).
    With zeros the first step is the same (no dampening: ``buf = momentum * 0 + grad``)."""
    for group in sgd.param_groups:
        for parameter in group["params"]:
            sgd.state[parameter]["momentum_buffer"] = torch.zeros_like(parameter)


def fit(
    model: nn.Module,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    val_images: np.ndarray,
    val_labels: np.ndarray,
    augment: BatchAugment,
    config: TrainConfig,
    checkpoint_path: str | Path | None,
    model_config: dict[str, Any] | None = None,
    on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None,
    keep_at: tuple[int, ...] = (),
) -> FitResult:
    """Train ``model``; return the weights of its best validation epoch and the history (and
    the best weights as they were after each number of steps in ``keep_at``).

    Seed the RNG before building ``model`` for reproducible initial weights; each epoch seeds
    its order and augmentation (and dropout) from ``config.seed``. The checkpoint at
    ``checkpoint_path`` belongs to this call while it runs: a concurrent one is refused (None:
    no checkpoint, and no resume: a study's run is redone whole). In a process group (torchrun,
    or ``fit_on_processes``) this is one rank's part of the run.
    """
    world = distributed.current()
    path = None if checkpoint_path is None else Path(checkpoint_path)
    if path is None and config.resume:
        raise ConfigError("cnn.training.resume is true but this run keeps no checkpoint to resume.")
    with checkpoint_lock(path) if world.main and path else contextlib.nullcontext():
        return _fit(world, model, train_images, train_labels, val_images, val_labels, augment, config,
                    path, model_config or {}, on_epoch_end, tuple(keep_at))


def _warn_small_batch_norm(model: nn.Module, batch_size: int) -> None:
    if batch_size <= 2 and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        logger.warning(
            "batch_size=%d with BatchNorm: batch statistics over %d image(s) are meaningless, so "
            "training stays near chance. Use norm: group or layer (they normalise each image on "
            "its own), or a batch of 16 or more.", batch_size, batch_size)


def _fit(world: World, model, train_images, train_labels, val_images, val_labels, augment, config,
         checkpoint_path: Path | None, model_config: dict[str, Any], on_epoch_end,
         keep_at: tuple[int, ...] = ()) -> FitResult:
    device = world.device(resolve_device(config.device))
    distributed.check_world(world.size, config, device, world.local_size)
    amp_dtype = resolve_amp(config.amp, device)
    steps_per_epoch = config.steps_per_epoch(len(train_images))
    config.check_schedule(steps_per_epoch)
    _warn_small_batch_norm(model, config.batch_size // world.size)
    signature = run_signature(config, augment.preset, train_images, train_labels, amp_name(amp_dtype))
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
        if world.main and checkpoint_path is not None:
            _checkpoint(run, checkpoint_path, model_config, signature)
        if on_epoch_end is not None:
            on_epoch_end(epoch, row)
        if stop:
            logger.info("Early stopping after epoch %d: val accuracy has not improved for %d "
                        "epochs (best %.4f at epoch %d).", epoch, run.state.epochs_without_improvement,
                        run.state.best_accuracy, run.state.best_epoch)
            break
    return _result(run, has_val=len(val_labels) > 0, device=device, amp_dtype=amp_dtype)


def _log_start(run: TrainingRun, device: torch.device, amp_dtype: torch.dtype | None, n_images: int) -> None:
    world, config = run.world, run.config
    processes = (f", {world.size} processes of {config.batch_size // world.size} images per step"
                 if world.size > 1 else "")
    logger.info("Training on %s (AMP %s): %d images, %d steps/epoch, %d epochs (%d steps), "
                "augmentation %s%s.", device, amp_name(amp_dtype), n_images, run.steps_per_epoch,
                run.epochs, run.total_steps, run.augment.preset, processes)


def _epoch_row(run: TrainingRun, epoch: int, images: torch.Tensor, labels: torch.Tensor,
               val_x: torch.Tensor, val_y: torch.Tensor) -> dict[str, Any]:
    """Train one epoch, then evaluate. In a process group rank 0 evaluates and its row is every
    rank's (with its BatchNorm statistics copied first), so all ranks hold the same model and
    make the same decisions (best epoch, early stopping)."""
    row = train_one_epoch(run, epoch, images, labels)
    run.world.copy_buffers(run.model)
    return run.world.from_main({**row, **evaluate(run, val_x, val_y)} if run.world.main else None)


def _checkpoint(run: TrainingRun, path: Path, model_config: dict[str, Any],
                signature: dict[str, Any]) -> None:
    """Everything a resumed run needs, written atomically to ``path``."""
    save_checkpoint(path, {
        "model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(), "scaler": run.scaler.state_dict(),
        "state": asdict(run.state), "model_config": model_config, "signature": signature,
        "world_size": run.world.size,
    })


def _labels(labels: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(device)


def _build(model, augment, config, device, amp_dtype, steps_per_epoch, checkpoint_path,
           world: World = World()) -> TrainingRun:
    """Seed, move the model and the augmentation to the device, and make the optimiser (fused on
    CUDA), schedule, scaler, loss and autocast; in a process group, the model of the step is
    DistributedDataParallel's."""
    torch.manual_seed(config.seed)
    configure_cuda(device, amp_dtype)
    model = model.to(device).to(memory_format=torch.channels_last)
    augment = augment.to(device)  # kornia draws its parameters where its modules are
    model, step_model = distributed.wrap(model, device, world, config.distributed.sync_batchnorm)
    optimizer = make_optimizer(model, config, fused=device.type == "cuda")
    return TrainingRun(
        model=model, step_model=torch.compile(step_model) if config.compile else step_model,
        optimizer=optimizer, scheduler=build_scheduler(optimizer, config, steps_per_epoch),
        scaler=torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16),
        loss_fn=nn.CrossEntropyLoss(label_smoothing=config.label_smoothing),
        autocast=autocast_factory(device, amp_dtype), augment=augment, config=config,
        steps_per_epoch=steps_per_epoch, total_steps=config.total_steps(steps_per_epoch),
        epochs=config.num_epochs(steps_per_epoch), checkpoint_path=checkpoint_path, world=world,
    )


def _restore(run: TrainingRun, checkpoint: dict[str, Any]) -> None:
    """Continue where ``checkpoint`` ended: weights, optimiser, schedule, scaler, history. (Each
    epoch seeds its own order and augmentation, so no RNG state needs restoring.)"""
    run.model.load_state_dict(checkpoint["model"])
    run.optimizer.load_state_dict(checkpoint["optimizer"])
    run.scheduler.load_state_dict(checkpoint["scheduler"])
    run.scaler.load_state_dict(checkpoint["scaler"])
    run.state = RunState(**checkpoint["state"])
    logger.info("Resumed from %s after epoch %d.", run.checkpoint_path, run.state.epoch)
    written_by = checkpoint.get("world_size", 1)
    if written_by != run.world.size:
        logger.warning(
            "Resuming a run of %d process(es) on %d: the data order, weights, optimiser and "
            "schedule continue exactly, but each process now takes %d images per step (was %d), "
            "so augmentation draws and per-process BatchNorm statistics differ from an "
            "uninterrupted run.", written_by, run.world.size, run.config.batch_size // run.world.size,
            run.config.batch_size // written_by)


def _record(run: TrainingRun, row: dict[str, Any]) -> None:
    """Append the epoch's row to the history and log it."""
    for key, value in row.items():
        run.state.history[key].append(value)
    logger.info(
        "epoch %d/%d  loss %.4f  acc %.4f  val_loss %.4f  val_acc %.4f  lr %.3g  %.1fs  %.0f img/s%s",
        row["epoch"], run.epochs, row["train_loss"], row["train_accuracy"], row["val_loss"],
        row["val_accuracy"], row["lr"], row["seconds"], row["images_per_second"],
        f"  skipped {row['skipped_steps']}" if row["skipped_steps"] else "",
    )


def _update_best(run: TrainingRun, epoch: int, val_accuracy: float, has_val: bool) -> bool:
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


def _keep_now(run: TrainingRun, step: int, val_x: torch.Tensor, val_y: torch.Tensor) -> None:
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


def _keep_at_epoch_end(run: TrainingRun, epoch: int) -> None:
    """The best weights (this epoch included) for the step of ``keep_at`` that ends this epoch,
    and, once the run is finished (the last epoch, or early stopping), for every later one."""
    done = min(epoch * run.steps_per_epoch, run.total_steps)
    for step in run.keep_at:
        if (step <= done or run.state.finished) and run.state.best_state is not None:
            run.state.kept.setdefault(step, run.state.best_state)


def _result(run: TrainingRun, has_val: bool, device: torch.device, amp_dtype) -> FitResult:
    state = run.state
    if state.best_state is None:
        raise RuntimeError(f"No epoch of this run had a finite validation accuracy "
                           f"({state.history.get('val_accuracy')}), so there are no best weights.")
    history: dict[str, Any] = copy.deepcopy(state.history)
    history.update(world_size=run.world.size, global_batch_size=run.config.batch_size,
                   best_epoch=state.best_epoch,
                   best_val_accuracy=state.best_accuracy if has_val else None,
                   train_seconds=float(sum(history["seconds"])),
                   steps_per_epoch=run.steps_per_epoch, total_steps=run.total_steps,
                   stopped_early=len(history["epoch"]) < run.epochs,
                   warmup_steps=run.config.warmup_steps(run.steps_per_epoch))
    return FitResult(best_state=state.best_state, history=history, device=str(device),
                     amp=amp_name(amp_dtype), kept=dict(state.kept))
