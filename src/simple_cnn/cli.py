"""Project commands, added to ``kedro``'s: ``kedro prune-versions``, ``kedro ablation run`` (the
study on a Dask cluster), and ``kedro run`` with short messages for the project's own errors."""

from __future__ import annotations

import os
import re
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from kedro.framework.cli.project import run as kedro_run
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from kedro.io.core import AbstractVersionedDataset
from kedro.validation import ParameterValidationError

from simple_cnn.errors import (
    ClusterError,
    ConcurrentRunError,
    ConfigError,
    DataError,
    DistributedTrainingError,
    NonFiniteLossError,
    StudyIncompleteError,
    TrackingError,
)
from simple_cnn.versions import delete, human, plan_prune, versions

# Kedro imports this module before it runs any command, so this filter quiets upstream noise
# for every `kedro ...` call in the project: Kedro 1.7 deprecates `--pipeline` for
# `--pipelines` (both work; this project documents `kedro run --pipeline cnn`).
warnings.filterwarnings("ignore", message="Option '--pipeline' is deprecated")


@click.group(name="Simple CNN")
def cli() -> None:
    """Simple CNN's own commands."""


# Errors whose message already says what is wrong and how to fix it: shown without traceback.
READABLE = (ClusterError, ConfigError, ConcurrentRunError, DataError, DistributedTrainingError,
            NonFiniteLossError, ParameterValidationError, StudyIncompleteError, TrackingError)
TRACEBACK_VARIABLE = "SIMPLE_CNN_TRACEBACK"


def short_message(error: BaseException) -> str:
    """The message alone; for Kedro's parameter validation, only the lines naming keys."""
    text = str(error)
    if isinstance(error, ParameterValidationError):
        text = text.removeprefix("Parameter validation failed:\n")
        text = re.sub(r"^- Parameter '[^']+': (Failed to instantiate \w+ for parameter '[^']+': )?",
                      "", text, flags=re.M)
    return text


@contextmanager
def readable_errors(show_traceback: bool) -> Iterator[None]:
    """The project's own errors as a short message and exit code 1; others as Kedro shows them."""
    try:
        yield
    except READABLE as error:
        if show_traceback or os.environ.get(TRACEBACK_VARIABLE, "") not in ("", "0"):
            raise
        click.secho(f"Error: {short_message(error)}", fg="red", err=True)
        click.echo(f"(The full traceback: add --traceback, or set {TRACEBACK_VARIABLE}=1.)",
                   err=True)
        sys.exit(1)


TRACEBACK_OPTION = click.Option(["--traceback"], is_flag=True,
                                help="Show the full traceback of the project's own errors.")


@cli.command("run", params=[*kedro_run.params, TRACEBACK_OPTION],
             help=kedro_run.help, short_help=kedro_run.short_help)
def run(traceback: bool, **kwargs) -> None:
    with readable_errors(traceback):
        check_pipeline_names([kwargs["pipeline"]] if kwargs.get("pipeline") else kwargs.get("pipelines") or [])
        kedro_run.callback(**kwargs)  # type: ignore[misc]  # click types every callback optional


def check_pipeline_names(names: list[str]) -> None:
    """A pipeline name that is not registered, refused before the session starts (from the
    registry's names: nothing is built), with the closest names."""
    from difflib import get_close_matches

    from simple_cnn.pipeline_registry import COMPOSED

    for name in names:
        if name not in COMPOSED:
            close = get_close_matches(name, list(COMPOSED), n=3)
            hint = f"did you mean {' or '.join(close)}? " if close else ""
            raise ConfigError(f"There is no pipeline {name!r}: {hint}the pipelines are "
                              f"{', '.join(COMPOSED)} (kedro registry list).")


@cli.group()
def ablation() -> None:
    """The ablation study on a Dask cluster (`kedro run --pipelines ablation` runs it in one
    process, one run after another)."""


KEDRO_RUN_OPTIONS = {option.name: option for option in kedro_run.params}


@ablation.command("run", params=[KEDRO_RUN_OPTIONS["env"], KEDRO_RUN_OPTIONS["params"],
                                 TRACEBACK_OPTION])
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Start a local Dask cluster of this many worker processes (they split the "
                   "cores; with GPUs, worker i uses GPU i mod their number). Default: one per "
                   "GPU, or one per 4 cores.")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Use the running Dask scheduler at ADDRESS (e.g. tcp://HOST:8786) instead; "
                   "its workers must see this project's folder at the same path.")
