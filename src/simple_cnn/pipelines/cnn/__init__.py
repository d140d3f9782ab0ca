"""The CNN pipeline: train SimpleCNN, evaluate it on test, plot what it learned."""

from simple_cnn.pipelines.cnn.pipeline import create_pipeline

__all__ = ["create_pipeline"]
