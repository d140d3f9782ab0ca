"""Intervals for a claim's mean paired difference at a given two-sided level.

- **Student t** over the seeds (``scipy.stats.t``), widened by the *test-sampling* error where
  the metric is measured image by image on a fixed set (the test images, the reported
  validation images): every seed is scored on the same images, so their sampling error is
  shared by all seeds and does not shrink with more of them. Its variance is estimated from
  the per-image paired differences by the method of moments (:func:`image_variance`) and
  added to the seeds' ``s^2 / n``; the image term has thousands of degrees of freedom, so the
  t quantile keeps the seeds' ``n - 1`` (Welch-Satterthwaite would give more: this errs wide).
- **Exact sign flips** (``scipy.stats.permutation_test``, every sign pattern) where the
  differences cannot be treated as normal: no spread at all, or at most two distinct values
  (a 0/1 metric such as ``diverged``). The interval is the inversion of the two one-sided
  sign-flip tests; with few seeds it is unbounded (``-inf``/``inf``): ``n`` seeds cannot reach
  a two-sided level below ``2 / 2^n`` (1/8 with 4) whatever the differences.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

_EXACT_UP_TO = 14  # seeds up to which every sign pattern is enumerated (2^14 patterns)


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    n: int
    method: str  # "t" or "sign-flip"
    seed_sd: float
    image_se: float  # the test-sampling standard error (0: none)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: an unbounded end is None."""
        return {"mean": self.mean, "low": _finite(self.low), "high": _finite(self.high), "n": self.n,
                "method": self.method, "seed_sd": self.seed_sd, "image_se": self.image_se}


def _finite(value: float) -> float | None:
    return None if math.isinf(value) else float(value)


def needs_sign_flip(differences: np.ndarray) -> bool:
    return len(np.unique(np.round(differences, 12))) <= 2


def interval(differences: list[float] | np.ndarray, level: float, image_variance: float = 0.0) -> Interval:
    """The two-sided ``1 - level`` interval of the mean of ``differences`` (at least 2)."""
    d = np.asarray(differences, dtype=float)
    if len(d) < 2:
        raise ValueError("an interval needs at least 2 paired differences")
    if needs_sign_flip(d):
        low, high = sign_flip_interval(d, level)
        return Interval(float(d.mean()), low, high, len(d), "sign-flip", float(d.std(ddof=1)), 0.0)
    return t_interval(d, level, image_variance)


def t_interval(d: np.ndarray, level: float, image_variance: float = 0.0) -> Interval:
    from scipy.special import stdtrit  # Student t's quantile function (stats.t.ppf, without its overhead)

    n, mean, sd = len(d), float(d.mean()), float(d.std(ddof=1))
    seed_var = sd**2 / n
    se = math.sqrt(seed_var + image_variance)
    half = float(stdtrit(n - 1, 1 - level / 2)) * se
    return Interval(mean, mean - half, mean + half, n, "t", sd, math.sqrt(image_variance))


def sign_flip_interval(d: np.ndarray, level: float) -> tuple[float, float]:
    """The values ``delta`` not rejected by either one-sided sign-flip test of ``d - delta`` at
    ``level / 2``: the lower end is where "mean > delta" stops being significant."""
    low = _bound(d, level / 2)
    high = -_bound(-d, level / 2)
    return low, high


def _bound(d: np.ndarray, tail: float) -> float:
    """The largest ``delta`` with ``p(mean(d - delta) > 0) <= tail`` (-inf if none)."""
    span = float(np.ptp(d)) or max(1.0, float(np.abs(d).max()))
    lowest = float(d.min()) - 4 * span
    if _p(d - lowest) > tail:
        return -math.inf
    top = float(d.max())
    if _p(d - top) <= tail:  # only when every difference is the same
        return top
    for _ in range(60):  # bisection: p rises as delta does
        middle = (lowest + top) / 2
        lowest, top = (middle, top) if _p(d - middle) <= tail else (lowest, middle)
    return lowest


def _p(x: np.ndarray) -> float:
    """The exact (or, above 14 seeds, seeded Monte Carlo) one-sided sign-flip p of mean(x) > 0."""
    from scipy import stats

    if np.all(x == x[0]):  # no spread: only the all-same-sign patterns reach the mean
        return 2.0 ** -len(x) if x[0] > 0 else 1.0
    resamples = np.inf if len(x) <= _EXACT_UP_TO else 20_000
    result = stats.permutation_test((x,), np.mean, permutation_type="samples", vectorized=True,
                                    n_resamples=resamples, alternative="greater",
                                    rng=np.random.default_rng(0))
    return float(result.pvalue)


def image_variance(per_image: np.ndarray) -> float:
    """The test-sampling variance of the mean paired difference. ``per_image`` holds each seed's
    per-image paired differences (seeds x images): per image, their mean over seeds varies
    with the image (the shared part, which more seeds do not average away) and with the seeds
    (already in the seeds' spread); the method of moments keeps the first,
    ``max(0, var_i(mean_s) - mean_i(var_s) / n) / N``. With one seed it cannot be told apart:
    the whole ``var_i / N`` (errs wide)."""
    if per_image.ndim != 2 or per_image.shape[1] < 2 or per_image.shape[0] < 1:
        return 0.0
    n, images = per_image.shape
    between = per_image.mean(axis=0).var(ddof=1)
    within = per_image.var(axis=0, ddof=1).mean() / n if n > 1 else 0.0
    return float(max(0.0, between - within) / images)
