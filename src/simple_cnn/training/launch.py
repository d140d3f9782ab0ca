"""Where ``fit`` runs: in this process, in the processes torchrun started, or in
``cnn.training.distributed.nproc_per_node`` new processes on this machine."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from simple_cnn import launcher
from simple_cnn.augment import BatchAugment
from simple_cnn.training import distributed
from simple_cnn.training.config import TrainConfig
from simple_cnn.training.device import resolve_device
from simple_cnn.training.loop import FitResult, fit

logger = logging.getLogger(__name__)


def fit_on_processes(
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
    """``fit`` on the processes this run asks for; rank 0's result.

    Under torchrun every process calls this and joins torchrun's process group. Otherwise, with
    ``nproc_per_node`` > 1, the settings are checked here, before any process starts, and the
    workers (``on_epoch_end`` and the model must be picklable) return rank 0's result."""
    args = (model, train_images, train_labels, val_images, val_labels, augment, config,
            checkpoint_path, model_config, on_epoch_end, keep_at)
    settings, torchrun = config.distributed, launcher.under_torchrun()
    if settings.nproc_per_node == 1 and not torchrun:
        return fit(*args)
    device = resolve_device(config.device)
    backend = distributed.backend_for(settings.backend, device)
    if torchrun:
        if settings.nproc_per_node != 1:
            logger.info("Started by torchrun: it decides the processes, so "
                        "cnn.training.distributed.nproc_per_node=%d is not used.",
                        settings.nproc_per_node)
        with distributed.joined(backend):
            return fit(*args)
    distributed.check_world(settings.nproc_per_node, config, device)
    config.check_schedule(config.steps_per_epoch(len(train_images)))
    logger.info("Starting %d training processes (%s).", settings.nproc_per_node, backend)
    return distributed.launch(_fit_on_rank, args, settings.nproc_per_node, backend,
                              settings.threads_per_process, device.type)[0]


def _fit_on_rank(model: nn.Module, *args: Any) -> FitResult | None:
    """``fit`` in a worker: rank 0's result goes back (the others' are the same but for times).
    The model is copied first: spawned workers receive its CPU tensors in shared memory, and
    each rank must train its own copy."""
    result = fit(copy.deepcopy(model), *args)
    return result if distributed.current().main else None
