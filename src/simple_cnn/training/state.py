"""What a training run holds while it trains: its parts (model, optimiser, schedule, scaler,
autocast, augmentation), its state between epochs (what a resumed run needs), the running sums
of an epoch, and what ``fit`` returns."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from simple_cnn.augment import BatchAugment
from simple_cnn.training.config import TrainConfig
from simple_cnn.training.distributed import World


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
class RunState:
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


@dataclass
class TrainingRun:
    """One training run's parts: what each epoch, evaluation and checkpoint works with."""

    model: nn.Module
    step_model: Callable[..., Any]  # the compiled model when config.compile, else ``model``
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
    checkpoint_path: Path | None
    world: World = World()
    state: RunState = field(default_factory=RunState)
    keep_at: tuple[int, ...] = ()  # steps after which to keep the weights the run would end with
    at_kept_step: Callable[[int], None] = lambda step: None  # called after each such step

    def steps_in(self, epoch: int) -> int:
        """Steps of ``epoch`` (with ``max_steps`` the last epoch is cut short)."""
        return min(self.steps_per_epoch, self.total_steps - (epoch - 1) * self.steps_per_epoch)


@dataclass
class Totals:
    """An epoch's running sums, kept on the device: read every ``log_every`` steps, not each step."""

    loss: torch.Tensor
    correct: torch.Tensor
    skipped: torch.Tensor
    finite: torch.Tensor  # every loss since the epoch began was finite

    @classmethod
    def zeros(cls, device: torch.device) -> Totals:
        zero = torch.zeros((), device=device)
        return cls(zero.clone(), zero.clone(), zero.clone(), torch.ones((), dtype=torch.bool, device=device))

    def copy(self) -> Totals:
        return Totals(*(t.clone() for t in (self.loss, self.correct, self.skipped, self.finite)))


