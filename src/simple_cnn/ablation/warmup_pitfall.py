"""The warmup wrapper people write by hand, and why the project composes library schedulers.

``HandRolledWarmup`` ramps the LR linearly, then hands over to a wrapped scheduler by calling
its ``get_lr()`` without ever stepping it. PyTorch's schedulers are *chainable*: ``get_lr()``
computes the next LR from the optimiser's current one and the scheduler's own step count, so
an un-stepped ``StepLR`` never reaches a decay boundary and returns the current LR forever:
the decay silently never happens. ``LinearLR`` + ``SequentialLR`` (the project's schedule)
does what the wrapper meant to do. Kept here only to draw the difference.
"""

from __future__ import annotations

import warnings

import torch
from torch.optim.lr_scheduler import LRScheduler, StepLR

from simple_cnn.training.config import TrainConfig
from simple_cnn.training.schedule import build_scheduler


class HandRolledWarmup:
    """DON'T use: the common mistake, written out to show what it produces."""

    def __init__(self, optimizer: torch.optim.Optimizer, after: LRScheduler, warmup_steps: int,
                 start_factor: float) -> None:
        self.optimizer, self.after = optimizer, after
        self.warmup_steps, self.start_factor = warmup_steps, start_factor
        self.base_lr = optimizer.param_groups[0]["lr"]
        self.steps = 0
        self._set(self.base_lr * start_factor)

    def step(self) -> None:
        self.steps += 1
        if self.steps < self.warmup_steps:
            ramp = self.start_factor + (1 - self.start_factor) * self.steps / self.warmup_steps
            self._set(self.base_lr * ramp)
        else:
            with warnings.catch_warnings():  # torch warns about exactly this misuse
                warnings.simplefilter("ignore", UserWarning)
                self._set(float(self.after.get_lr()[0]))  # the bug: `after` is never stepped

    def _set(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr


def lr_traces(config: TrainConfig, steps_per_epoch: int) -> dict[str, list[float]]:
    """LR per step of both schedules for ``config`` with a step decay (``StepLR``)."""
    config = config.model_copy(update={"scheduler": "step", "max_steps": None})
    total = config.total_steps(steps_per_epoch)
    traces = {}
    for name in ("hand-rolled wrapper around StepLR", "LinearLR + SequentialLR (the project's)"):
        optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=config.lr)
        if name.startswith("hand"):
            decay = StepLR(optimizer, step_size=config.step_size_epochs * steps_per_epoch,
                           gamma=config.step_gamma)
            scheduler: HandRolledWarmup | LRScheduler = HandRolledWarmup(optimizer, decay, config.warmup_steps(steps_per_epoch),
                                         config.warmup_start_factor)
        else:
            scheduler = build_scheduler(optimizer, config, steps_per_epoch)
        trace = []
        for _ in range(total):
            trace.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        traces[name] = trace
    return traces
