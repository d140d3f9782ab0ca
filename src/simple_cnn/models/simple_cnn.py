"""``SimpleCNN``: conv blocks (Conv2d -> norm -> activation -> optional max-pool) and an MLP head.

Widths double from ``base_width`` at each block (16 -> 32 -> 64 by default); convolutions use
"same" padding with an odd kernel. ``norm`` compares BatchNorm, GroupNorm and LayerNorm (over
channels, height and width: GroupNorm with one group), ``activation`` ReLU, LeakyReLU and GELU.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from simple_cnn.models.config import ACTIVATIONS, NORMS, ModelConfig, ModelParams  # noqa: F401


def make_activation(name: str, negative_slope: float = 0.3) -> nn.Module:
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(negative_slope)
    if name == "gelu":
        return nn.GELU()
    raise ValueError(f"Unknown activation {name!r}; choose one of: {', '.join(ACTIVATIONS)}.")


def make_norm(name: str, channels: int, num_groups: int) -> nn.Module:
    if name == "batch":
        return nn.BatchNorm2d(channels)
    if name == "group":
        return nn.GroupNorm(num_groups, channels)
    if name == "layer":
        return nn.GroupNorm(1, channels)  # LayerNorm over (C, H, W), as in ConvNets
    if name == "none":
        return nn.Identity()
    raise ValueError(f"Unknown norm {name!r}; choose one of: {', '.join(NORMS)}.")


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
        blocks: list[nn.Module] = []
        c_in: int = config.in_channels
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
                if config.activation == "leaky_relu":
                    nn.init.kaiming_normal_(module.weight, a=config.negative_slope, mode="fan_out",
                                            nonlinearity="leaky_relu")
                else:
                    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
