"""The ``ablation`` parameters the study pipeline is built from: the session's, handed over by
``AblationStudiesHooks`` before Kedro first asks for the pipelines, or the project's conf for a
read outside a session (``kedro registry list``). Outside the ablation package, which the hook
would otherwise import (with the study's nodes) at every session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

_studies: dict[str, Any] = {"raw": None, "known": False}


def use_studies(raw: dict[str, Any] | None) -> bool:
    """Take the session's ``ablation`` parameters; True if they differ from the last ones."""
    changed = not _studies["known"] or _studies["raw"] != raw
    _studies.update(raw=raw, known=True)
    return changed


def raw() -> dict[str, Any] | None:
    """The ``ablation`` parameters to build the study from."""
    if not _studies["known"]:
        _studies.update(raw=_project_parameters(), known=True)
    return _studies["raw"]


def _project_parameters() -> dict[str, Any] | None:
    """``ablation`` from the project's conf (base + local): for a registry read outside a session."""
    from kedro.config import OmegaConfigLoader
    from kedro.framework.project import settings

    conf = Path.cwd() / settings.CONF_SOURCE
    if not conf.is_dir():
        return None
    return OmegaConfigLoader(str(conf), **settings.CONFIG_LOADER_ARGS)["parameters"].get("ablation")
