"""The Dask side of ``kedro ablation run``: how every Kedro session of the study is created,
the local or remote cluster, the check that its workers can run the project and see its data,
and each worker's share of the machine. The study's rounds are ``rounds.py``'s."""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from simple_cnn.errors import ClusterError
from simple_cnn.params import merged

CONNECT_TIMEOUT_S = 5
WORKERS_TIMEOUT_S = 30
QUIET = {"cnn": {"training": {"progress_bar": False}}}  # a worker's bar would break the study's

one_session_at_a_time = threading.Lock()  # Kedro's hooks and settings are per process


@dataclass(frozen=True)
class StudySessions:
    """How every Kedro session of one study is created, here and on each worker: the same
    project, ``--env`` and ``--params``; plus each worker's share of the machine."""

    project: Path
    env: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    torch_threads: int | None = None  # a local cluster's workers split the cores
    gpus: int = 0  # a local cluster's worker i uses GPU i mod gpus

    @contextmanager
    def session(self, changes: dict[str, Any] | None = None) -> Iterator[KedroSession]:
        bootstrap_project(self.project)
        params = merged(self.params, changes or {})
        session = KedroSession.create(project_path=self.project, env=self.env, runtime_params=params)
        with session:
            yield session


# --------------------------------------------------------------------------- the cluster
@contextmanager
def local_cluster(workers: int) -> Iterator[Any]:
    """A ``LocalCluster`` of ``workers`` processes, one thread each, on 127.0.0.1. A worker that
    dies takes its task with it once (Dask retries it on another worker), not three times.

    Dask starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which turns off glibc's adaptive
    thresholds: every large tensor allocation becomes a fresh ``mmap``, and torch's CPU
    training ran 2.4x slower (4.6 s against 1.9 s for a 200-step smoke run on one thread).
    Unset here."""
    import dask
    from distributed import Client, LocalCluster

    dashboard = "127.0.0.1:0" if _has_bokeh() else None
    _quiet_dask()
    settings = {"distributed.scheduler.allowed-failures": 1,
                "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
    with dask.config.set(settings), \
            LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                         host="127.0.0.1", dashboard_address=dashboard) as cluster, \
            Client(cluster) as client:
        yield client


