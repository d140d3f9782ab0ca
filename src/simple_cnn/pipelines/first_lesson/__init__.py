"""first_lesson: why hand-made features hit a wall, measured on the two trained models."""

from simple_cnn.pipelines.first_lesson.pipeline import create_pipeline

__all__ = ["create_pipeline"]
