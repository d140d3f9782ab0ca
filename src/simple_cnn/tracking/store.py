"""Where the runs are recorded: the project's own SQLite store unless told otherwise, checked
before anything runs.

kedro-mlflow takes ``server.mlflow_tracking_uri`` from ``mlflow.yml``, else
``$MLFLOW_TRACKING_URI``, else a ``mlruns/`` folder, which MLflow 3 refuses (its file store is
retired). Here the last default is ``sqlite:///<project>/mlflow.db`` with the artifacts in
``<project>/mlruns/``, wherever ``kedro`` is started from.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from copy import deepcopy
from pathlib import Path
from typing import Any

from simple_cnn.errors import TrackingError

STORE_FILE = "mlflow.db"
ARTIFACTS_FOLDER = "mlruns"
REACH_SECONDS = 3.0


def with_project_store(conf: dict[str, Any], project_path: Path) -> dict[str, Any]:
    """``conf`` (the mlflow.yml config) with the store filled in where neither mlflow.yml nor
    ``$MLFLOW_TRACKING_URI`` names one."""
    conf = deepcopy(conf)
    server = conf.setdefault("server", {}) or {}
    conf["server"] = server
    if server.get("mlflow_tracking_uri"):
        return conf
    if os.environ.get("MLFLOW_TRACKING_URI"):
        server["mlflow_tracking_uri"] = os.environ["MLFLOW_TRACKING_URI"]
        return conf
    server["mlflow_tracking_uri"] = f"sqlite:///{Path(project_path).resolve() / STORE_FILE}"
    experiment = conf.setdefault("tracking", {}).setdefault("experiment", {})
    created = experiment.setdefault("create_experiment_kwargs", {})
    if not created.get("artifact_location"):
        created["artifact_location"] = str(Path(project_path).resolve() / ARTIFACTS_FOLDER)
    return conf


def fallback_hint(project_path: Path) -> str:
    return (f"To record in the project's own store (sqlite:///{Path(project_path).resolve() / STORE_FILE}) "
            "instead, remove server.mlflow_tracking_uri from conf/<env>/mlflow.yml and unset "
            "MLFLOW_TRACKING_URI; to run without tracking, set SIMPLE_CNN_TRACKING=off.")


def check_store(uri: str, project_path: Path) -> None:
    """Refuse a store that cannot take this run, before any node runs: a server that does not
    answer, or a SQLite file (or its folder) that cannot be written."""
    if uri.startswith(("http://", "https://")):
        _check_server(uri, project_path)
    elif uri.startswith("sqlite:///"):
        _check_writable(Path(uri.removeprefix("sqlite:///")), f"The MLflow store {uri}", project_path)


def check_artifacts(location: str | None, project_path: Path) -> None:
    """Refuse a local artifact folder that cannot be written (remote ones are MLflow's)."""
    if location and (location.startswith("file://") or "://" not in location):
        folder = Path(location.removeprefix("file://"))
        _check_writable(folder, f"The MLflow artifact folder {folder}", project_path)


def _check_server(uri: str, project_path: Path) -> None:
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=REACH_SECONDS):
            return
    except urllib.error.HTTPError:
        return  # it answers: a server without /health, or behind a proxy; MLflow says the rest
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise TrackingError(
            f"The MLflow tracking server {uri} cannot be reached ({reason}), so the run was not "
            f"started and nothing was trained or saved. Start the server (mlflow server --host "
            f"HOST --port PORT), or fix the address. {fallback_hint(project_path)}"
        ) from error


def _check_writable(path: Path, what: str, project_path: Path) -> None:
    nearest = path if path.exists() else next(p for p in path.parents if p.exists())
    # SQLite writes a journal beside its file: the folder must be writable too
    blocked = [p for p in dict.fromkeys([nearest, nearest.parent] if nearest.is_file() else [nearest])
               if not os.access(p, os.W_OK)]
    if blocked:
        raise TrackingError(
            f"{what} cannot be written: {blocked[0]} is read-only for this user, so the run was "
            f"not started and nothing was trained or saved. Make it writable, or point tracking "
            f"at another store (server.mlflow_tracking_uri in conf/<env>/mlflow.yml, or "
            f"MLFLOW_TRACKING_URI). {fallback_hint(project_path)}"
        )


def store_error(uri: str, error: Exception, project_path: Path) -> TrackingError:
    """MLflow's refusal of a store, said with what to do."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if "database schema" in text:
        import mlflow

        return TrackingError(
            f"The MLflow store {uri} was written by another MLflow version than this one "
            f"({mlflow.__version__}): {text.split('. ')[0]}. Nothing was run. Either install the "
            f"MLflow version that wrote it, or back the file up and run `mlflow db upgrade {uri}` "
            f"(this upgrades a store from an older MLflow; a newer one cannot be downgraded), "
            f"or record elsewhere. {fallback_hint(project_path)}"
        )
    return TrackingError(f"The MLflow store {uri} cannot be used: {text}. Nothing was run. "
                         f"{fallback_hint(project_path)}")
