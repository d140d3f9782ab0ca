"""What a launcher (torchrun, or torch's elastic launcher) tells a process through its
environment. No torch import: Kedro's hooks and settings read it at every command."""

from __future__ import annotations

import os


def rank() -> int:
    """The rank a launcher gave this process; 0 without one. ``RANK`` alone is not a launcher:
    a Kubernetes pod, a SLURM script or a Dask worker may export it for other reasons, and a
    process that took it for its rank would save nothing."""
    return int(os.environ.get("RANK", 0)) if under_torchrun() else 0


def under_torchrun() -> bool:
    """Started by torchrun (or another launcher) as one of several processes."""
    return int(os.environ.get("WORLD_SIZE", 1)) > 1 and "MASTER_ADDR" in os.environ


def local_rank() -> int:
    """This process's rank among those on its machine (its GPU, on CUDA); 0 without a launcher."""
    return int(os.environ.get("LOCAL_RANK", 0))


def local_world_size() -> int:
    """How many of the processes run on this machine (torchrun's ``LOCAL_WORLD_SIZE``); 1
    without a launcher."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", 1)) if under_torchrun() or "LOCAL_WORLD_SIZE" in os.environ else 1
