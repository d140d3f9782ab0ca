"""Training on several processes with torch.distributed (DistributedDataParallel).

A process is rank ``r`` of a world of ``n`` (one process: rank 0 of 1, and everything here is a
no-op). The processes come from one of two places:

- ``launch``: ``cnn.training.distributed.nproc_per_node`` workers on this machine, started by
  torch's elastic launcher (c10d rendezvous on 127.0.0.1, a free port, no restarts). It returns
  each rank's result; a worker that fails takes the others down and its error comes back,
  with its rank.
- ``torchrun`` (one or several machines): every process runs ``kedro run`` and ``joined``
  joins the process group that torchrun describes in the environment.

The loop uses the collectives below: sums over ranks, a broadcast of rank 0's decision, and
rank 0's BatchNorm statistics copied to every rank.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import pickle
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.elastic.multiprocessing.api import SignalException

from simple_cnn import launcher
from simple_cnn.errors import (
    ConcurrentRunError,
    ConfigError,
    DataError,
    DistributedTrainingError,
    NonFiniteLossError,
)
from simple_cnn.training.config import TrainConfig

logger = logging.getLogger(__name__)

PREFIX = "cnn.training.distributed"
OWN_ERRORS = (ConfigError, DataError, NonFiniteLossError, ConcurrentRunError)  # raised as they are


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1  # processes on this machine

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes checkpoints and whose result is kept."""
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """One GPU per process on CUDA: the local rank's, or the only one a process sees (one
        visible GPU per task, as SLURM gives them); the device itself otherwise."""
        if device.type != "cuda" or self.size == 1:
            return device
        return torch.device("cuda", self.local_rank if torch.cuda.device_count() > 1 else 0)

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` summed over the ranks (in place)."""
        if self.size > 1:
            dist.all_reduce(tensor)
        return tensor

    def all(self, flag: torch.Tensor) -> torch.Tensor:
        """True on every rank iff ``flag`` is true on every rank."""
        if self.size == 1:
            return flag
        as_int = flag.to(torch.int32)
        dist.all_reduce(as_int, op=dist.ReduceOp.MIN)
        return as_int.bool()

    def from_main(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (a picklable object; other ranks may pass None)."""
        if self.size == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def copy_buffers(self, model: nn.Module) -> None:
        """Rank 0's buffers (BatchNorm running statistics) on every rank, so that all ranks hold
        the same model: each rank's last forward pass updated them with its own images."""
        if self.size > 1:
            for buffer in model.buffers():
                dist.broadcast(buffer, src=0)


def current() -> World:
    """This process's rank and world (rank 0 of 1 outside a process group)."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), launcher.local_rank(),
                     launcher.local_world_size())
    return World()


def backend_for(requested: str, device: torch.device) -> str:
    """The process group's backend: NCCL between GPUs, Gloo between CPU processes."""
    if requested == "auto":
        return "nccl" if device.type == "cuda" else "gloo"
    if requested == "nccl" and device.type != "cuda":
        raise ConfigError(f"{PREFIX}.backend=nccl needs CUDA GPUs, and training runs on "
                          f"{device.type}; use backend: auto (Gloo on CPU) or gloo.")
    return requested


def check_world(size: int, config: TrainConfig, device: torch.device, local_size: int | None = None) -> None:
    """Refuse a world that cannot train: more processes on a machine than its GPUs, a global
    batch that does not split evenly, a device or layer that DDP does not support there.
    ``size`` is the whole world (every machine's processes), ``local_size`` this machine's
    (default: all of them, as when this process starts them). One visible GPU per process (each
    task given its own, as SLURM does) is a GPU each."""
    if size == 1:
        return
    local = size if local_size is None else local_size
    if device.type == "mps":
        raise ConfigError(f"{PREFIX}.nproc_per_node={local}: DistributedDataParallel does not "
                          "support Apple's MPS; use nproc_per_node: 1, or device: cpu.")
    visible = torch.cuda.device_count() if device.type == "cuda" else 0
    if device.type == "cuda" and visible > 1 and local > visible:
        raise ConfigError(f"{PREFIX}.nproc_per_node={local} processes on this machine but {visible} "
                          "GPU(s) are visible (one process per GPU); use at most that many, or "
                          "check CUDA_VISIBLE_DEVICES.")
    if device.type != "cuda" and config.distributed.sync_batchnorm:
        raise ConfigError(f"{PREFIX}.sync_batchnorm=true needs CUDA (PyTorch's SyncBatchNorm "
                          f"runs on GPUs only) and training runs on {device.type}; set it to false.")
    batch_size = config.batch_size
    if batch_size % size:
        raise ConfigError(f"cnn.training.batch_size={batch_size} (the global batch) does not "
                          f"split evenly over {size} processes; use a multiple of {size}, e.g. "
                          f"{max(size, batch_size - batch_size % size)}.")


@contextlib.contextmanager
def joined(backend: str) -> Iterator[World]:
    """Inside torchrun: join its process group for the block (and leave it afterwards)."""
    if dist.is_initialized():
        yield current()
        return
    if backend == "nccl":
        torch.cuda.set_device(launcher.local_rank())
    dist.init_process_group(backend)
    try:
        yield current()
    finally:
        dist.destroy_process_group()


def wrap(model: nn.Module, device: torch.device, world: World,
         sync_batchnorm: bool) -> tuple[nn.Module, nn.Module]:
    """The model and the model of the training step: in a world of several ranks the step's is
    DistributedDataParallel's (BatchNorm made SyncBatchNorm on CUDA if asked)."""
    if world.size == 1:
        return model, model
    if sync_batchnorm and device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model, nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None)


def launch(entry: Callable[..., Any], args: tuple, nproc: int, backend: str,
           threads: int | None, device_type: str = "cpu") -> list[Any]:
    """``entry(*args)`` on ``nproc`` new processes of one world; the return values by rank.

    CPU workers use ``threads`` threads each (default 1: the processes share the cores);
    ``device_type`` is what they train on (only CPU workers are forked)."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(
        min_nodes=1, max_nodes=1, nproc_per_node=nproc, rdzv_backend="c10d",
        rdzv_endpoint="127.0.0.1:0", run_id=f"simple-cnn-{os.getpid()}", max_restarts=0,
        monitor_interval=0.1, start_method=_start_method(backend, threads or 1, device_type),
        local_addr="127.0.0.1",
    )
    level = logging.getLogger("simple_cnn").getEffectiveLevel()
    with tempfile.TemporaryDirectory(prefix="simple-cnn-ranks-") as outcomes, _fork_safe():
        try:
            results = elastic_launch(config, _worker)(entry, args, backend, threads, outcomes, level)
        except ChildFailedError as failure:
            error, cause = _failure(failure, Path(outcomes), nproc)
            raise error from cause
    return [results[rank] for rank in range(nproc)]


@contextlib.contextmanager
def _fork_safe() -> Iterator[None]:
    """Collect this process's garbage before forking, and freeze the rest: a forked worker must
    not run the destructors of objects it inherited (an earlier run's process-group objects
    crash when destroyed outside the process that made them)."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _start_method(backend: str, threads: int, device_type: str = "cpu") -> str:
    """Fork for single-threaded CPU processes on Linux (0.3 s, against 7 s for each process to
    import torch again; PyTorch's DataLoader forks its workers the same way, one thread each).
    Spawn otherwise: a forked process cannot use CUDA (even Gloo between GPUs: the parent has
    asked CUDA for its devices by then), and one that starts a thread pool after its parent used
    OpenMP's hangs (GNU OpenMP is not fork-safe)."""
    fork = backend == "gloo" and device_type == "cpu" and threads == 1 and not torch.cuda.is_initialized()
    return "fork" if fork and sys.platform.startswith("linux") else "spawn"


class PeerStopped(RuntimeError):
    """Raised by the ranks that stop because another rank found the error (not reported)."""


def _worker(entry: Callable[..., Any], args: tuple, backend: str, threads: int | None,
            outcomes: str, level: int) -> Any:
    """One rank: join the process group, run ``entry``, and leave its outcome in ``outcomes``
    (the error, "stopped" or "done") for ``_failure`` to read if the run fails."""
    rank = launcher.rank()
    if not logging.getLogger().handlers:  # spawned: a fresh process
        logging.basicConfig(format=f"[rank {rank}] %(levelname)s %(name)s: %(message)s")
    logging.getLogger("simple_cnn").setLevel(level if rank == 0 else logging.WARNING)
    if backend == "gloo":
        torch.set_num_threads(threads or 1)
    else:
        torch.cuda.set_device(launcher.local_rank())
    dist.init_process_group(backend)
    outcome = Path(outcomes) / f"rank_{rank}"
    try:
        result = entry(*args)
    except PeerStopped:  # stopped for a peer's error: let the peer keep it first
        outcome.with_suffix(".stopped").touch()
        _wait_for_a_report(Path(outcomes), PEER_REPORT_WAIT)
        raise
    except SignalException:  # stopped by the launcher
        outcome.with_suffix(".stopped").touch()
        raise
    except BaseException as error:  # kept for the parent, which raises it in the node
        _keep(error, outcome.with_suffix(".pickle"))
        raise
    outcome.with_suffix(".done").touch()
    dist.destroy_process_group()
    return result


PEER_REPORT_WAIT = 60.0
"""Seconds a rank stopped by a peer's error waits for that peer to keep it: the launcher stops
every rank as soon as one exits, and the peer may still be searching for the error's place."""


def _wait_for_a_report(outcomes: Path, seconds: float) -> None:
    """Return once some rank has kept its error in ``outcomes`` (or after ``seconds``)."""
    deadline = time.monotonic() + seconds
    while not any(outcomes.glob("rank_*.pickle")) and time.monotonic() < deadline:
        time.sleep(0.05)


def _keep(error: BaseException, path: Path) -> None:
    """Pickle ``error`` for the parent, whole or not at all (a rank waiting for it exits as soon
    as the file is there); one that does not survive the round trip as its type and message."""
    try:
        data = pickle.dumps(error)
        pickle.loads(data)
    except Exception:
        data = pickle.dumps(RuntimeError(f"{type(error).__name__}: {error}"))
    partial = path.with_name(path.name + ".part")
    with contextlib.suppress(OSError):
        partial.write_bytes(data)
        os.replace(partial, path)


STOPPED = ("; the other processes were stopped. The last complete checkpoint is kept (resume "
           "with cnn.training.resume: true).")


def _failure(failure, outcomes: Path, nproc: int) -> tuple[BaseException, BaseException | None]:
    """The error to raise for failed workers, and its cause.

    Each worker leaves its outcome in ``outcomes``: an error (pickled), stopped for a peer's
    error, or done. A rank that left nothing died (a signal, ``os._exit``, the OOM killer) or
    was stopped by the launcher after another rank failed; it is the root cause when the
    others' errors are only about lost connections."""
    raised = {int(p.stem.split("_")[1]): pickle.loads(p.read_bytes())
              for p in sorted(outcomes.glob("rank_*.pickle"))}
    silent = [r for r in range(nproc) if not list(outcomes.glob(f"rank_{r}.*"))]
    causes = {r: e for r, e in raised.items() if not _lost_peer(e)}
    if silent and not causes:
        rank = silent[0]
        how = _how_it_ended(failure.failures.get(rank))
        return DistributedTrainingError(f"Training process rank {rank} of {nproc} {how}{STOPPED}"), None
    own = {r: e for r, e in causes.items() if isinstance(e, OWN_ERRORS)}
    if own:
        return own[min(own)], None
    if not raised:
        rank, first = failure.get_first_failure()
        how = _how_it_ended(first)
        return DistributedTrainingError(f"Training process rank {rank} of {nproc} {how}{STOPPED}"), None
    rank, error = min((causes or raised).items())
    return DistributedTrainingError(
        f"Training process rank {rank} of {nproc} failed: {type(error).__name__}: {error}{STOPPED}"), error


def _how_it_ended(process) -> str:
    """How a process that left no error ended, from the launcher's record of it (if any)."""
    if process is None:
        return "died without an error (killed? out of memory?)"
    if process.signal_name() != "<N/A>":
        return f"was killed by {process.signal_name()}"
    return f"exited with code {process.exitcode} without an error"


def _lost_peer(error: BaseException) -> bool:
    """An error of the communication itself (a peer process is gone), not of the training."""
    text = str(error)
    return isinstance(error, dist.DistError) or any(
        sign in text for sign in ("Connection reset by peer", "Connection closed by peer",
                                  "Broken pipe", "remote process exited"))
