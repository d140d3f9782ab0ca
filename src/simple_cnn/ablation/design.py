"""The study's error control, fixed before any run: the family, the looks and their levels.

- **The family** is every claim the YAML declares (``control: false``), whatever
  ``studies_to_run`` says, so that it cannot be chosen after seeing results. Each claim gets
  ``alpha / K`` (Bonferroni over the ``K`` claims); inside a claim, the budget-dependence test
  gets :data:`BUDGET_SHARE` of it and the claim's parts share the rest equally. The A/A control
  is judged at a claim's level by the same procedure, outside the family (it is its check).
- **Looks.** A claim is looked at after ``looks`` seeds (e.g. 3, 5, 8: its cap); a decided
  claim gets no more seeds. Each question's level is spent over the looks by the Lan-DeMets
  spending function of O'Brien-Fleming type, ``f(t) = 2 - 2 Phi(z_{1 - a/2} / sqrt(t))`` at
  information fraction ``t = seeds / cap`` (Lan & DeMets 1983). Look ``l``'s two-sided boundary
  ``c_l`` solves ``P(|Z_1| < c_1, ..., |Z_{l-1}| < c_{l-1}, |Z_l| >= c_l) = f(t_l) - f(t_{l-1})``
  for the joint normal statistics (correlation ``sqrt(t_i / t_j)``), and its nominal level is
  ``2 (1 - Phi(c_l))``. Intervals at those levels are *repeated confidence intervals*
  (Jennison & Turnbull 1989): they hold at every look together, so a verdict may be read at
  any look, and a claim may stop whenever it is decided, without inflating the error.
  With unknown variance the nominal level is applied to Student t (the "significance level"
  approach, Jennison & Turnbull 2000, ch. 11); ``tests/test_ablation_design.py`` measures
  the whole procedure by simulation.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

BUDGET_SHARE = 0.2
"""The part of a claim's level spent on its budget-dependence test (the rest: its verdict)."""


def obrien_fleming_spending(level: float, fraction: float) -> float:
    """Lan-DeMets spending of O'Brien-Fleming type: the level spent by information ``fraction``."""
    from scipy.stats import norm

    if fraction <= 0:
        return 0.0
    return float(2 - 2 * norm.cdf(norm.ppf(1 - level / 2) / fraction ** 0.5))


@lru_cache(maxsize=256)
def nominal_levels(level: float, looks: tuple[int, ...]) -> tuple[float, ...]:
    """The two-sided nominal level of each look (after ``looks[l]`` seeds, the last the cap)
    that spends ``level`` over the looks; the last look's is a little below ``level``, the first
    ones far below it. Computed by the recursive numerical integration of the score statistic's
    sub-density over the continuation region (Armitage, McPherson & Rowe 1969; Jennison &
    Turnbull 2000, ch. 19), on a fixed grid: deterministic to about 1e-6."""
    information = np.asarray(looks, dtype=float) / looks[-1]
    levels: list[float] = []
    grid, weights = np.zeros(1), np.ones(1)  # the score's sub-density (times the rule's weights)
    spent, before = 0.0, 0.0
    for info in information:
        target = obrien_fleming_spending(level, info) - spent
        bound, grid, weights = _next_look(grid, weights, before, info, target)
        levels.append(_two_sided(bound))
        spent, before = spent + target, info
    return tuple(levels)


def _next_look(grid: np.ndarray, weights: np.ndarray, before: float, info: float,
               target: float) -> tuple[float, np.ndarray, np.ndarray]:
    """The boundary at information ``info`` that the score, still inside the earlier boundaries
    (its sub-density on ``grid``, integration weights included), crosses with probability
    ``target``; and its sub-density inside the new boundary."""
    from scipy.optimize import brentq
    from scipy.stats import norm

    step = (info - before) ** 0.5  # sd of the score's increment since the last look

    def crossing(c: float) -> float:
        edge = c * info**0.5
        return float(weights @ (norm.cdf((-edge - grid) / step) + norm.sf((edge - grid) / step))) - target

    bound = float(brentq(crossing, 1e-3, 40.0, xtol=1e-12))
    edge = bound * info**0.5
    new_grid = np.linspace(-edge, edge, _GRID)
    density = norm.pdf((new_grid[:, None] - grid[None, :]) / step) @ weights / step
    return bound, new_grid, density * _simpson(new_grid)


def _two_sided(bound: float) -> float:
    from scipy.stats import norm

    return float(2 * norm.sf(bound))


_GRID = 2001  # points of the integration grid (odd, for Simpson's rule)


def _simpson(grid: np.ndarray) -> np.ndarray:
    """Simpson's-rule weights of an evenly spaced grid of odd length."""
    h = grid[1] - grid[0]
    weights = np.full(len(grid), 2.0)
    weights[1::2] = 4.0
    weights[0] = weights[-1] = 1.0
    return weights * h / 3


@dataclass(frozen=True)
class Design:
    """The error control of one study run: the family's size, its level and the looks."""

    alpha: float
    claims: int
    looks: tuple[int, ...]

    @property
    def claim_level(self) -> float:
        return self.alpha / max(1, self.claims)

    def part_level(self, parts: int) -> float:
        """The level of each of a claim's ``parts`` (its verdict's share, split evenly)."""
        return self.claim_level * (1 - BUDGET_SHARE) / parts

    @property
    def budget_level(self) -> float:
        return self.claim_level * BUDGET_SHARE

    def look_of(self, seeds: int) -> int | None:
        """The index of the look made after ``seeds`` seeds (None: no look then)."""
        return self.looks.index(seeds) if seeds in self.looks else None

    def nominal(self, level: float, look: int) -> float:
        """The nominal two-sided level of ``look`` for a question of ``level``."""
        return nominal_levels(level, self.looks)[look]