def ablation_run(workers: int | None, scheduler: str | None, env: str | None,
                 params: dict, traceback: bool) -> None:
    """Run the ablation study, round by round, one Dask task per variant x seed of a claim still
    open, then its summary, figures and report. Runs whose row exists are skipped, so an
    interrupted study resumes."""
    from kedro.utils import find_kedro_project

    from simple_cnn.pipelines.ablation import cluster, rounds

    if workers and scheduler:
        raise click.UsageError("Give --workers (a local cluster) or --scheduler (a running one), not both.")
    project = find_kedro_project(Path.cwd()) or Path.cwd()
    with readable_errors(traceback):
        if scheduler:
            sessions = cluster.StudySessions(project, env, params or {})
            clients = lambda: cluster.remote_cluster(scheduler)  # noqa: E731
        else:
            workers = workers or cluster.default_workers()
            threads, gpus = cluster.local_shares(workers)
            sessions = cluster.StudySessions(project, env, params or {}, threads, gpus)
            clients = lambda: cluster.local_cluster(workers)  # noqa: E731
        rounds.run_study(sessions, clients, echo=click.echo)


def _versioned_folders(env: str | None) -> dict[str, Path]:
    """Every versioned dataset the catalog knows (factory patterns resolved against the
    registered pipelines) and the folder holding its versions."""
    from kedro.framework.project import pipelines
    from kedro.utils import find_kedro_project

    project = find_kedro_project(Path.cwd()) or Path.cwd()  # as `kedro run` finds it
    bootstrap_project(project)
    session = KedroSession.create(project_path=project, env=env)
    with session:
        catalog = session.load_context().catalog
        names = set(catalog.keys())
        for pipeline in pipelines.values():
            names |= pipeline.datasets()
        folders = {}
        for name in sorted(names):
            if name.startswith("params:") or name == "parameters" or name not in catalog:
                continue
            dataset = catalog.get(name)
            if isinstance(dataset, AbstractVersionedDataset) and dataset._version is not None:
                folders[name] = project / str(dataset._filepath)
        return folders


def _pins(load_versions: tuple[str, ...], folders: dict[str, Path]) -> dict[str, set[str]]:
    pins: dict[str, set[str]] = {}
    for item in (part for value in load_versions for part in value.split(",") if part):
        name, sep, version = item.partition(":")
        if not sep or not name or not version:
            raise click.UsageError(f"--load-versions takes dataset:version, got {item!r}.")
        if name not in folders:
            raise click.UsageError(f"--load-versions names {name!r}, which is not a versioned dataset.")
        if version not in versions(folders[name]):
            raise click.UsageError(f"--load-versions: {name} has no version {version!r}.")
        pins.setdefault(name, set()).add(version)
    return pins


@cli.command("prune-versions")
@click.option("--keep", type=int, required=True, help="How many of the newest versions to keep (>= 1).")
@click.option("--dataset", "datasets", multiple=True,
              help="Only this dataset (repeat for several); default: every versioned dataset.")
@click.option("--dry-run", is_flag=True, help="Show what would be deleted; delete nothing.")
@click.option("--load-versions", "-lv", "load_versions", multiple=True,
              help="dataset:version pins, as for kedro run; pinned versions are never deleted.")
@click.option("--env", "-e", default=None, help="Kedro configuration environment.")
def prune_versions(keep: int, datasets: tuple[str, ...], dry_run: bool,
                   load_versions: tuple[str, ...], env: str | None) -> None:
    """Delete all but the newest KEEP versions of each versioned dataset."""
    folders = _versioned_folders(env)
    all_folders = folders
    if datasets:
        unknown = sorted(set(datasets) - folders.keys())
        if unknown:
            raise click.UsageError(
                f"Not versioned datasets of this project: {', '.join(unknown)}. Versioned ones: "
                f"{', '.join(sorted(folders))}.")
        folders = {name: folders[name] for name in datasets}
    pins = _pins(load_versions, all_folders)
    try:
        doomed = plan_prune(folders, keep, pins)
    except ValueError as error:  # --keep below 1
        raise click.UsageError(str(error)) from error
    verb = "would delete" if dry_run else "deleting"
    for item in doomed:
        click.echo(f"{verb} {item.dataset} {item.path.name} ({human(item.bytes)})")
    freed = sum(item.bytes for item in doomed) if dry_run else delete(doomed)
    summary = "would free" if dry_run else "freed"
    click.echo(f"{len(doomed)} version(s) of {len({d.dataset for d in doomed})} dataset(s): "
               f"{summary} {human(freed)}.")
