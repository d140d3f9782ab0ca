"""``SimpleCNN``: conv blocks (Conv2d -> norm -> activation -> optional max-pool) and an MLP head.

Widths double from ``base_width`` at each block (16 -> 32 -> 64 by default); convolutions use
"same" padding with an odd kernel. ``norm`` compares BatchNorm, GroupNorm and LayerNorm (over
channels, height and width: GroupNorm with one group), ``activation`` ReLU, LeakyReLU and GELU.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Literal

import torch
from pydantic import Field, field_validator, model_validator
from torch import nn

from simple_cnn.params import Float, Int, Model, invalid

NORMS = ("batch", "group", "layer", "none")
ACTIVATIONS = ("relu", "leaky_relu", "gelu")


class ModelParams(Model):
    """The ``cnn.model`` parameters: the network's shape."""

    in_channels: Literal[1, 3] = 3
    base_width: Int = Field(16, ge=1)
    num_blocks: Int = Field(3, ge=1, le=6)
    kernel_size: Int = Field(3, ge=1)
    norm: Literal["batch", "group", "layer", "none"] = "batch"
    num_groups: Int = Field(8, ge=1)
    activation: Literal["relu", "leaky_relu", "gelu"] = "relu"
    negative_slope: Float = Field(0.3, ge=0.0, le=1.0)
    pool: bool = True
    hidden_units: Int = Field(512, ge=1)
    dropout: Float = Field(0.2, ge=0.0, le=0.95)

    @field_validator("kernel_size")
    @classmethod
    def _odd_kernel(cls, kernel: int) -> int:
        if kernel % 2 == 0:
            raise ValueError("must be odd (1, 3, 5, ...) for 'same' padding")
        return kernel

    @model_validator(mode="after")
    def _groups_divide_widths(self) -> ModelParams:
        bad = [w for w in self.widths if w % self.num_groups]
        if self.norm == "group" and bad:
            raise invalid("num_groups", self.num_groups,
                          f"does not divide the channel counts {bad} (widths {list(self.widths)}); "
                          f"choose a divisor of {self.base_width}")
        return self

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(self.base_width * 2**i for i in range(self.num_blocks))


class ModelConfig(ModelParams):
    """Everything ``SimpleCNN`` needs: ``ModelParams`` plus what the data decides."""

    num_classes: Int = Field(10, ge=2)
    image_size: Int = Field(32, ge=1)

    @model_validator(mode="after")
    def _pooling_fits_the_image(self) -> ModelConfig:
        if self.pool and self.image_size // 2**self.num_blocks < 1:
            raise invalid("num_blocks", self.num_blocks, f"pools a {self.image_size}px image "
                          "below 1 pixel; use fewer blocks or pool: false")
        return self


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
