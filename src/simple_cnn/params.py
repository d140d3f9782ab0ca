"""Parameter checks that run when a node starts: each error names the key and what is allowed."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from simple_cnn.errors import ConfigError


def choice(params: Mapping[str, Any], key: str, allowed: Collection[str], prefix: str) -> str:
    """``params[key]`` if it is one of ``allowed``."""
    value = require(params, key, prefix)
    if value not in allowed:
        raise ConfigError(
            f"{prefix}.{key}={value!r} is not allowed; choose one of: "
            f"{', '.join(map(str, allowed))}."
        )
    return value


def require(params: Mapping[str, Any], key: str, prefix: str) -> Any:
    if key not in params:
        raise ConfigError(f"{prefix}.{key} is missing from the parameters (conf/base/parameters_*.yml).")
    return params[key]


def number(
    params: Mapping[str, Any],
    key: str,
    prefix: str,
    *,
    integer: bool = False,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
) -> float | int:
    """A number within [low, high] (or (low, high] with ``low_open``)."""
    value = require(params, key, prefix)
    kind = "a whole number" if integer else "a number"
    ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok_type:
        raise ConfigError(f"{prefix}.{key} must be {kind}, got {value!r}.")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and value > high
    if too_low or too_high:
        left = "(" if low_open else "["
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise ConfigError(f"{prefix}.{key}={value!r} is out of range; allowed: {left}{lo}, {hi}].")
    return value


def flag(params: Mapping[str, Any], key: str, prefix: str) -> bool:
    value = require(params, key, prefix)
    if not isinstance(value, bool):
        raise ConfigError(f"{prefix}.{key} must be true or false, got {value!r}.")
    return value
