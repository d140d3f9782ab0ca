"""``kedro ablation run``: the study's variant x seed runs as Dask tasks, each one Kedro session.

Three steps, each a Kedro session with the command's ``--env`` and ``--params``:

1. here: ingest what is missing (as ``--only-missing-outputs`` would) and list the runs whose
   row (``<namespace>.ablation_run``) is missing; if the splits are made anew, every run is;
2. on the cluster: one task per missing run, running that namespace's two nodes on a worker;
   a failed task is reported with its namespace and error, and the others go on;
3. here, once every run has its row: the summary, figures and report.

Dask does the scheduling (a ``LocalCluster`` of worker processes, or an existing scheduler);
Kedro's catalog does the saving, atomically, so an interrupted study resumes where it stopped.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from simple_cnn.ablation.studies import NAMESPACE
from simple_cnn.errors import ClusterError, StudyIncompleteError
from simple_cnn.params import merged

PIPELINE = "ablation"
RUN_NODES = ("configure_run", "train_and_evaluate_run")
CONNECT_TIMEOUT_S = 5
WORKERS_TIMEOUT_S = 30
QUIET = {"cnn": {"training": {"progress_bar": False}}}  # a worker's bar would break the study's

_one_session_at_a_time = threading.Lock()  # Kedro's hooks and settings are per process


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
        with KedroSession.create(project_path=self.project, env=self.env,
                                 runtime_params=params) as session:
            yield session


@dataclass
class Outcome:
    """What the cluster did: each finished run's timing, and each failed run's error (with
    the worker's traceback)."""

    finished: list[dict[str, Any]] = field(default_factory=list)
    failed: dict[str, BaseException] = field(default_factory=dict)


def run_study(sessions: StudySessions, client_factory, echo=print) -> Outcome:
    """Steps 1 to 3 (see the module's docstring); raises ``StudyIncompleteError`` naming the
    failed runs, after the others have finished. The cluster starts, and its workers import
    the project, while this process ingests."""
    outcome = Outcome()
    with ExitStack() as stack:
        session = stack.enter_context(sessions.session())
        pending, total, stale = missing_runs(session)
        echo(f"Ablation study: {total} runs, {total - len(pending)} already have their row, "
             f"{len(pending)} to run" + (f" ({stale} of them stale: made with other settings)."
                                         if stale else "."))
        if not pending:
            ingest(session)
        else:
            client = stack.enter_context(client_factory())
            warming = [client.submit(warm_up, pure=False, workers=[worker])  # meanwhile
                       for worker in client.scheduler_info()["workers"]]
            ingest(session)
            check_runs(session, pending)
            check_workers(client, probe_folders(session, pending), warming)
            outcome = dispatch(client, sessions, pending, echo)
            echo(timing_line(outcome))
    if outcome.failed:
        first = next(iter(outcome.failed.values()))  # its worker traceback, under --traceback
        raise StudyIncompleteError(failure_message(outcome.failed, sessions)) from first
    summarise(sessions, made_anew=bool(pending))
    return outcome


# ------------------------------------------------------------------ here, before and after
def missing_runs(session: KedroSession) -> tuple[list[str], int, int]:
    """The namespaces of the runs to do (all of them if the splits are to be made anew; a run
    whose row was made with other settings is done again), how many runs the study has, and
    how many of those to do are stale."""
    from kedro.framework.project import pipelines

    from simple_cnn.pipelines.ablation.freshness import outdated

    catalog = session.load_context().catalog
    study = pipelines[PIPELINE]
    namespaces = sorted({n.namespace for n in study.nodes if n.namespace})
    new_splits = not all(catalog.exists(name) for name in _run_inputs(study) if name in catalog)
    stale = {name.removesuffix(".ablation_run") for name in outdated(catalog, study)}
    pending = [ns for ns in namespaces
               if new_splits or ns in stale or not catalog.exists(f"{ns}.ablation_run")]
    return pending, len(namespaces), len(stale & set(pending))


def check_runs(session: KedroSession, namespaces: list[str]) -> None:
    """Every run's parameters against its real length and the validation split, here, before
    any of them trains (a run that cannot train would otherwise fail on its worker)."""
    from simple_cnn.ablation.studies import AblationParams
    from simple_cnn.pipelines.ablation.nodes import RunNodes

    catalog = session.load_context().catalog
    ablation = AblationParams.model_validate(catalog.load("params:ablation"))
    summary, cnn = catalog.load("dataset_summary"), catalog.load("params:cnn")
    runs = {run.namespace: run for run in ablation.runs()}
    for namespace in namespaces:
        refuse_ddp(namespace, RunNodes(runs[namespace]).configure_run(cnn, ablation, summary))


def refuse_ddp(namespace: str, params) -> None:
    """A run that would train on several processes cannot run as a Dask task: Dask's worker
    processes are daemonic, and a daemonic process may not start children."""
    processes = params.training.distributed.nproc_per_node
    if processes > 1:
        raise ClusterError(
            f"{namespace} trains on {processes} processes (cnn.training.distributed."
            f"nproc_per_node={processes}), which a Dask task cannot start: Dask's worker processes "
            f"are daemonic and may not have children. kedro ablation run spreads the runs over "
            f"the workers instead (one GPU each): set nproc_per_node: 1, or train the study in one "
            f"process with kedro run --pipelines ablation.")


def ingest(session: KedroSession) -> None:
    """The study's ingestion nodes whose outputs are missing (none, usually)."""
    from kedro.framework.project import pipelines

    study = pipelines[PIPELINE]
    ingestion = [n.name for n in study.nodes if NAMESPACE not in n.tags]
    session.run(pipeline_names=[PIPELINE], node_names=ingestion, only_missing_outputs=True)


def _run_inputs(study) -> set[str]:
    """The datasets the runs share, made by ingestion (the splits and the dataset summary)."""
    runs = study.only_nodes(*(n.name for n in study.nodes if n.namespace))
    return {name for name in runs.inputs() if not name.startswith("params:")
            and not name.endswith(".cnn_checkpoint")}


def summarise(sessions: StudySessions, made_anew: bool) -> None:
    """The summary, figures and report, from every run's row. When no run was made by this
    command, only what is missing is made (a second invocation makes nothing)."""
    from kedro.framework.project import pipelines

    with sessions.session() as session:
        session.load_context()
        names = [n.name for n in pipelines[PIPELINE].nodes if NAMESPACE in n.tags and not n.namespace]
        session.run(pipeline_names=[PIPELINE], node_names=names,
                    only_missing_outputs=not made_anew)


def failure_message(failed: dict[str, BaseException], sessions: StudySessions) -> str:
    lines = [f"{len(failed)} run(s) of the ablation study failed (the others finished and "
             "kept their rows):"]
    lines += [f"  {namespace}: {_one_line(error)}" for namespace, error in sorted(failed.items())]
    env = f" --env {sessions.env}" if sessions.env else ""
    lines.append(f"Fix the cause, then run the same command again: it runs just these (finished "
                 f"runs are skipped), then builds the summary. Or, in one process: kedro run"
                 f"{env} --pipelines ablation --namespaces {','.join(sorted(failed))}")
    return "\n".join(lines)


def timing_line(outcome: Outcome) -> str:
    """How long the runs took and how much of it was the per-task overhead (session start,
    loading the splits, saving the row): the task's wall time minus its nodes' time."""
    runs = outcome.finished
    if not runs:
        return "No run finished."
    wall = sum(r["seconds"] for r in runs) / len(runs)
    overhead = sum(r["seconds"] - r["node_seconds"] for r in runs) / len(runs)
    return (f"{len(runs)} run(s) finished: {wall:.1f} s each on average, of which "
            f"{overhead:.1f} s per-task overhead (session start, loading the splits, saving).")


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


def probe_folders(session: KedroSession, namespaces: list[str]) -> list[str]:
    """Where the runs' data really is, as fsspec URLs: the folders of the splits they read and
    of the rows they write (a local path made absolute against the project; ``s3://...`` and
    other file systems as the catalog names them)."""
    catalog, project = session.load_context().catalog, Path(session._project_path)
    names = ["train_split", *(f"{ns}.ablation_run" for ns in namespaces[:1])]
    folders = []
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
        if folder not in folders:
            folders.append(folder)
    return folders


def check_workers(client, folders: list[str], warming: list | None = None) -> None:
    """Refuse a cluster whose workers cannot import this project (``warming``: their imports,
    started earlier) or cannot see where the runs read and write (``folders``, fsspec URLs:
    a probe file is written to each and must be read back by every worker)."""
    import fsspec

    try:
        client.gather(warming or [])
    except Exception as error:  # noqa: BLE001 - a worker's error, shown to the user
        raise ClusterError(
            f"The Dask workers cannot run this project's code ({type(error).__name__}: {error}). "
            f"Install the project on every worker machine (pip install -e <project>) "
            f"with the same versions as here.") from None
    for folder in folders:
        probe = f"{folder.rstrip('/')}/.dask-probe-{uuid.uuid4().hex}"
        fs, path = fsspec.core.url_to_fs(probe)
        fs.makedirs(fs._parent(path), exist_ok=True)
        fs.pipe(path, probe.encode())
        try:
            seen = client.run(read_probe, probe)
        finally:
            fs.rm(path)
        blind = sorted(worker for worker, text in seen.items() if text != probe)
        if blind:
            raise ClusterError(
                f"These Dask workers cannot see {folder}, where the runs read and write: "
                f"{', '.join(blind)}. Every worker must see it at the same path: put the project "
                f"on shared storage (NFS, a cluster file system) or point the catalog at a "
                f"file system every worker reaches (fsspec paths such as s3://) in a conf env.")


def read_probe(url: str) -> str | None:
    """On a worker: the probe file's text (read through fsspec), or None if it cannot see it."""
    import fsspec

    try:
        with fsspec.open(url, "rb") as handle:
            return handle.read().decode()
    except (OSError, ValueError):
        return None


def dispatch(client, sessions: StudySessions, namespaces: list[str], echo=print) -> Outcome:
    """One task per run; a progress bar with done / running / failed counts."""
    from distributed import as_completed
    from tqdm.auto import tqdm

    if client.dashboard_link and _has_bokeh():
        echo(f"Dask dashboard: {client.dashboard_link}")
    futures = {client.submit(run_variant, sessions, ns, key=f"{ns}-{uuid.uuid4().hex[:8]}",
                             pure=False): ns for ns in namespaces}
    outcome = Outcome()
    with tqdm(total=len(futures), desc="ablation runs", unit="run") as bar:
        for future in as_completed(futures):
            namespace = futures.pop(future)
            if future.status == "finished":
                outcome.finished.append(future.result())
            else:
                error = future.exception().with_traceback(future.traceback())
                outcome.failed[namespace] = error
                bar.write(f"failed: {namespace}: {_one_line(error)}")
            bar.set_postfix(done=len(outcome.finished), running=_running(client),
                            failed=len(outcome.failed), refresh=False)
            bar.update()
    return outcome


def _running(client) -> int:
    """Runs in progress: tasks on a worker, at most one per worker thread."""
    try:
        threads = client.nthreads()
        return sum(min(len(keys), threads.get(w, 1)) for w, keys in client.processing().items())
    except Exception:  # noqa: BLE001 - the count is cosmetic; never fail the study for it
        return 0


def _one_line(error: BaseException | None) -> str:
    return " ".join(f"{type(error).__name__}: {error}".split())


# ------------------------------------------------------------------------- on a worker
def run_variant(sessions: StudySessions, namespace: str) -> dict[str, Any]:
    """On a worker: run one namespace's nodes in a Kedro session; its timing, for the
    overhead figure. Errors travel back to the command with their traceback."""
    from simple_cnn.hooks import profile_returned

    start = time.perf_counter()
    with _one_session_at_a_time:
        _use_share(sessions)
        with profile_returned() as rows, sessions.session(QUIET) as session:
            _quiet_logging()
            session.run(pipeline_names=[PIPELINE],
                        node_names=[f"{namespace}.{name}" for name in RUN_NODES])
    return {"namespace": namespace, "seconds": time.perf_counter() - start,
            "node_seconds": sum(row["seconds"] for row in rows)}


def warm_up() -> None:
    """On a worker: import what a run needs, while the command still ingests."""
    import simple_cnn.pipelines.ablation.nodes  # noqa: F401 - torch, kedro, the project


def _use_share(sessions: StudySessions) -> None:
    import torch

    if sessions.torch_threads:
        torch.set_num_threads(sessions.torch_threads)
    if sessions.gpus:
        from distributed import get_worker

        torch.cuda.set_device(int(get_worker().name) % sessions.gpus)


def _quiet_logging() -> None:
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
