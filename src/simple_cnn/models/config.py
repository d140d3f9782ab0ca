"""The ``cnn.model`` parameters and ``SimpleCNN``'s configuration (light: no torch), so that
parameters are checked before torch is imported."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

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
