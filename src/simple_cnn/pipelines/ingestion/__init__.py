"""Ingestion: raw images from the chosen source to versioned train/val/test splits."""

from simple_cnn.pipelines.ingestion.pipeline import create_pipeline

__all__ = ["create_pipeline"]
