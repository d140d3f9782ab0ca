"""The training loop: data resident on the device, batched augmentation, AMP, warmup, checkpoints.

``fit`` trains a model on uint8 image tensors and returns the best weights (by validation
accuracy) with the history. Every epoch ends with a checkpoint (model, optimiser, scheduler,
grad scaler, RNG states, history, early-stopping state) written atomically, so a run killed at
any point resumes with ``resume=True`` and ends exactly as an uninterrupted one would (on CPU).
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
from simple_cnn.training.checkpoint import (
    checkpoint_lock,
    load_checkpoint,
    run_signature,
    save_checkpoint,
)
from simple_cnn.training.config import TrainConfig, resolve_amp, resolve_device
from simple_cnn.training.diagnostics import NonFiniteLossError, first_non_finite_layer
from simple_cnn.training.schedule import build_scheduler

logger = logging.getLogger(__name__)


@dataclass
class FitResult:
    best_state: dict[str, torch.Tensor]
    history: dict[str, Any]
    device: str
    amp: str


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
) -> FitResult:
    """Train ``model``; return the weights of its best validation epoch and the history.

    Seed the RNG before building ``model`` for reproducible initial weights; ``fit`` re-seeds
    with ``config.seed`` for shuffling, augmentation and dropout. The checkpoint at
    ``checkpoint_path`` belongs to this call while it runs: a concurrent one is refused.
    """
    with checkpoint_lock(Path(checkpoint_path)):
        return _fit(model, train_images, train_labels, val_images, val_labels, augment, config,
                    Path(checkpoint_path), model_config or {}, on_epoch_end)


def _warn_small_batch_norm(model: nn.Module, batch_size: int) -> None:
    if batch_size <= 2 and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        logger.warning(
            "batch_size=%d with BatchNorm: batch statistics over %d image(s) are meaningless, so "
            "training stays near chance. Use norm: group or layer (they normalise each image on "
            "its own), or a batch of 16 or more.", batch_size, batch_size)


def _fit(model, train_images, train_labels, val_images, val_labels, augment, config,
         checkpoint_path: Path, model_config: dict[str, Any], on_epoch_end) -> FitResult:
    device = resolve_device(config.device)
    amp_dtype = resolve_amp(config.amp, device)
    steps_per_epoch = config.steps_per_epoch(len(train_images))
    config.check_schedule(steps_per_epoch)
    total_steps, epochs = config.total_steps(steps_per_epoch), config.num_epochs(steps_per_epoch)
    _warn_small_batch_norm(model, config.batch_size)
    signature = run_signature(config, augment.preset, train_images, train_labels)
    checkpoint = load_checkpoint(checkpoint_path, model_config, signature) if config.resume else None

    torch.manual_seed(config.seed)
    model = model.to(device).to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, config)
    scheduler = build_scheduler(optimizer, config, steps_per_epoch)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    autocast = autocast_factory(device, amp_dtype)
    step_model = torch.compile(model) if config.compile else model

    state = _State()
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        scaler.load_state_dict(checkpoint["scaler"])
        state = _State(**checkpoint["state"])
        _set_rng_state(checkpoint["rng"])
        logger.info("Resumed from %s after epoch %d.", checkpoint_path, state.epoch)

    images = to_device_images(train_images, device)
    labels = torch.from_numpy(np.asarray(train_labels, dtype=np.int64)).to(device)
    val_x = to_device_images(val_images, device)
    val_y = torch.from_numpy(np.asarray(val_labels, dtype=np.int64)).to(device)
    logger.info(
        "Training on %s (AMP %s): %d images, %d steps/epoch, %d epochs (%d steps), augmentation %s.",
        device, amp_name(amp_dtype), len(images), steps_per_epoch, epochs, total_steps, augment.preset,
    )

    from tqdm.auto import tqdm

    show_bar = config.progress_bar and sys.stderr.isatty()
    for epoch in range(state.epoch + 1, epochs + 1):
        n_steps = min(steps_per_epoch, total_steps - (epoch - 1) * steps_per_epoch)
        model.train()
        started = time.perf_counter()
        order = torch.randperm(len(images), device=device)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device)
        skipped = 0
        bar = tqdm(range(n_steps), desc=f"epoch {epoch}/{epochs}",
                   disable=not show_bar, leave=False, unit="step")
        for step in bar:
            index = order[step * config.batch_size : (step + 1) * config.batch_size]
            x, y = augment(images[index], labels[index])
            x = x.contiguous(memory_format=torch.channels_last)
            lr = optimizer.param_groups[0]["lr"]
            with autocast():
                logits = step_model(x)
                loss = loss_fn(logits, y)
            if not torch.isfinite(loss):
                where = first_non_finite_layer(model, x, y, loss_fn, autocast)
                last_good = (f"{checkpoint_path} (epoch {state.epoch})" if state.epoch
                             else "none yet (the failure came in the first epoch)")
                global_step = (epoch - 1) * steps_per_epoch + step + 1
                raise NonFiniteLossError(
                    f"Loss became {loss.item()} at epoch {epoch}, step {step + 1}/"
                    f"{steps_per_epoch} (global step {global_step}) "
                    f"with lr {lr:.4g}. First non-finite: {where}. Training stopped; the last "
                    f"good checkpoint is {last_good}. Try a lower cnn.training.lr, a longer "
                    "warmup, a normalisation layer (cnn.model.norm), or amp: off.",
                    epoch=epoch, step=global_step, lr=lr, layer=where,
                    lr_per_step=[*state.history["lr_per_step"], lr],
                )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scale_before = scaler.get_scale() if scaler.is_enabled() else None
            scaler.step(optimizer)
            scaler.update()
            if scale_before is not None and scaler.get_scale() < scale_before:
                skipped += 1  # inf/NaN gradients: GradScaler skipped this optimiser step
            scheduler.step()
            state.history["lr_per_step"].append(lr)
            with torch.no_grad():
                loss_sum += loss.detach().float()
                hard = y if y.ndim == 1 else y.argmax(1)
                correct += (logits.argmax(1) == hard).sum()
            if show_bar and step % 20 == 0:
                seen = (step + 1) * config.batch_size
                bar.set_postfix(loss=f"{loss.item():.3f}", acc=f"{correct.item() / seen:.3f}",
                                lr=f"{lr:.3g}",
                                img_s=f"{seen / (time.perf_counter() - started):.0f}")
        bar.close()
        seconds = time.perf_counter() - started

        val_loss = val_accuracy = math.nan  # no validation split: keep the last epoch
        if len(val_y):
            val_logits = predict_logits(model, val_x, augment, autocast)
            val_loss = nn.functional.cross_entropy(val_logits, val_y).item()
            val_accuracy = (val_logits.argmax(1) == val_y).float().mean().item()
        n_seen = n_steps * config.batch_size
        row = {
            "epoch": epoch, "train_loss": loss_sum.item() / n_steps,
            "train_accuracy": correct.item() / n_seen, "val_loss": val_loss,
            "val_accuracy": val_accuracy, "lr": optimizer.param_groups[0]["lr"],
            "seconds": seconds, "images_per_second": n_seen / seconds, "skipped_steps": skipped,
        }
        for key, value in row.items():
            state.history[key].append(value)
        logger.info(
            "epoch %d/%d  loss %.4f  acc %.4f  val_loss %.4f  val_acc %.4f  lr %.3g  %.1fs  "
            "%.0f img/s%s", epoch, epochs, row["train_loss"], row["train_accuracy"],
            val_loss, val_accuracy, row["lr"], seconds, row["images_per_second"],
            f"  skipped {skipped}" if skipped else "",
        )

        state.epoch = epoch
        score = val_accuracy if len(val_y) else epoch
        if score > state.best_accuracy:
            state.best_accuracy, state.best_epoch = score, epoch
            state.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            state.epochs_without_improvement = 0
        else:
            state.epochs_without_improvement += 1
        stop = 0 < config.early_stopping_patience <= state.epochs_without_improvement
        state.finished = stop or epoch == epochs
        save_checkpoint(checkpoint_path, {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
            "rng": _rng_state(), "state": asdict(state), "model_config": model_config,
            "signature": signature,
        })
        if on_epoch_end is not None:
            on_epoch_end(epoch, row)
        if stop:
            logger.info("Early stopping after epoch %d: val accuracy has not improved for %d "
                        "epochs (best %.4f at epoch %d).", epoch, state.epochs_without_improvement,
                        state.best_accuracy, state.best_epoch)
            break

    history = copy.deepcopy(state.history)
    has_val = len(val_labels) > 0  # without a validation split the last epoch is kept
    history.update(best_epoch=state.best_epoch,
                   best_val_accuracy=state.best_accuracy if has_val else None,
                   train_seconds=float(sum(history["seconds"])),
                   steps_per_epoch=steps_per_epoch, total_steps=total_steps,
                   warmup_steps=config.warmup_steps(steps_per_epoch))
    return FitResult(best_state=state.best_state, history=history, device=str(device),
                     amp=amp_name(amp_dtype))
