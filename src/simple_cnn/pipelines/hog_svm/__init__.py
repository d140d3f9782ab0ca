"""The classical baseline: HOG (and colour) features, a StandardScaler and an SVM-style classifier."""

from simple_cnn.pipelines.hog_svm.pipeline import create_pipeline

__all__ = ["create_pipeline"]
