"""Training configuration, built from ``cnn.training`` params and checked before training starts.

Light (no torch at import), like every module of parameters: the device is ``device.py``'s."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from simple_cnn.errors import ConfigError
from simple_cnn.params import WORD, Float, Int, Model, invalid

PREFIX = "cnn.training"
SEED_RANGE = (0, 2**32 - 1)  # what NumPy's and torch's generators accept
AmpMode = Annotated[Literal["auto", "fp16", "bf16", "off"], WORD]  # `amp: off` arrives as False


class DistributedConfig(Model):
    """``cnn.training.distributed``: training on several processes (DistributedDataParallel).
    Under ``torchrun`` the launcher decides the processes and ``nproc_per_node`` is not used."""

    nproc_per_node: Int = Field(1, ge=1)
    backend: Literal["auto", "gloo", "nccl"] = "auto"

    threads_per_process: Int | None = Field(None, ge=1)
    sync_batchnorm: bool = False


class TrainConfig(Model):
    """The ``cnn.training`` parameters. Rules that need the data size (batch vs training set,
    warmup vs training length in steps) are checked by :meth:`steps_per_epoch` and
    :meth:`check_schedule` when the training set is known."""

    epochs: Int = Field(15, ge=1)
    max_steps: Int | None = Field(None, ge=1)
    fraction: Float = Field(1.0, gt=0.0, le=1.0)
    batch_size: Int = Field(256, ge=1)
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: Float = Field(0.2, gt=0.0)
    momentum: Float = Field(0.9, ge=0.0, le=0.999)
    nesterov: bool = True
    weight_decay: Float = Field(5e-4, ge=0.0)
    label_smoothing: Float = Field(0.1, ge=0.0, le=0.5)
    scheduler: Literal["cosine", "linear", "step", "constant"] = "linear"
    warmup: Float = Field(2, ge=0.0)
    warmup_unit: Literal["epochs", "steps"] = "epochs"
    warmup_start_factor: Float = Field(0.1, gt=0.0, le=1.0)
    step_size_epochs: Int = Field(5, ge=1)
    step_gamma: Float = Field(0.1, gt=0.0, le=1.0)
    amp: AmpMode = "auto"
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    compile: bool = False
    seed: Int = Field(0, ge=SEED_RANGE[0], le=SEED_RANGE[1])
    order_seed: Int | None = Field(None, ge=SEED_RANGE[0], le=SEED_RANGE[1])  # None: seed
    early_stopping_patience: Int = Field(0, ge=0)
    resume: bool = False
    progress_bar: bool = True
    log_every: Int = Field(50, ge=1)
    distributed: DistributedConfig = DistributedConfig()

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        if self.nesterov and self.optimizer == "sgd" and self.momentum == 0:
            raise invalid("nesterov", True, "needs momentum > 0 (momentum is 0)")
        if self.warmup_unit == "steps" and self.max_steps and self.warmup >= self.max_steps:
            raise invalid("warmup", self.warmup, f"steps of warmup is not shorter than training "
                          f"(max_steps={self.max_steps}); shorten the warmup or train longer")
        if self.batch_size % self.distributed.nproc_per_node:
            raise invalid("batch_size", self.batch_size, f"(the global batch) does not split evenly "
                          f"over distributed.nproc_per_node={self.distributed.nproc_per_node} "
                          "processes; use a multiple of it")
        if self.warmup_unit == "epochs" and self.max_steps is None and self.warmup >= self.epochs:
            raise invalid("warmup", self.warmup, f"epochs of warmup is not shorter than training "
                          f"({self.epochs} epochs); shorten the warmup or train longer")
        return self

    def check_device(self, prefix: str = PREFIX) -> None:
        """Refuse settings this machine cannot train with (fp16, nccl without CUDA).

        Not a validator: parameters are validated wherever a session starts, and a command
        that sends the training elsewhere (``kedro ablation run --scheduler``, on a CPU login
        node for GPU workers) must not be refused for the machine it was typed on. The checks
        run before the first node where a run trains in its own process (``ParameterChecksHooks``),
        and again where the device is chosen (``resolve_amp``, ``backend_for``)."""
        import torch  # here only: the rest of this module is read without torch

        if torch.cuda.is_available():
            return
        if self.amp == "fp16":
            raise ConfigError(f"{prefix}.amp='fp16': fp16 needs a CUDA GPU (none is available): "
                              "fp16 autocast with a GradScaler is a GPU feature; use amp: bf16, "
                              "auto or off")
        if self.distributed.backend == "nccl":
            raise ConfigError(f"{prefix}.distributed.backend='nccl': nccl needs CUDA GPUs (none is "
                              "available); use auto (Gloo on CPU) or gloo")

    def steps_per_epoch(self, n_train: int) -> int:
        """Full batches per epoch (the last, partial batch is dropped: BatchNorm needs > 1 image)."""
        steps = n_train // self.batch_size
        if steps == 0:
            raise ConfigError(
                f"{PREFIX}.batch_size={self.batch_size} is larger than the training set "
                f"({n_train} images); choose at most {n_train}."
            )
        return steps

    @property
    def shuffle_seed(self) -> int:
        """What seeds each epoch's order and augmentation (and dropout) draws: ``order_seed``,
        or ``seed`` (which alone seeds the initial weights and the training part)."""
        return self.seed if self.order_seed is None else self.order_seed

    def warmup_steps(self, steps_per_epoch: int) -> int:
        steps = self.warmup * steps_per_epoch if self.warmup_unit == "epochs" else self.warmup
        return int(round(steps))

    def total_steps(self, steps_per_epoch: int) -> int:
        """Optimiser steps of the whole run: ``max_steps`` if set, else ``epochs`` full epochs."""
        return self.max_steps or self.epochs * steps_per_epoch

    def num_epochs(self, steps_per_epoch: int) -> int:
        """Epochs the run takes (with ``max_steps``, the last one may be cut short)."""
        return -(-self.total_steps(steps_per_epoch) // steps_per_epoch)

    def check_schedule(self, steps_per_epoch: int) -> None:
        total = self.total_steps(steps_per_epoch)
        warmup = self.warmup_steps(steps_per_epoch)
        if warmup >= total:
            length = (f"max_steps={self.max_steps}" if self.max_steps else
                      f"{self.epochs} epochs x {steps_per_epoch} steps = {total} steps")
            raise ConfigError(
                f"{PREFIX}.warmup={self.warmup} {self.warmup_unit} ({warmup} steps) is not shorter "
                f"than training ({length}); shorten the warmup or train longer."
            )
