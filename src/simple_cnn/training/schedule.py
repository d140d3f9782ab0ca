"""Learning-rate warmup then decay, composed from ``torch.optim.lr_scheduler``.

Warmup is a ``LinearLR`` from ``warmup_start_factor x lr`` to ``lr``; ``SequentialLR`` then
hands over to the decay (cosine to 0, linear to 0, step, or constant). Both are stepped once
per batch. (A hand-written "WarmupScheduler" that calls an inner scheduler's ``get_lr()`` gets
chainable schedulers wrong; composing the library's schedulers does not.)
"""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import (
    ConstantLR,
    CosineAnnealingLR,
    LinearLR,
    LRScheduler,
    SequentialLR,
    StepLR,
)

from simple_cnn.training.config import TrainConfig


def build_scheduler(optimizer: Optimizer, config: TrainConfig, steps_per_epoch: int) -> LRScheduler:
    config.check_schedule(steps_per_epoch)
    total = config.total_steps(steps_per_epoch)
    warmup = config.warmup_steps(steps_per_epoch)
    decay_steps = total - warmup
    if config.scheduler == "cosine":
        decay: LRScheduler = CosineAnnealingLR(optimizer, T_max=decay_steps, eta_min=0.0)
    elif config.scheduler == "linear":
        decay = LinearLR(optimizer, start_factor=1.0, end_factor=0.0, total_iters=decay_steps)
    elif config.scheduler == "step":
        decay = StepLR(optimizer, step_size=config.step_size_epochs * steps_per_epoch,
                       gamma=config.step_gamma)
    else:
        decay = ConstantLR(optimizer, factor=1.0, total_iters=0)
    if warmup == 0:
        return decay
    ramp = LinearLR(optimizer, start_factor=config.warmup_start_factor, end_factor=1.0,
                    total_iters=warmup)
    return SequentialLR(optimizer, [ramp, decay], milestones=[warmup])
