"""``SimpleCNN``: conv blocks (Conv2d -> norm -> activation -> optional max-pool) and an MLP head.

Widths double from ``base_width`` at each block (16 -> 32 -> 64 by default); convolutions use
"same" padding with an odd kernel. ``norm`` compares BatchNorm, GroupNorm and LayerNorm (over
channels, height and width: GroupNorm with one group), ``activation`` ReLU, LeakyReLU and GELU.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn

from simple_cnn import params as P
from simple_cnn.errors import ConfigError

NORMS = ("batch", "group", "layer", "none")
ACTIVATIONS = ("relu", "leaky_relu", "gelu")


@dataclass(frozen=True)
class ModelConfig:
    in_channels: int = 3
    num_classes: int = 10
    image_size: int = 32
    base_width: int = 16
    num_blocks: int = 3
    kernel_size: int = 3
    norm: str = "batch"
    num_groups: int = 8
    activation: str = "relu"
    negative_slope: float = 0.3
    pool: bool = True
    hidden_units: int = 512
    dropout: float = 0.2

    @classmethod
    def from_params(cls, params: Mapping[str, Any], **data: Any) -> ModelConfig:
        """Build from ``cnn.model`` params (``data`` adds what the dataset decides: channels,
        classes, image size); every key is checked and errors name it."""
        prefix = "cnn.model"
        unknown = set(params) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(
                f"{prefix} has unknown key(s) {sorted(unknown)}; allowed: "
                f"{sorted(f.name for f in fields(cls))}."
            )
        merged = {**asdict(cls()), **params, **data}
        config = cls(**merged)
        P.choice(merged, "norm", NORMS, prefix)
        P.choice(merged, "activation", ACTIVATIONS, prefix)
        if merged["in_channels"] not in (1, 3):
            raise ConfigError(f"{prefix}.in_channels must be 1 (gray) or 3 (RGB), got {merged['in_channels']}.")
        P.number(merged, "base_width", prefix, integer=True, low=1)
        P.number(merged, "num_blocks", prefix, integer=True, low=1, high=6)
        P.number(merged, "hidden_units", prefix, integer=True, low=1)
        P.number(merged, "dropout", prefix, low=0.0, high=0.95)
        P.number(merged, "negative_slope", prefix, low=0.0, high=1.0)
        kernel = P.number(merged, "kernel_size", prefix, integer=True, low=1)
        if kernel % 2 == 0:
            raise ConfigError(f"{prefix}.kernel_size={kernel} must be odd (1, 3, 5, ...) for 'same' padding.")
        P.flag(merged, "pool", prefix)
        if config.pool and config.image_size // 2**config.num_blocks < 1:
            raise ConfigError(
                f"{prefix}.num_blocks={config.num_blocks} pools a {config.image_size}px image "
                "below 1 pixel; use fewer blocks or pool: false."
            )
        if config.norm == "group":
            groups = P.number(merged, "num_groups", prefix, integer=True, low=1)
            bad = [w for w in config.widths if w % groups]
            if bad:
                raise ConfigError(
                    f"{prefix}.num_groups={groups} does not divide the channel counts {bad} "
                    f"(widths {list(config.widths)}); choose a divisor of {config.base_width}."
                )
        return config

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(self.base_width * 2**i for i in range(self.num_blocks))


def make_activation(name: str, negative_slope: float = 0.3) -> nn.Module:
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(negative_slope)
    if name == "gelu":
        return nn.GELU()
    raise ConfigError(f"Unknown activation {name!r}; choose one of: {', '.join(ACTIVATIONS)}.")


def make_norm(name: str, channels: int, num_groups: int) -> nn.Module:
    if name == "batch":
        return nn.BatchNorm2d(channels)
    if name == "group":
        return nn.GroupNorm(num_groups, channels)
    if name == "layer":
        return nn.GroupNorm(1, channels)  # LayerNorm over (C, H, W), as in ConvNets
    return nn.Identity()


class ConvBlock(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, config: ModelConfig) -> None:
        layers: dict[str, nn.Module] = {
            "conv": nn.Conv2d(c_in, c_out, config.kernel_size, padding=config.kernel_size // 2,
                              bias=config.norm == "none"),
            "norm": make_norm(config.norm, c_out, config.num_groups),
            "act": make_activation(config.activation, config.negative_slope),
        }
        if config.pool:
            layers["pool"] = nn.MaxPool2d(2)
        super().__init__(OrderedDict(layers))


class SimpleCNN(nn.Module):
    """A small, configurable CNN for small images. Input: float (N, C, H, W), normalised."""

    def __init__(self, config: ModelConfig = ModelConfig()) -> None:
        super().__init__()
        self.config = config
        blocks, c_in = [], config.in_channels
        for width in config.widths:
            blocks.append(ConvBlock(c_in, width, config))
            c_in = width
        self.features = nn.Sequential(*blocks)
        side = config.image_size // 2**config.num_blocks if config.pool else config.image_size
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c_in * side * side, config.hidden_units),
            make_activation(config.activation, config.negative_slope),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden_units, config.num_classes),
        )
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nonlinearity = "leaky_relu" if config.activation == "leaky_relu" else "relu"
                nn.init.kaiming_normal_(module.weight, a=config.negative_slope if nonlinearity == "leaky_relu" else 0,
                                        mode="fan_out", nonlinearity=nonlinearity)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
