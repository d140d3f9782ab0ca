"""Pruning old versions of versioned datasets: plan what to delete, then delete it.

A versioned dataset at ``data/<layer>/<name>.<ext>`` keeps each version in a sub-folder named
by its timestamp (``2026-11-28T17.18.17.796Z``); the names sort in time order.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping, Set
from dataclasses import dataclass
from pathlib import Path

VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}\.\d{2}\.\d{2}\.\d{3}Z$")


@dataclass(frozen=True)
class Doomed:
    dataset: str
    path: Path
    bytes: int


def versions(folder: Path) -> list[str]:
    """Version folders of one dataset, oldest first."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and VERSION.match(p.name))


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def plan_prune(
    folders: Mapping[str, Path], keep: int, pinned: Mapping[str, Set[str]] | None = None
) -> list[Doomed]:
    """The versions to delete: all but the newest ``keep`` of each dataset, never the newest
    one and never a pinned one."""
    if keep < 1:
        raise ValueError(f"--keep must be at least 1 (the newest version is never deleted), got {keep}.")
    pinned = pinned or {}
    doomed = []
    for name, folder in folders.items():
        for version in versions(folder)[:-keep]:
            if version not in pinned.get(name, set()):
                doomed.append(Doomed(name, folder / version, folder_size(folder / version)))
    return doomed


def delete(doomed: list[Doomed]) -> int:
    """Delete the planned versions; return the bytes freed."""
    for item in doomed:
        shutil.rmtree(item.path)
    return sum(item.bytes for item in doomed)


def human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"
