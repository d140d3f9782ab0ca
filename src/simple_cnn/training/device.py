"""The training device and the autocast dtype, from ``cnn.training.device`` and ``.amp``."""

from __future__ import annotations

import torch

from simple_cnn.errors import ConfigError
from simple_cnn.training.config import PREFIX


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
                "a GradScaler is a GPU feature. Use amp: bf16, auto or off on a CPU."
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