@contextmanager
def remote_cluster(address: str) -> Iterator[Any]:
    """A client of the scheduler at ``address``; a clear error if it cannot be reached within
    a few seconds or has no workers."""
    from distributed import Client

    _quiet_dask()
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError) as error:
        raise ClusterError(
            f"Cannot reach the Dask scheduler at {address!r} within {CONNECT_TIMEOUT_S} s "
            f"({error}). Start one with `dask scheduler --host <a private address>` (never on "
            f"every interface: it runs any client's code) and a worker on each machine with "
            f"`dask worker tcp://<address>:8786`, or run a local cluster with --workers N.") from None
    with client:
        try:
            client.wait_for_workers(1, timeout=WORKERS_TIMEOUT_S)
        except TimeoutError:
            raise ClusterError(
                f"The Dask scheduler at {address} has no workers after {WORKERS_TIMEOUT_S} s: "
                f"start one on each machine with `dask worker {address} --nthreads 1`.") from None
        yield client


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_workers() -> int:
    """One local worker per GPU, or one per 4 cores (a training run uses several threads well)."""
    import torch

    return torch.cuda.device_count() or max(1, _cores() // 4)


def local_shares(workers: int) -> tuple[int, int]:
    """Each local worker's torch threads and the GPUs to spread. Threads: ``OMP_NUM_THREADS``
    if set (as torch itself reads it), else the cores split evenly."""
    import torch

    threads = os.environ.get("OMP_NUM_THREADS", "")
    share = int(threads) if threads.isdigit() and int(threads) > 0 else _cores() // workers
    return max(1, share), torch.cuda.device_count()


def probe_folders(session: KedroSession, runs: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """Where the runs' data really is: the folders of the splits they read and of the rows they
    write, as fsspec URLs (a local path made absolute against the project), each with the
    storage options its catalog entry reaches it with (``credentials`` and ``fs_args``)."""
    catalog, project = session.load_context().catalog, Path(session._project_path)
    names = ["train_split", *(f"{run}.ablation_run" for run in runs[:1])]
    folders: list[tuple[str, dict[str, Any]]] = []
    for name in names:
        dataset = catalog.get(name) if name in catalog else None
        dataset = getattr(dataset, "wrapped", dataset)
        path, protocol = getattr(dataset, "_filepath", None), getattr(dataset, "_protocol", None)
        if path is None:
            continue
        folder = str(PurePosixPath(path).parent)
        if protocol != "file":
            folder = f"{protocol}://{folder}"
        elif not Path(folder).is_absolute():
            folder = str(project / folder)
        storage = dict(getattr(getattr(dataset, "_fs", None), "storage_options", {}) or {})
        if folder not in [f for f, _ in folders]:
            folders.append((folder, storage))
    return folders


def check_workers(client, folders: list[tuple[str, dict[str, Any]]], warming: list | None = None) -> None:
    """Refuse a cluster whose workers cannot import this project (``warming``: their imports,
    started earlier) or cannot see where the runs read and write (``folders``: fsspec URLs with
    the catalog's storage options: a probe file is written to each and must be read back by
    every worker, through the same options)."""
    import fsspec

    try:
        client.gather(warming or [])
    except Exception as error:  # noqa: BLE001 - a worker's error, shown to the user
        raise ClusterError(
            f"The Dask workers cannot run this project's code ({type(error).__name__}: {error}). "
            f"Install the project on every worker machine (pip install -e <project>) "
            f"with the same versions as here.") from None
    for folder, storage in folders:
        probe = f"{folder.rstrip('/')}/.dask-probe-{uuid.uuid4().hex}"
        fs, path = fsspec.core.url_to_fs(probe, **storage)
        fs.makedirs(fs._parent(path), exist_ok=True)
        fs.pipe(path, probe.encode())
        try:
            seen = client.run(read_probe, probe, storage)
        finally:
            fs.rm(path)
        blind = sorted(worker for worker, text in seen.items() if text != probe)
        if blind:
            raise ClusterError(
                f"These Dask workers cannot see {folder}, where the runs read and write: "
                f"{', '.join(blind)}. Every worker must see it at the same path: put the project "
                f"on shared storage (NFS, a cluster file system) or point the catalog at a "
                f"file system every worker reaches (fsspec paths such as s3://) in a conf env.")


def read_probe(url: str, storage: dict[str, Any] | None = None) -> str | None:
    """On a worker: the probe file's text (read through fsspec, with the catalog's storage
    options), or None if it cannot see it."""
    import fsspec

    try:
        with fsspec.open(url, "rb", **(storage or {})) as handle:
            return handle.read().decode()
    except (OSError, ValueError):
        return None


def warm_up() -> None:
    """On a worker: import what a run needs, while the command still ingests."""
    import simple_cnn.pipelines.ablation.nodes  # noqa: F401 - torch, kedro, the project


def use_share(sessions: StudySessions) -> None:
    import torch

    if sessions.torch_threads:
        torch.set_num_threads(sessions.torch_threads)
    if sessions.gpus:
        from distributed import get_worker

        torch.cuda.set_device(int(get_worker().name) % sessions.gpus)


def quiet_logging() -> None:
    """A worker logs warnings and errors only: the command's progress bar says the rest."""
    for name in ("kedro", "simple_cnn", ""):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("kedro_viz").setLevel(logging.ERROR)  # "tracking is off for partial runs"
    worker_log = logging.getLogger("distributed.worker")
    if not any(isinstance(f, _ReportedByTheCommand) for f in worker_log.filters):
        worker_log.addFilter(_ReportedByTheCommand())


class _ReportedByTheCommand(logging.Filter):
    """Drops the worker's "Compute Failed" record (a page of traceback): the command names
    the failed run and its error, and ``--traceback`` shows the rest."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Compute Failed")


# ------------------------------------------------------------------------------ helpers
def _quiet_dask() -> None:
    """Dask's own INFO lines (workers starting, stopping) would bury the progress bar."""
    logging.getLogger("distributed").setLevel(logging.WARNING)


def _has_bokeh() -> bool:
    from importlib.util import find_spec

    return find_spec("bokeh") is not None
