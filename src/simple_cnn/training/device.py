"""The training device, the autocast dtype and what each needs: from ``cnn.training.device`` and
``.amp``; images onto the device; the CUDA settings that make a run fast there."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import numpy as np
import torch

from simple_cnn.errors import ConfigError
from simple_cnn.training.config import PREFIX

AMP_NAMES = {None: "off", torch.float16: "fp16", torch.bfloat16: "bf16"}


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
    """The autocast dtype (``None``: full precision). ``auto``: bf16 on a GPU that supports it
    (it needs no loss scaling), fp16 with a GradScaler on an older one, bf16 on a CPU with
    native support, otherwise off. ``fp16`` (the course's lesson: fp16 and its GradScaler) is
    one setting away on any GPU."""
    if mode == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
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


def amp_name(dtype: torch.dtype | None) -> str:
    return AMP_NAMES[dtype]


def _cpu_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast_factory(device: torch.device, dtype: torch.dtype | None) -> Callable[[], contextlib.AbstractContextManager]:
    if dtype is None:
        return contextlib.nullcontext
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


def to_device_images(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (N, H, W, C) NumPy -> uint8 (N, C, H, W) tensor on ``device``."""
    return torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).contiguous()


def configure_cuda(device: torch.device, amp_dtype: torch.dtype | None) -> None:
    """On CUDA: let cuDNN pick the fastest convolution for the run's fixed shapes, and let fp32
    matrix products use TF32 (``high``) when the run trains in full precision. Results stay
    within a run's tolerance (cuDNN is not bit-exact anyway); nothing changes on a CPU."""
    if device.type != "cuda":
        return
    torch.backends.cudnn.benchmark = True
    if amp_dtype is None:
        torch.set_float32_matmul_precision("high")
