"""predict: classify your own images with a saved cnn_model."""

from simple_cnn.pipelines.predict.pipeline import create_pipeline

__all__ = ["create_pipeline"]
