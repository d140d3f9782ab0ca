"""The augmentation presets by name, and ``auto``'s rule (light: no torch, so that
``cnn.augmentation.preset`` is checked before torch is imported); ``augment.py`` builds them."""

from __future__ import annotations

import logging
from typing import Literal

from simple_cnn.errors import ConfigError

logger = logging.getLogger(__name__)

PRESETS = ("none", "standard", "seed", "medium", "heavy", "auto")
Preset = Literal["none", "standard", "seed", "medium", "heavy", "auto"]


def resolve_preset(preset: str, n_train: int) -> str:
    """``auto``: heavy below 10k training images, medium below 100k, else standard."""
    if preset not in PRESETS:
        raise ConfigError(
            f"preset={preset!r} is not allowed; choose one of: {', '.join(PRESETS)}."
        )
    if preset != "auto":
        return preset
    chosen = "heavy" if n_train < 10_000 else "medium" if n_train < 100_000 else "standard"
    logger.info("Augmentation preset 'auto' chose %r for %d training images.", chosen, n_train)
    return chosen
