"""Nodes of the first_lesson pipeline: the saved models on transformed test images, the SVM's
cost as data grows, the three claims' verdicts and their figures. The SVM and its scaler are
scikit-learn estimators; torch and matplotlib are imported inside the node functions."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from simple_cnn.errors import ConfigError
from simple_cnn.features.extract import FeatureConfig, extract_features
from simple_cnn.first_lesson import claims
from simple_cnn.first_lesson.robustness import (
    measured_images,
    predictions_under_transforms,
    robustness_table,
)
from simple_cnn.first_lesson.svm_cost import cost_scaling
from simple_cnn.parameters import CnnParams, FirstLessonParams, HogSvmParams

logger = logging.getLogger(__name__)

Split = dict[str, np.ndarray]


def _measured(test_split: Split, params: FirstLessonParams) -> np.ndarray:
    return measured_images(len(test_split["labels"]), params.robustness.test_images,
                           params.robustness.seed)


def _feature_config(svm_feature_report: dict[str, Any]) -> FeatureConfig:
    if "feature_settings" not in svm_feature_report:
        raise ConfigError(
            "This svm_feature_report was saved by an older Simple CNN, without the feature "
            "settings the SVM was trained with; re-run the baseline (kedro run --pipeline hog_svm).")
    return FeatureConfig.from_description(svm_feature_report["feature_settings"])


def predict_svm_under_transforms(
    svm_model: Any, feature_scaler: Any, svm_feature_report: dict[str, Any],
    test_split: Split, params: FirstLessonParams,
) -> Split:
    """The saved HOG + SVM's predicted classes on every transformed copy of the measured test
    images, with the features it was trained with (its report's settings, not today's)."""
    config = _feature_config(svm_feature_report)
    keep = _measured(test_split, params)

    def predict(images: np.ndarray) -> np.ndarray:
        return svm_model.predict(feature_scaler.transform(extract_features(images, config)))

    out = predictions_under_transforms(test_split["images"][keep], predict, params.robustness)
    return {"indices": keep, **out}


def predict_cnn_under_transforms(
    cnn_model: dict[str, Any], test_split: Split, cnn_params: CnnParams, params: FirstLessonParams,
) -> Split:
    """The saved CNN's predicted classes on every transformed copy of the measured test images
    (``cnn.evaluation.flip_tta`` and the precision as in its evaluation)."""
    from simple_cnn import inference

    run = inference.inference(cnn_model, cnn_params.training.device)
    keep = _measured(test_split, params)

    def predict(images: np.ndarray) -> np.ndarray:
        return run.logits(images, params.robustness.batch_size,
                          flip_tta=cnn_params.evaluation.flip_tta).argmax(1).cpu().numpy()

    out = predictions_under_transforms(test_split["images"][keep], predict, params.robustness)
    return {"indices": keep, **out}


def _paired(svm: Split, cnn: Split, test_split: Split) -> tuple[dict, dict, np.ndarray]:
    """Both models' predictions without their indices, and the labels; refuses predictions of
    different images (one model's were made under other first_lesson settings)."""
    if not np.array_equal(svm["indices"], cnn["indices"]) or svm.keys() != cnn.keys():
        raise ConfigError(
            "svm_transformed_predictions and cnn_transformed_predictions were made on different "
            "test images or transforms (first_lesson.robustness changed between them); re-run "
            "both: kedro run --pipeline first_lesson")
    labels = test_split["labels"][svm["indices"]]
    strip = lambda d: {k: v for k, v in d.items() if k != "indices"}  # noqa: E731
    return strip(svm), strip(cnn), labels


def measure_robustness(
    svm_transformed_predictions: Split, cnn_transformed_predictions: Split, test_split: Split,
    params: FirstLessonParams,
) -> dict[str, Any]:
    """Per model, transform and strength: accuracy and consistency (and, for shifts, the
    consistency between two shifts)."""
    svm, cnn, labels = _paired(svm_transformed_predictions, cnn_transformed_predictions, test_split)
    robustness = params.robustness
    return {"test_images": int(len(labels)), "fill": robustness.fill, "seed": robustness.seed,
            "hog_svm": robustness_table(svm, labels, robustness),
            "cnn": robustness_table(cnn, labels, robustness)}


def measure_svm_cost_scaling(
    svm_train_features: Split, feature_scaler: Any, hog_svm_params: HogSvmParams,
    params: FirstLessonParams,
) -> dict[str, Any]:
    """Fit and predict seconds of each classifier of ``first_lesson.svm_cost`` on growing
    parts of the scaled training features, and the fitted slopes."""
    x = feature_scaler.transform(svm_train_features["features"])
    options: dict[str, Any] = {name: getattr(hog_svm_params, name) for name in params.svm_cost.classifiers}
    return cost_scaling(x, svm_train_features["labels"], options, params.svm_cost, params.alpha)


def judge_first_lesson(
    svm_transformed_predictions: Split, cnn_transformed_predictions: Split, test_split: Split,
    svm_cost_scaling: dict[str, Any], params: FirstLessonParams,
) -> dict[str, Any]:
    """The three claims' verdicts, part by part, with the regime they were measured in."""
    svm, cnn, labels = _paired(svm_transformed_predictions, cnn_transformed_predictions, test_split)
    verdicts = claims.judge(svm, cnn, labels, svm_cost_scaling, params)
    verdicts["regime"] = {
        "robustness": params.robustness.model_dump(mode="json"),
        "svm_cost": {k: svm_cost_scaling[k] for k in ("sizes", "repeats", "predict_rows",
                                                      "n_features")}}
    for name, claim in verdicts["claims"].items():
        logger.info("First lesson, %s: %s (holds for: %s).", name, claim["verdict"],
                    ", ".join(claim["holds_for"]) or "none")
    return verdicts


def plot_robustness(robustness_metrics: dict[str, Any]):
    from simple_cnn.first_lesson import figures

    return figures.robustness(robustness_metrics)


def plot_svm_cost(svm_cost_scaling: dict[str, Any]):
    from simple_cnn.first_lesson import figures

    return figures.svm_cost(svm_cost_scaling)
