"""Training: configuration, LR schedule, the loop with checkpoints, and numeric diagnostics."""

from simple_cnn.training.config import TrainConfig
from simple_cnn.training.diagnostics import NonFiniteLossError
from simple_cnn.training.loop import FitResult, fit, predict_logits

__all__ = ["FitResult", "NonFiniteLossError", "TrainConfig", "fit", "predict_logits"]
