"""Four verdicts, each read off an interval that holds at the claim's level.

A part of a claim expects one of three things of its effect ``delta`` (positive: the claimed
direction), with a minimum effect ``m`` and an equivalence margin ``e`` (``e <= m``), both in
the metric's own unit:

- ``better``: *supported* when the interval lies above ``m``; *contradicted* when it lies below
  ``-m`` (the other side is better by a meaningful amount); *equivalent* (no meaningful
  difference) when it lies inside ``(-e, e)``; otherwise still open.
- ``not_worse``: *supported* (holds) when the interval lies above ``-e``; *contradicted* when it
  lies below ``-m``; otherwise open.
- ``within`` a band ``[low, high]`` (``about linearly``: a slope in [0.8, 1.3]): *supported*
  when the interval lies inside the band; *contradicted* when it lies wholly outside it.

Every verdict is wrong only if the interval misses ``delta``, so intervals that hold together
(``design.py``) bound every kind of error at once. A claim with several parts is supported when
all of them are, contradicted when any is, equivalent when its first part (its effect) is and
none is contradicted.
"""

from __future__ import annotations

import math
from typing import Any

DECIDED = ("supported", "contradicted", "equivalent")


def part_verdict(low: float, high: float, expect: str, min_effect: float, margin: float,
                 band: tuple[float, float] | None = None) -> str:
    """``supported``, ``contradicted``, ``equivalent`` or ``open``, from the interval."""
    if expect == "within":
        lo, hi = band or (-margin, margin)
        if lo < low and high < hi:
            return "supported"
        return "contradicted" if high < lo or low > hi else "open"
    if expect == "not_worse":
        if low > -margin:
            return "supported"
        return "contradicted" if high < -min_effect else "open"
    if low > min_effect:
        return "supported"
    if high < -min_effect:
        return "contradicted"
    if margin > 0 and -margin < low and high < margin:
        return "equivalent"
    return "open"


def claim_verdict(verdicts: list[str]) -> str:
    """A claim's verdict from its parts' (the first part is its effect)."""
    if "contradicted" in verdicts:
        return "contradicted"
    if verdicts and all(v == "supported" for v in verdicts):
        return "supported"
    if verdicts and verdicts[0] == "equivalent":
        return "equivalent"
    return "open"


def reason(verdict: str, part: dict[str, Any], unit: str) -> str:
    """The verdict in words, with the numbers that made it."""
    low, high = part["interval"]["low"], part["interval"]["high"]
    shown = f"{_num(part['interval']['mean'])} {unit} [{_num(low)}, {_num(high)}]"
    m, e = part["min_effect"], part["margin"]
    if verdict == "supported" and part["expect"] == "within":
        return f"{shown}: inside the band {_band(part)}"
    if verdict == "supported" and part["expect"] == "not_worse":
        return f"{shown}: not worse by more than the margin of {e:g} {unit}"
    if verdict == "supported":
        return f"{shown}: above the minimum effect of {m:g} {unit}"
    if verdict == "contradicted":
        if part["expect"] == "within":
            return f"{shown}: outside the band {_band(part)}"
        return f"{shown}: the other side is better by more than {m:g} {unit}"
    if verdict == "equivalent":
        return f"{shown}: inside the margin of +-{e:g} {unit}, no meaningful difference"
    return f"{shown}: {_open_because(part, unit)}"


def _open_because(part: dict[str, Any], unit: str) -> str:
    low, high = part["interval"]["low"], part["interval"]["high"]
    if low is None or high is None:
        return "too few seeds for an exact sign-flip interval at this level"
    if part["expect"] == "within":
        return f"neither inside nor outside the band {_band(part)}"
    return (f"the interval reaches both a meaningful effect and none (minimum effect "
            f"{part['min_effect']:g}, margin {part['margin']:g} {unit})")


def _band(part: dict[str, Any]) -> str:
    lo, hi = part["band"]
    return f"[{lo:g}, {hi:g}]"


def _num(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isinf(value)):
        return "unbounded"
    return f"{value:+.3g}"


def seeds_needed(mean: float, sd: float, image_se: float, min_effect: float, margin: float,
                 level: float, power: float = 0.8) -> int | None:
    """Seeds at which a fixed design at ``level`` would reach a verdict with ``power``, were the
    effect ``mean`` and the seed spread ``sd`` what was measured (``statsmodels``' power of the
    one-sample t-test against the nearer decision bound); None when no number of seeds would
    (the effect sits on a bound, or the test-sampling error alone is too large)."""
    from statsmodels.stats.power import TTestPower

    distance = max(abs(mean) - min_effect, margin - abs(mean))
    room = distance - 2.5 * image_se  # the shared test-sampling error does not shrink with seeds
    if sd <= 0 or room <= 0:
        return None
    n = TTestPower().solve_power(effect_size=room / sd, alpha=level, power=power,
                                 alternative="larger")
    return int(math.ceil(n)) if n and math.isfinite(n) else None
