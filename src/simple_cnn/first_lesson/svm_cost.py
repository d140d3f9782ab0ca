"""What an SVM's fit and prediction cost as the training set grows, and the fitted power law.

Each classifier of ``sizes`` is fitted on nested, seeded random subsets of the same scaled
feature rows (``hog_svm``'s settings, its first ``C`` or ``alpha``) and then predicts a fixed
set of rows; the wall seconds of both are recorded. A power law ``t = a n^b`` is fitted by
least squares on ``log t`` against ``log n`` (``scipy.stats.linregress``), one point per size
(its repeats averaged): ``b`` is the slope, with its Student-t interval on ``sizes - 2``
degrees of freedom. An exact kernel SVM solves a
problem over all pairs of rows, so its ``b`` is expected near 2 or above; a linear SVM's and an
explicit kernel map's near 1 once the rows outnumber the map's components.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from typing import Annotated, Any

import numpy as np
from pydantic import Field, model_validator

from simple_cnn.classifier_params import ClassifierName, ClassifierParams
from simple_cnn.errors import ConfigError
from simple_cnn.params import Int, Model, invalid

logger = logging.getLogger(__name__)

CLAIMED = ("rbf_svc", "linear_svc", "kernel_approx")
"""The classifiers the cost claim is about; any other listed is timed and shown, not judged."""


class SvmCostParams(Model):
    """``first_lesson.svm_cost``: the training-set sizes, the classifiers timed, the rows each
    fitted model predicts, and how many times each fit is repeated."""

    sizes: list[Annotated[Int, Field(ge=20)]] = [300, 450, 700, 1100, 1700]
    classifiers: list[ClassifierName] = ["rbf_svc", "linear_svc", "kernel_approx"]
    predict_rows: Int = Field(1000, ge=1)
    repeats: Int = Field(1, ge=1, le=10)
    seed: Int = Field(0, ge=0)

    @model_validator(mode="after")
    def _enough_points(self) -> SvmCostParams:
        if len(set(self.sizes)) < 3:
            raise invalid("sizes", self.sizes, "needs at least 3 different sizes to fit a slope "
                          "with an interval")
        if len(set(self.classifiers)) < len(self.classifiers) or not self.classifiers:
            raise invalid("classifiers", self.classifiers, "must list each classifier once")
        missing = [name for name in CLAIMED if name not in self.classifiers]
        if missing:
            raise invalid("classifiers", self.classifiers, f"lacks {', '.join(missing)}: the cost "
                          "claim is about the exact SVM (rbf_svc) against the linear SVM and the "
                          f"kernel approximation; list all of {', '.join(CLAIMED)}")
        return self


def time_classifier(options: ClassifierParams, x: np.ndarray, y: np.ndarray,
                    x_predict: np.ndarray, sizes: list[int], repeats: int,
                    seed: int) -> dict[str, Any]:
    """Fit and predict seconds of one classifier at each size (``repeats`` times each); the
    first ``n`` rows of ``x`` are the training set of size ``n``. What the fits warned of
    (e.g. a kernel map with more components than rows) is kept in ``warnings``, once each."""
    from sklearn.base import clone  # scikit-learn when timing, not when parameters are read

    from simple_cnn.classifiers import first_candidate

    hyper, estimator = first_candidate(options, x, seed)
    out: dict[str, Any] = {"hyper_parameters": hyper, "n": [], "fit_seconds": [],
                           "predict_seconds": [], "support_vectors": [], "warnings": []}
    for n in sorted(sizes):
        for _ in range(repeats):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                started = time.perf_counter()
                model = clone(estimator).fit(x[:n], y[:n])
                fitted = time.perf_counter()
            for warning in caught:
                note = f"at n={n}: {warning.message}"
                if str(warning.message) not in " ".join(out["warnings"]):
                    out["warnings"].append(note)
            model.predict(x_predict)
            out["n"].append(n)
            out["fit_seconds"].append(fitted - started)
            out["predict_seconds"].append(time.perf_counter() - fitted)
            vectors = getattr(model, "support_vectors_", None)
            out["support_vectors"].append(None if vectors is None else int(len(vectors)))
    return out


def per_size(n: list[int], seconds: list[float]) -> tuple[list[int], list[float]]:
    """The sizes and the mean of each size's repeated timings: repeats of one fit are not
    independent points of the power law (they share the size and the rows), so the slope is
    fitted on one point per size."""
    sizes = sorted(set(n))
    return sizes, [float(np.mean([t for m, t in zip(n, seconds) if m == size])) for size in sizes]


def fit_slope(n: Sequence[float], seconds: list[float], alpha: float = 0.05) -> dict[str, Any]:
    """The power law's exponent ``b`` of ``seconds = a n^b``: slope, standard error, its
    ``1 - alpha`` interval and degrees of freedom."""
    from scipy import stats

    log_n, log_t = np.log(np.asarray(n, float)), np.log(np.asarray(seconds, float))
    if len(np.unique(log_n)) < 3:
        raise ValueError("fit_slope needs at least 3 different sizes")
    fit = stats.linregress(log_n, log_t)
    df = len(log_n) - 2
    half = float(stats.t.ppf(1 - alpha / 2, df) * fit.stderr)
    return {"slope": float(fit.slope), "stderr": float(fit.stderr), "df": df,
            "interval": [float(fit.slope) - half, float(fit.slope) + half],
            "intercept": float(fit.intercept)}


def cost_scaling(x: np.ndarray, y: np.ndarray, options: dict[str, ClassifierParams],
                 params: SvmCostParams, alpha: float) -> dict[str, Any]:
    """Per classifier: the timings and the fitted slopes of fit and predict seconds against
    the training-set size. ``x``: scaled feature rows; the last ``predict_rows`` rows are
    predicted, the training subsets are drawn from the others."""
    needed = max(params.sizes) + params.predict_rows
    if len(x) < needed:
        raise ConfigError(
            f"first_lesson.svm_cost.sizes up to {max(params.sizes):,} plus predict_rows "
            f"{params.predict_rows:,} need {needed:,} feature rows; the training features have "
            f"{len(x):,}. Lower the sizes or predict_rows.")
    order = np.random.default_rng(params.seed).permutation(len(x))
    predict_rows, train_rows = order[: params.predict_rows], order[params.predict_rows:needed]
    x_train, y_train, x_predict = x[train_rows], y[train_rows], x[predict_rows]
    result: dict[str, Any] = {"sizes": sorted(params.sizes), "repeats": params.repeats,
                              "predict_rows": params.predict_rows, "n_features": int(x.shape[1]),
                              "classifiers": {}}
    for name in params.classifiers:
        timing = time_classifier(options[name], x_train, y_train, x_predict, params.sizes,
                                 params.repeats, params.seed)
        sizes, fit_means = per_size(timing["n"], timing["fit_seconds"])
        timing["fit_slope"] = fit_slope(sizes, fit_means, alpha)
        timing["predict_slope"] = fit_slope(*per_size(timing["n"], timing["predict_seconds"]), alpha)
        timing["mean_fit_seconds"] = fit_means
        logger.info("%s: fit time ~ n^%.2f, predict time ~ n^%.2f (%d to %d rows).", name,
                    timing["fit_slope"]["slope"], timing["predict_slope"]["slope"],
                    min(params.sizes), max(params.sizes))
        for note in timing["warnings"]:
            logger.info("%s %s", name, note)
        result["classifiers"][name] = timing
    return result
