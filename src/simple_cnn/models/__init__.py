"""Models: ``SimpleCNN`` and its configuration."""

from simple_cnn.models.simple_cnn import (
    ACTIVATIONS,
    NORMS,
    ModelConfig,
    ModelParams,
    SimpleCNN,
    make_activation,
)

__all__ = ["ACTIVATIONS", "NORMS", "ModelConfig", "ModelParams", "SimpleCNN", "make_activation"]
