"""``kedro ablation run``: the study's runs as Dask tasks, round by round, each task one Kedro
session with the command's ``--env`` and ``--params``.

1. here: ingest what is missing (as ``--only-missing-outputs`` would) and list the runs whose
   row (``<run name>.ablation_run``) is missing or stale; if the splits are made anew, every
   run is;
2. on the cluster, study by study and round by round: a round's runs start once the rounds
   before them have their rows. For a claim still open after the look before, one task per run
   (they train in parallel); for a decided one, one task saves all of the round's rows as not
   needed. A failed task is reported with its namespace and error; the others go on, and its
   study's later rounds wait for the next invocation;
3. here, once every run has its row: the summary, figures and report.

A worker task of a later round runs its runs' own decision nodes first, which read the rows of
the rounds before them from the catalog: they decide what this command decided.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter, defaultdict
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from kedro.framework.session import KedroSession

from simple_cnn.ablation.studies import NAMESPACE, Run
from simple_cnn.errors import ClusterError, StudyIncompleteError
from simple_cnn.pipelines.ablation.cluster import (
    QUIET,
    StudySessions,
    check_workers,
    one_session_at_a_time,
    probe_folders,
    quiet_logging,
    use_share,
    warm_up,
)

PIPELINE = "ablation"
RUN_NODES = ("configure_run", "train_and_evaluate_run")


@dataclass
class Outcome:
    """What the cluster did: each finished task's timing, each failed run's error (with the
    worker's traceback), and the runs left for a next invocation (an earlier round failed)."""

    finished: list[dict[str, Any]] = field(default_factory=list)
    failed: dict[str, BaseException] = field(default_factory=dict)
    waiting: list[str] = field(default_factory=list)


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
            check_workers(client, probe_folders(session, [r.name for r in pending]), warming)
            outcome = dispatch(client, sessions, pending, Decisions(sessions), echo)
            echo(timing_line(outcome))
    if outcome.failed:
        first = next(iter(outcome.failed.values()))  # its worker traceback, under --traceback
        raise StudyIncompleteError(failure_message(outcome, sessions)) from first
    summarise(sessions)
    return outcome


# ------------------------------------------------------------------ here, before and after
def missing_runs(session: KedroSession) -> tuple[list[Run], int, int]:
    """The runs to do (all of them if the splits are to be made anew; a run whose row is stale
    is done again), how many runs the study has, and how many of those to do are stale."""
    from kedro.framework.project import pipelines

    from simple_cnn.ablation.studies import AblationParams
    from simple_cnn.pipelines.ablation.freshness import outdated

    catalog = session.load_context().catalog
    study = pipelines[PIPELINE]
    runs = AblationParams.model_validate(catalog.load("params:ablation")).runs()
    new_splits = not all(catalog.exists(name) for name in _run_inputs(study) if name in catalog)
    stale = {name.removesuffix(".ablation_run") for name in outdated(catalog, study)}
    pending = [run for run in runs if new_splits or run.name in stale
               or not catalog.exists(f"{run.name}.ablation_run")]
    return pending, len(runs), len(stale & {r.name for r in pending})


def check_runs(session: KedroSession, runs: list[Run]) -> None:
    """Every run's parameters against its real length and the validation split, here, before
    any of them trains (a run that cannot train would otherwise fail on its worker)."""
    from simple_cnn.ablation.studies import AblationParams
    from simple_cnn.pipelines.ablation.nodes import RunNodes

    catalog = session.load_context().catalog
    ablation = AblationParams.model_validate(catalog.load("params:ablation"))
    summary, cnn = catalog.load("dataset_summary"), catalog.load("params:cnn")
    for run in runs:
        refuse_ddp(run.namespace, RunNodes(run).configure_run(cnn, ablation, summary))


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
    runs = study.only_nodes(*(n.name for n in study.nodes if n.name.endswith(RUN_NODES)))
    return {name for name in runs.inputs() if not name.startswith("params:")
            and not name.endswith(".ablation_run")}


def summarise(sessions: StudySessions) -> None:
    """The summary, figures and report, from every run's row: made when missing, or when made
    from other rows or settings (``freshness.py``), so a second invocation makes nothing."""
    from kedro.framework.project import pipelines

    with sessions.session() as session:
        session.load_context()
        names = [n.name for n in pipelines[PIPELINE].nodes if n.namespace == NAMESPACE
                 or n.name.endswith("collect_study_rows")]
        session.run(pipeline_names=[PIPELINE], node_names=names, only_missing_outputs=True)


def failure_message(outcome: Outcome, sessions: StudySessions) -> str:
    failed = outcome.failed
    lines = [f"{len(failed)} run(s) of the ablation study failed (the others finished and "
             "kept their rows):"]
    lines += [f"  {namespace}: {_one_line(error)}" for namespace, error in sorted(failed.items())]
    if outcome.waiting:
        lines.append(f"{len(outcome.waiting)} run(s) of later rounds of their studies wait for them.")
    env = f" --env {sessions.env}" if sessions.env else ""
    lines.append(f"Fix the cause, then run the same command again: it runs just these (finished "
                 f"runs are skipped), then builds the summary. Or, in one process: kedro run"
                 f"{env} --pipelines ablation --namespaces {','.join(sorted(failed))}")
    return "\n".join(lines)


def timing_line(outcome: Outcome) -> str:
    """How long the tasks took and how much of it was the per-task overhead (session start,
    loading the splits, saving the row): the task's wall time minus its nodes' time."""
    tasks = outcome.finished
    if not tasks:
        return "No run finished."
    wall = sum(r["seconds"] for r in tasks) / len(tasks)
    overhead = sum(r["seconds"] - r["node_seconds"] for r in tasks) / len(tasks)
    return (f"{len(tasks)} task(s) finished: {wall:.1f} s each on average, of which "
            f"{overhead:.1f} s per-task overhead (session start, loading the splits, saving).")


class Decisions:
    """The decision after a study's round, read from the rows the catalog holds now."""

    def __init__(self, sessions: StudySessions) -> None:
        self._sessions = sessions

    def __call__(self, study: str, look: int) -> dict[str, Any]:
        from simple_cnn.ablation.sequential import decision
        from simple_cnn.ablation.studies import AblationParams

        with self._sessions.session() as session:
            catalog = session.load_context().catalog
            ablation = AblationParams.model_validate(catalog.load("params:ablation"))
            rows = [catalog.load(f"{run.name}.ablation_run") for run in ablation.runs()
                    if run.study == study and run.round <= look]
            return decision(study, rows, ablation, look)


# --------------------------------------------------------------------------- the rounds
def dispatch(client, sessions: StudySessions, pending: list[Run], decide, echo=print) -> Outcome:
    """Round by round per study (a round starts once the rounds before it are done); a progress
    bar with done / running / failed counts."""
    from distributed import wait
    from tqdm.auto import tqdm

    if client.dashboard_link and _has_bokeh():
        echo(f"Dask dashboard: {client.dashboard_link}")
    rounds: dict[tuple[str, int], list[Run]] = defaultdict(list)
    for run in pending:
        rounds[(run.study, run.round)].append(run)
    in_flight: Counter = Counter()
    futures: dict[Any, tuple[tuple[str, int], list[str]]] = {}
    outcome, blocked = Outcome(), set[str]()
    with tqdm(total=len(pending), desc="ablation runs", unit="run") as bar:
        while rounds or futures:
            for key in [k for k in rounds if _ready(k, rounds, in_flight, blocked)]:
                for task in _tasks(key, rounds.pop(key), decide):
                    future = client.submit(run_namespaces, sessions, task, key[1], pure=False,
                                           key=f"{task[0]}-{uuid.uuid4().hex[:8]}")
                    futures[future] = (key, task)
                    in_flight[key] += 1
            if not futures:  # only rounds behind a failed one are left
                outcome.waiting = [r.namespace for runs in rounds.values() for r in runs]
                break
            done = wait(list(futures), return_when="FIRST_COMPLETED").done
            for future in done:
                key, task = futures.pop(future)
                in_flight[key] -= 1
                _collect(future, task, key, outcome, blocked, bar)
            bar.set_postfix(done=bar.n, running=sum(in_flight.values()), failed=len(outcome.failed),
                            refresh=False)
    return outcome


def _ready(key: tuple[str, int], rounds, in_flight: Counter, blocked: set[str]) -> bool:
    """A study's round may start when no round before it is still to run or running."""
    study, round_ = key
    return study not in blocked and all(
        (study, before) not in rounds and not in_flight[(study, before)] for before in range(1, round_))


def _tasks(key: tuple[str, int], runs: list[Run], decide) -> list[list[str]]:
    """One task per run while the claim is open; one task for the whole round when it is
    decided (its runs only save rows that say so)."""
    study, round_ = key
    if round_ > 1 and not decide(study, round_ - 1)["open"]:
        return [[run.namespace for run in runs]]
    return [[run.namespace] for run in runs]


def _collect(future, task: list[str], key: tuple[str, int], outcome: Outcome, blocked: set[str], bar) -> None:
    if future.status == "finished":
        outcome.finished.append(future.result())
    else:
        error = future.exception().with_traceback(future.traceback())
        for namespace in task:
            outcome.failed[namespace] = error
        blocked.add(key[0])
        bar.write(f"failed: {', '.join(task)}: {_one_line(error)}")
    bar.update(len(task))


def _one_line(error: BaseException | None) -> str:
    return " ".join(f"{type(error).__name__}: {error}".split())


def _has_bokeh() -> bool:
    from importlib.util import find_spec

    return find_spec("bokeh") is not None


# ------------------------------------------------------------------------- on a worker
def run_namespaces(sessions: StudySessions, namespaces: list[str], round_: int) -> dict[str, Any]:
    """On a worker: the nodes of ``namespaces`` (runs of one round of one study), after the
    study's decision on the round before, in one Kedro session; the task's timing, for the
    overhead figure. Errors travel back to the command with their traceback."""
    from simple_cnn.hooks.profile import profile_returned

    nodes = ("decide_whether_to_run", *RUN_NODES) if round_ > 1 else RUN_NODES
    start = time.perf_counter()
    with one_session_at_a_time:
        use_share(sessions)
        with profile_returned() as rows, sessions.session(QUIET) as session:
            quiet_logging()
            session.run(pipeline_names=[PIPELINE], node_names=[
                f"{namespace}.{name}" for namespace in namespaces for name in nodes])
    return {"namespaces": namespaces, "seconds": time.perf_counter() - start,
            "node_seconds": sum(row["seconds"] for row in rows)}
