"""Reporting: HOG + SVM against the CNN, as figures and one HTML page."""

from simple_cnn.pipelines.reporting.pipeline import create_pipeline

__all__ = ["create_pipeline"]
