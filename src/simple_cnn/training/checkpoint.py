"""The training checkpoint: written atomically, owned by one run at a time, and resumed only
by a run with the same settings and data.

- ``checkpoint_lock``: an OS file lock beside the checkpoint. A second run that would write the
  same file is refused with the first run's PID, start time and command; the lock dies with
  its process (even on SIGKILL), so a crash leaves no stale lock.
- ``run_signature``: every setting that shapes the run (epochs, batch size, schedule, warmup,
  optimiser, AMP, augmentation, seed, ...) and a fingerprint of the training split. Resuming
  compares it with the checkpoint's and refuses a mismatch, listing the differences.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock, Timeout

from simple_cnn.errors import ConcurrentRunError, ConfigError
from simple_cnn.training.config import TrainConfig

# Settings that do not change what is trained: how it runs, shown or resumed. A run may resume
# on another number of processes (the loop says what changes then).
NOT_SHAPING = ("resume", "progress_bar", "device", "compile", "log_every", "distributed")


def fingerprint(images: np.ndarray, labels: np.ndarray) -> str:
    """A short hash of a split's images and labels (BLAKE2b; 45,000 CIFAR images in ~0.2 s)."""
    digest = hashlib.blake2b(digest_size=12)
    digest.update(str(images.shape).encode())
    digest.update(np.ascontiguousarray(images).data)
    digest.update(np.ascontiguousarray(labels, dtype=np.int64).data)
    return digest.hexdigest()


def run_signature(config: TrainConfig, augmentation: str, images: np.ndarray,
                  labels: np.ndarray, amp: str) -> dict[str, Any]:
    """What a resumed run must share with the checkpoint it continues: ``amp`` is the precision
    the setting resolved to here (``auto`` is bf16 on one machine, off on another: a CPU run
    resumed on a GPU is refused by name, never half-restored)."""
    settings = config.model_dump(exclude=set(NOT_SHAPING))
    return {**settings, "amp": amp, "augmentation": augmentation, "train_data": fingerprint(images, labels)}


@contextlib.contextmanager
def checkpoint_lock(path: Path) -> Iterator[None]:
    """Hold ``path`` for this process; refuse if another run holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    owner = path.with_name(path.name + ".owner")
    lock = FileLock(path.with_name(path.name + ".lock"), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        holder = owner.read_text().strip() if owner.exists() else "another process"
        raise ConcurrentRunError(
            f"Another training run is writing the checkpoint {path} ({holder}). Wait for it "
            "to finish, or give this run its own checkpoint (the catalog entry cnn_checkpoint, "
            "e.g. in a conf env of its own)."
        ) from None
    try:
        owner.write_text(f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}, "
                         f"command: {' '.join(sys.argv)}\n")
        yield
    finally:
        owner.unlink(missing_ok=True)
        lock.release()


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write atomically: a crash mid-write leaves the previous checkpoint untouched."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".partial")
    torch.save(payload, temporary)
    os.replace(temporary, path)


def _differences(saved: dict[str, Any], wanted: dict[str, Any]) -> str:
    keys = sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))
    return "; ".join(f"{k}: checkpoint {saved.get(k)!r}, now {wanted.get(k)!r}" for k in keys)


def load_checkpoint(path: Path | None, model_config: dict[str, Any],
                    signature: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint at ``path``, if it continues a run of this model, settings and data."""
    if path is None:
        raise ConfigError("cnn.training.resume is true but this run keeps no checkpoint: pass "
                          "checkpoint_path (the pipeline's is the catalog entry cnn_checkpoint).")
    if not path.exists():
        raise ConfigError(
            f"cnn.training.resume is true but there is no checkpoint at {path}. Train once "
            "with resume: false (a checkpoint is written every epoch), or point the catalog "
            "entry cnn_checkpoint at the file that holds one."
        )
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if checkpoint.get("model_config") != model_config:
        raise ConfigError(
            f"Cannot resume from {path}: it holds a model of another shape "
            f"({_differences(checkpoint.get('model_config', {}), model_config)}). Set cnn.model "
            "back, or train from scratch with resume: false."
        )
    if checkpoint.get("signature") != signature:
        raise ConfigError(
            f"Cannot resume from {path}: it was trained with other settings or data "
            f"({_differences(checkpoint.get('signature') or {}, signature)}). Set them back to "
            "resume it, or train anew with resume: false. Extending a finished run is not "
            "supported: its learning-rate schedule was laid out for its own length."
        )
    state = checkpoint["state"]
    if state.get("finished"):
        raise ConfigError(
            f"The run in {path} is already complete (epoch {state['epoch']} of "
            f"{signature['epochs']}{', stopped early' if state['epoch'] < signature['epochs'] else ''}); "
            "its best weights are the newest cnn_model version. To train again, set resume: false."
        )
    return checkpoint
