"""Nodes of the hog_svm pipeline. The scaler and the model are scikit-learn estimators and the
figures matplotlib's; both libraries are imported inside the node functions, when they run."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from simple_cnn.features.extract import extract_features
from simple_cnn.parameters import HogSvmParams

logger = logging.getLogger(__name__)

Split = dict[str, np.ndarray]


def extract_svm_features(
    train_split: Split, val_split: Split, test_split: Split, params: HogSvmParams
) -> tuple[Split, Split, Split, dict[str, Any]]:
    """Features of every split (plus mirrored train images when ``train_on_flips``), and a
    report of what was extracted and how long it took."""
    config = params.feature_config(train_split["images"].shape[1:3])
    started = time.perf_counter()
    train_images, train_labels = train_split["images"], train_split["labels"]
    if params.train_on_flips:
        train_images = np.concatenate([train_images, train_images[:, :, ::-1]])
        train_labels = np.concatenate([train_labels, train_labels])
    train, val, test = (
        {"features": extract_features(images, config), "labels": labels}
        for images, labels in ((train_images, train_labels),
                               (val_split["images"], val_split["labels"]),
                               (test_split["images"], test_split["labels"]))
    )
    report = {
        "features": config.kind,
        "feature_settings": config.describe(),
        "n_features": int(train["features"].shape[1]),
        "n_images": int(sum(len(split["labels"]) for split in (train, val, test))),
        "feature_seconds": time.perf_counter() - started,
    }
    logger.info("Extracted %d %s features per image from %d images in %.1f s.",
                report["n_features"], config.kind, report["n_images"], report["feature_seconds"])
    return train, val, test, report


def fit_feature_scaler(svm_train_features: Split) -> Any:
    """A StandardScaler fitted on train features only."""
    from sklearn import preprocessing

    return preprocessing.StandardScaler().fit(svm_train_features["features"])


def train_svm(
    svm_train_features: Split, svm_val_features: Split, feature_scaler: Any,
    params: HogSvmParams,
) -> tuple[Any, dict[str, Any]]:
    """Fit the classifier of ``hog_svm.classifier``; pick its hyper-parameter on val."""
    from simple_cnn import classifiers

    # scaled in place: the loaded array is this node's own, and 90,000 x 2,000 floats are 0.7 GB
    x_train = feature_scaler.transform(svm_train_features["features"], copy=False)
    x_val = feature_scaler.transform(svm_val_features["features"])
    model, report = classifiers.fit_with_selection(params.classifier, params.classifier_params, x_train,
                                       svm_train_features["labels"], x_val,
                                       svm_val_features["labels"], seed=params.seed)
    report["n_features"] = int(x_train.shape[1])
    return model, report


def evaluate_svm(
    svm_model: Any, feature_scaler: Any, svm_test_features: Split,
    svm_feature_report: dict[str, Any], svm_training_report: dict[str, Any],
    class_names: list[str],
) -> tuple[Split, dict[str, Any]]:
    """Test predictions and metrics (accuracy, macro-F1, per class, confusion, seconds)."""
    from simple_cnn import metrics as scores

    started = time.perf_counter()
    x_test = feature_scaler.transform(svm_test_features["features"])
    predictions = svm_model.predict(x_test)
    predict_seconds = time.perf_counter() - started
    metrics = scores.classification_metrics(svm_test_features["labels"], predictions, class_names)
    metrics.update(
        model=f"{svm_feature_report['features']} + {svm_training_report['classifier']}",
        features=svm_feature_report["features"],
        classifier=svm_training_report["classifier"],
        hyper_parameters=svm_training_report.get("best", {}),
        val_accuracy=svm_training_report["val_accuracy"],
        n_features=svm_training_report["n_features"],
        n_train=svm_training_report["n_train"],
        feature_seconds=svm_feature_report["feature_seconds"],
        fit_seconds=svm_training_report["fit_seconds"],
        predict_seconds=predict_seconds,
        total_seconds=svm_feature_report["feature_seconds"] + svm_training_report["fit_seconds"]
        + predict_seconds,
    )
    logger.info("SVM test accuracy %.4f, macro-F1 %.4f.", metrics["accuracy"], metrics["macro_f1"])
    return {"predictions": predictions.astype(np.int64)}, metrics


def plot_svm_confusion_matrix(svm_test_metrics: dict[str, Any], class_names: list[str]):
    from simple_cnn import plots

    return plots.confusion_matrix_figure(
        np.array(svm_test_metrics["confusion_matrix"]), class_names,
        f"{svm_test_metrics['model']} on test: accuracy {svm_test_metrics['accuracy']:.1%}")


def plot_svm_per_class(svm_test_metrics: dict[str, Any], class_names: list[str]):
    from simple_cnn import plots

    return plots.per_class_bars(svm_test_metrics["per_class"], class_names,
                                f"{svm_test_metrics['model']}: per-class precision, recall, F1")
