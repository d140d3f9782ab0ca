"""Host-device synchronisations in a piece of training code, each with the Python stack that
made it, so that one GPU run finds all of them.

- On CUDA: torch's sync debug mode (``torch.cuda.set_sync_debug_mode("warn")``) warns at every
  synchronising call (an ``.item()``, a ``bool(tensor)``, a blocking copy); the warnings are
  caught with the stack at that moment.
- On a CPU nothing waits, so the calls that would wait on a GPU are counted instead: the
  tensor methods that read a value on the host (``item``, ``tolist``, ``cpu``, ``numpy``,
  ``bool``/``int``/``float`` of a tensor, ``nonzero``). It finds what the code asks for, not
  what a kernel might do inside; the GPU run is the full check.
"""

from __future__ import annotations

import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch

HOST_READS = ("item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__", "__index__",
              "nonzero")
HOST_SIDE = ("torchvision/transforms/v2/_augment.py", "torchvision/transforms/v2/_container.py")
"""Where the reads are of numbers sampled on the host's generator whatever the device (CutMix's
and MixUp's lambda and box, RandomChoice's pick): no device is waited for, even on a GPU."""


@dataclass(frozen=True)
class Sync:
    what: str
    stack: tuple[str, ...]  # the innermost frames, outermost first: "file:line in function"

    def where(self) -> str:
        return " <- ".join(reversed(self.stack))


def syncs_in(work: Callable[[], object], device: torch.device) -> list[Sync]:
    """Every synchronisation (CUDA) or host read (elsewhere) while ``work`` runs."""
    return _cuda_syncs(work) if device.type == "cuda" else _host_reads(work)


def _stack() -> tuple[str, ...]:
    frames = [f for f in traceback.extract_stack()[:-2] if "/syncs.py" not in f.filename]
    return tuple(f"{f.filename.rsplit('site-packages/', 1)[-1].rsplit('src/', 1)[-1]}:{f.lineno} in {f.name}"
                 for f in frames[-6:])


def _host_reads(work: Callable[[], object]) -> list[Sync]:
    found: list[Sync] = []
    originals = {name: getattr(torch.Tensor, name) for name in HOST_READS}

    def counted(name: str, original):
        def read(self, *args, **kwargs):
            stack = _stack()
            if not stack or not stack[-1].startswith(HOST_SIDE):
                found.append(Sync(f"Tensor.{name}", stack))
            return original(self, *args, **kwargs)
        return read

    for name, original in originals.items():
        setattr(torch.Tensor, name, counted(name, original))
    try:
        work()
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)
    return found


def _cuda_syncs(work: Callable[[], object]) -> list[Sync]:
    found: list[Sync] = []
    torch.cuda.synchronize()
    shown = warnings.showwarning

    def record(message, category, filename, lineno, file=None, line=None):
        if "called a synchronizing" in str(message):  # not the mode's own "prototype" warning
            found.append(Sync(str(message).splitlines()[0], _stack()))
        else:
            shown(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = record
        torch.cuda.set_sync_debug_mode("warn")
        try:
            work()
        finally:
            torch.cuda.set_sync_debug_mode("default")
            warnings.showwarning = shown
    torch.cuda.synchronize()
    return found
