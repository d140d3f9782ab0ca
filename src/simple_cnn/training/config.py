"""Training configuration, built from ``cnn.training`` params and checked before training starts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch

from simple_cnn import params as P
from simple_cnn.errors import ConfigError

OPTIMIZERS = ("sgd", "adamw")
SCHEDULERS = ("cosine", "linear", "step", "constant")
WARMUP_UNITS = ("epochs", "steps")
AMP_MODES = ("auto", "fp16", "bf16", "off")
DEVICES = ("auto", "cpu", "cuda", "mps")

PREFIX = "cnn.training"


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 15
    batch_size: int = 256
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    scheduler: str = "linear"
    warmup: float = 1
    warmup_unit: str = "epochs"
    warmup_start_factor: float = 0.1
    step_size_epochs: int = 5
    step_gamma: float = 0.1
    amp: str = "auto"
    device: str = "auto"
    compile: bool = False
    seed: int = 0
    early_stopping_patience: int = 0
    resume: bool = False
    progress_bar: bool = True

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        unknown = set(params) - names
        if unknown:
            raise ConfigError(f"{PREFIX} has unknown key(s) {sorted(unknown)}; allowed: {sorted(names)}.")
        merged = {**asdict(cls()), **params}
        P.number(merged, "epochs", PREFIX, integer=True, low=1)
        P.number(merged, "batch_size", PREFIX, integer=True, low=1)
        P.choice(merged, "optimizer", OPTIMIZERS, PREFIX)
        P.number(merged, "lr", PREFIX, low=0.0, low_open=True)
        P.number(merged, "momentum", PREFIX, low=0.0, high=0.999)
        P.flag(merged, "nesterov", PREFIX)
        P.number(merged, "weight_decay", PREFIX, low=0.0)
        P.number(merged, "label_smoothing", PREFIX, low=0.0, high=0.5)
        P.choice(merged, "scheduler", SCHEDULERS, PREFIX)
        P.number(merged, "warmup", PREFIX, low=0.0)
        P.choice(merged, "warmup_unit", WARMUP_UNITS, PREFIX)
        P.number(merged, "warmup_start_factor", PREFIX, low=0.0, high=1.0, low_open=True)
        P.number(merged, "step_size_epochs", PREFIX, integer=True, low=1)
        P.number(merged, "step_gamma", PREFIX, low=0.0, high=1.0, low_open=True)
        P.choice(merged, "amp", AMP_MODES, PREFIX)
        P.choice(merged, "device", DEVICES, PREFIX)
        P.flag(merged, "compile", PREFIX)
        P.number(merged, "seed", PREFIX, integer=True)
        P.number(merged, "early_stopping_patience", PREFIX, integer=True, low=0)
        P.flag(merged, "resume", PREFIX)
        P.flag(merged, "progress_bar", PREFIX)
        if merged["nesterov"] and merged["optimizer"] == "sgd" and merged["momentum"] == 0:
            raise ConfigError(f"{PREFIX}.nesterov: true needs momentum > 0 (got momentum: 0).")
        return cls(**merged)

    def steps_per_epoch(self, n_train: int) -> int:
        """Full batches per epoch (the last, partial batch is dropped: BatchNorm needs > 1 image)."""
        steps = n_train // self.batch_size
        if steps == 0:
            raise ConfigError(
                f"{PREFIX}.batch_size={self.batch_size} is larger than the training set "
                f"({n_train} images); choose at most {n_train}."
            )
        return steps

    def warmup_steps(self, steps_per_epoch: int) -> int:
        steps = self.warmup * steps_per_epoch if self.warmup_unit == "epochs" else self.warmup
        return int(round(steps))

    def check_schedule(self, steps_per_epoch: int) -> None:
        total = self.epochs * steps_per_epoch
        warmup = self.warmup_steps(steps_per_epoch)
        if warmup >= total:
            raise ConfigError(
                f"{PREFIX}.warmup={self.warmup} {self.warmup_unit} ({warmup} steps) is not shorter "
                f"than training ({self.epochs} epochs x {steps_per_epoch} steps = {total} steps); "
                "shorten the warmup or train longer."
            )


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{PREFIX}.device=cuda but no CUDA GPU is available; use auto or cpu.")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{PREFIX}.device=mps but MPS is not available; use auto or cpu.")
    return torch.device(name)


def resolve_amp(mode: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype (``None``: full precision). ``auto``: fp16 on CUDA, bf16 on a CPU that
    supports it, otherwise off."""
    if mode == "auto":
        if device.type == "cuda":
            return torch.float16
        if device.type == "cpu" and torch.backends.mkldnn.is_available() and _cpu_bf16():
            return torch.bfloat16
        return None
    if mode == "off":
        return None
    if mode == "fp16":
        if device.type != "cuda":
            raise ConfigError(
                f"{PREFIX}.amp=fp16 needs a CUDA GPU (device is {device.type}): fp16 autocast with "
                "a GradScaler is a GPU feature. Use amp: bf16 or auto on a CPU."
            )
        return torch.float16
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"{PREFIX}.amp=bf16 is not supported by this GPU; use fp16 or auto.")
    return torch.bfloat16


def _cpu_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False
