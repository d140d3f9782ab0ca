"""The classical classifiers, built from ``hog_svm`` params, with model selection on the val split.

- ``linear_svc``: ``LinearSVC`` on the scaled features.
- ``rbf_svc``: exact kernel ``SVC``. Its fit is quadratic to cubic in the number of samples,
  so it refuses more than ``max_train_samples`` unless ``allow_more_samples`` is set.
- ``kernel_approx``: an explicit approximation of the RBF kernel's feature map (``Nystroem``
  or random Fourier features, ``RBFSampler``), optionally after PCA, then a linear model
  (``RidgeClassifier``): RBF-like accuracy at linear cost.
- ``sgd``: ``SGDClassifier`` with the hinge loss (a linear SVM by stochastic gradient descent).

The main regularisation parameter of each (``C`` or ``alpha``) may be a list: each value is
fitted on train and scored on val, and the best is kept. Test data is never used here.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.decomposition import PCA
from sklearn.kernel_approximation import Nystroem, RBFSampler
from sklearn.linear_model import RidgeClassifier, SGDClassifier
from sklearn.pipeline import make_pipeline
from sklearn.svm import SVC, LinearSVC

from simple_cnn.classifier_params import (
    ClassifierParams,
    LinearSvcParams,
    RbfSvcParams,
    SgdParams,
)
from simple_cnn.errors import ConfigError

logger = logging.getLogger(__name__)

class BatchedTransform(TransformerMixin, BaseEstimator):
    """Fits ``transformer`` as is, transforms ``batch_size`` rows at a time into one output
    array: an explicit kernel map of 90,000 rows then needs its output's memory, not twice it."""

    def __init__(self, transformer: BaseEstimator, batch_size: int = 8192) -> None:
        self.transformer = transformer
        self.batch_size = batch_size

    def fit(self, x, y=None):
        self.transformer_ = clone(self.transformer).fit(x, y)
        return self

    def transform(self, x):
        first = self.transformer_.transform(x[: self.batch_size])
        out = np.empty((len(x), first.shape[1]), dtype=first.dtype)
        out[: len(first)] = first
        for start in range(self.batch_size, len(x), self.batch_size):
            out[start : start + self.batch_size] = self.transformer_.transform(
                x[start : start + self.batch_size])
        return out


class LeanRidgeClassifier(RidgeClassifier):
    """``RidgeClassifier`` that never copies its design matrix.

    scikit-learn's version binarises labels to int64 (mixing them with float32 data copies
    the data) and always passes unit sample weights (rescaling by them copies it again): each
    copy of a 90,000 x 4,000 kernel map is 1.4 GB. Here the +-1 targets take the data's dtype
    and unit weights are dropped; results match ``RidgeClassifier`` (tested).
    """

    def _prepare_data(self, X, y, sample_weight, solver):  # noqa: N803 - sklearn's signature
        X, y, sample_weight, Y = super()._prepare_data(X, y, sample_weight, solver)
        if sample_weight is not None and np.all(sample_weight == 1):
            sample_weight = None
        return X, y, sample_weight, Y.astype(X.dtype, copy=False)


def _candidates(options: ClassifierParams, n_features: int, variance: float,
                seed: int) -> list[tuple[dict[str, float], BaseEstimator]]:
    if isinstance(options, LinearSvcParams):
        return [({"C": c}, LinearSVC(C=c, dual="auto", max_iter=options.max_iter,
                                     random_state=seed)) for c in options.C]
    if isinstance(options, RbfSvcParams):
        return [({"C": c}, SVC(C=c, kernel="rbf", gamma=options.gamma, random_state=seed))
                for c in options.C]
    if isinstance(options, SgdParams):
        return [({"alpha": a}, SGDClassifier(loss="hinge", alpha=a, max_iter=options.max_iter,
                                             tol=None, random_state=seed)) for a in options.alpha]
    # kernel_approx: gamma is relative to the features' total variance, so one value works
    # across feature sets: k(x, y) = exp(-gamma * |x - y|^2 / total variance)
    steps: list[BaseEstimator] = []
    if options.pca_components and options.pca_components < n_features:
        steps.append(PCA(options.pca_components, svd_solver="randomized", random_state=seed))
    gamma = options.gamma / variance
    feature_map = (Nystroem(gamma=gamma, n_components=options.n_components, random_state=seed)
                   if options.method == "nystroem"
                   else RBFSampler(gamma=gamma, n_components=options.n_components, random_state=seed))
    # copy_X=False: the ridge centres the kernel map in place (it is the pipeline's own array)
    return [({"alpha": a}, make_pipeline(*steps, BatchedTransform(feature_map),
                                         LeanRidgeClassifier(alpha=a, copy_X=False)))
            for a in options.alpha]


def first_candidate(options: ClassifierParams, x_train: np.ndarray,
                    seed: int = 0) -> tuple[dict[str, float], BaseEstimator]:
    """The unfitted estimator of ``options``'s first ``C`` or ``alpha`` for ``x_train`` (whose
    width and variance the kernel settings depend on), and that hyper-parameter."""
    variance = float(x_train.var(axis=0).sum())
    return _candidates(options, x_train.shape[1], variance, seed)[0]


def fit_with_selection(
    name: str,
    options: ClassifierParams,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    seed: int = 0,
) -> tuple[BaseEstimator, dict[str, Any]]:
    """Fit each candidate on train, score it on val, keep the best; return it and a report."""
    if isinstance(options, RbfSvcParams) and len(x_train) > options.max_train_samples:
        if not options.allow_more_samples:
            raise ConfigError(
                f"rbf_svc on {len(x_train):,} samples: an exact kernel SVM's fit grows "
                "quadratically to cubically with the samples (hours for CIFAR-10's 45,000), so "
                f"it is capped at max_train_samples={options.max_train_samples:,}. Use "
                "classifier: kernel_approx for RBF-like accuracy at linear cost, raise "
                "max_train_samples, or set allow_more_samples: true to train on a random "
                "subset of that size."
            )
        keep = np.random.default_rng(seed).choice(len(x_train), options.max_train_samples, replace=False)
        x_train, y_train = x_train[keep], y_train[keep]
        logger.info("rbf_svc: training on a random subset of %d samples.", len(keep))
    variance = float(x_train.var(axis=0).sum())  # = n_features on standardised features
    report: dict[str, Any] = {"classifier": name, "candidates": []}
    best, best_score = None, -1.0
    for hyper, estimator in _candidates(options, x_train.shape[1], variance, seed):
        started = time.perf_counter()
        estimator = clone(estimator).fit(x_train, y_train)
        fit_seconds = time.perf_counter() - started
        score = float(estimator.score(x_val, y_val)) if len(y_val) else float("nan")
        report["candidates"].append({**hyper, "val_accuracy": score, "fit_seconds": fit_seconds})
        logger.info("%s %s: val accuracy %.4f, fit %.1f s", name, hyper, score, fit_seconds)
        if best is None or score > best_score:
            best, best_score = estimator, score
            report.update(best=hyper, val_accuracy=score)
    report["fit_seconds"] = sum(c["fit_seconds"] for c in report["candidates"])
    report["n_train"] = int(len(x_train))
    return best, report
