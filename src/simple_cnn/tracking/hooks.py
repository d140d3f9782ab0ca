"""The MLflow run of each Kedro run: kedro-mlflow's hook, and what this project adds to it.

Imported only when kedro-mlflow is installed (``simple_cnn.tracking.project_hooks()`` decides).
"""

from __future__ import annotations

import logging
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import mlflow
from kedro.config import MissingConfigException
from kedro.framework.hooks import hook_impl
from kedro.io.core import AbstractVersionedDataset, Version
from kedro.pipeline import Pipeline
from mlflow.entities import Metric as MlflowMetric
from mlflow.entities import Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from pydantic import BaseModel


def _show_all_but_mlflow_advice(show):
    """MLflow advises kedro-mlflow's model class on type hints as it is imported, through a
    filter of its own that no ``filterwarnings`` can override; this drops just that line."""

    def shown(message, *args, **kwargs):
        if "Add type hints to the `predict` method" not in str(message):
            show(message, *args, **kwargs)

    return shown


import kedro.framework.project  # noqa: E402, F401 - sets up Kedro's logging, which takes over warnings

_show, warnings.showwarning = warnings.showwarning, _show_all_but_mlflow_advice(warnings.showwarning)
try:
    from kedro_mlflow.framework.hooks import MlflowHook
finally:
    warnings.showwarning = _show

from simple_cnn.tracking import records, switched_off
from simple_cnn.tracking.store import check_artifacts, check_store, store_error, with_project_store

logger = logging.getLogger(__name__)

MLFLOW_CONFIG_PATTERNS = ["mlflow*", "mlflow*/**", "**/mlflow*"]  # kedro-mlflow's own
BATCH = 1000  # MLflow takes at most 1000 metrics (100 params, 100 tags) per call


class ProjectMlflowHook(MlflowHook):
    """kedro-mlflow's hook (one MLflow run per ``kedro run``), registered by ``settings.py``
    rather than by its entry point, with these changes: the store defaults to the project's
    own and is checked before anything runs; the typed parameter groups (pydantic models,
    which kedro-mlflow would log as one long string) are logged key by key; the run is closed
    for good at the end; and ``SIMPLE_CNN_TRACKING=off`` leaves a session untracked."""

    def __init__(self) -> None:
        super().__init__()
        self._on = False
        self._logged: set[str] = set()  # parameter inputs already logged in this run

    def tracked_run_id(self) -> str | None:
        """The MLflow run of the session's pipeline run, if it is tracked."""
        return self.run_id if self._on and self._is_mlflow_enabled else None

    @hook_impl
    def after_context_created(self, context) -> None:
        self._on, self.run_id = not switched_off(), None
        if not self._on:
            return
        loader = context.config_loader
        loader.config_patterns.setdefault("mlflow", MLFLOW_CONFIG_PATTERNS)
        try:
            conf = loader["mlflow"]
        except MissingConfigException:
            conf = {}
        conf = with_project_store(conf, context.project_path)
        uri = conf["server"]["mlflow_tracking_uri"]
        check_store(uri, context.project_path)
        created = conf.get("tracking", {}).get("experiment", {}).get("create_experiment_kwargs", {})
        check_artifacts(created.get("artifact_location"), context.project_path)
        loader["mlflow"] = conf  # what kedro-mlflow reads next
        try:
            super().after_context_created(context)
        except MlflowException as error:
            raise store_error(uri, error, context.project_path) from error

    @hook_impl
    def after_catalog_created(self, catalog, conf_catalog, conf_creds, parameters, save_version,
                              load_versions) -> None:
        if self._on:
            super().after_catalog_created(catalog, conf_catalog, conf_creds, parameters,
                                          save_version, load_versions)

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Pipeline, catalog) -> None:
        self._logged = set()
        if self._on:
            super().before_pipeline_run(run_params=run_params, pipeline=pipeline, catalog=catalog)

    @hook_impl
    def before_node_run(self, node, catalog, inputs: dict[str, Any], is_async: bool) -> None:
        """kedro-mlflow logs each node's parameter inputs, one call per key; a group that an
        earlier node of the run logged (``params:cnn`` feeds eight nodes) is left out."""
        if not self._on:
            return
        plain = {name: value.model_dump(mode="json") if isinstance(value, BaseModel) else value
                 for name, value in inputs.items() if name not in self._logged}
        self._logged.update(name for name in plain if name.startswith("params:") or name == "parameters")
        super().before_node_run(node=node, catalog=catalog, inputs=plain, is_async=is_async)

    @hook_impl
    def after_pipeline_run(self, run_params: dict[str, Any], pipeline: Pipeline, catalog) -> None:
        if self._on:
            super().after_pipeline_run(run_params=run_params, pipeline=pipeline, catalog=catalog)
            self._close_reopened()

    @hook_impl
    def on_pipeline_error(self, error, run_params: dict[str, Any], pipeline: Pipeline, catalog) -> None:
        if self._on and self._is_mlflow_enabled:
            super().on_pipeline_error(error=error, run_params=run_params, pipeline=pipeline,
                                      catalog=catalog)

    def _close_reopened(self) -> None:
        """kedro-mlflow 2.0 reopens the run before every node and closes it once: with MLflow 3
        each reopening stays on this thread's stack of active runs, and the next session in
        this process (a notebook's, a Dask worker's) would log into this run. Close them all;
        a run the caller had opened before the session is opened again, once."""
        if not self._is_mlflow_enabled:
            return
        while (active := mlflow.active_run()) is not None and active.info.run_id == self.run_id:
            mlflow.end_run()
        if self._already_active_mlflow and self.run_id:
            mlflow.start_run(run_id=self.run_id)


class RunRecordHooks:
    """Logs what the catalog marks with ``metadata: mlflow:`` (see ``records``) to the
    session's MLflow run once the pipeline has run, or failed; tags the run with the Kedro
    environment, the pipelines and the catalog version of every dataset it saved."""

    def __init__(self, tracker: ProjectMlflowHook) -> None:
        self._tracker = tracker
        self._run_id: str | None = None

    @hook_impl(trylast=True)  # after kedro-mlflow has started the run
    def before_pipeline_run(self, run_params: dict[str, Any]) -> None:
        self._run_id = self._tracker.tracked_run_id()
        if self._run_id:
            _log(MlflowClient(), self._run_id, tags=_tags({
                "kedro.env": run_params.get("env") or "local",
                "kedro.pipelines": ",".join(run_params.get("pipeline_names") or ["__default__"]),
                "kedro.save_version": run_params["run_id"],
            }))

    @hook_impl(tryfirst=True)  # before kedro-mlflow ends the run
    def after_pipeline_run(self, run_params: dict[str, Any], pipeline: Pipeline, catalog) -> None:
        self._record(run_params["run_id"], pipeline, catalog)

    @hook_impl(tryfirst=True)
    def on_pipeline_error(self, run_params: dict[str, Any], pipeline: Pipeline, catalog) -> None:
        self._record(run_params["run_id"], pipeline, catalog)

    def _record(self, version: str, pipeline: Pipeline, catalog) -> None:
        """Log what the run saved. Its files are saved by then: a tracking failure (a store
        locked by other writers, a server gone) is a warning naming what was not logged, never
        a failed run."""
        run_id, self._run_id = self._run_id, None
        if run_id is None:
            return
        try:
            self._log_outputs(MlflowClient(), run_id, version, pipeline, catalog)
        except (MlflowException, OSError) as error:
            logger.warning(
                "Tracking failed after the run's outputs were saved (Kedro version %s, MLflow "
                "run %s): %s. The saved files are complete; only their MLflow record is missing "
                "or partial.", version, run_id, error)

    def _log_outputs(self, client: MlflowClient, run_id: str, version: str, pipeline: Pipeline,
                     catalog) -> None:
        outputs = {name: _unwrapped(catalog.get(name)) for name in sorted(pipeline.all_outputs())
                   if name in catalog}
        kinds = {name: _kind(name, dataset) for name, dataset in outputs.items()}
        saved = {name: dataset for name, dataset in outputs.items() if _saved(dataset, version)}
        _log(client, run_id, tags=_tags({f"kedro.version.{name}": version for name in saved}))
        own = list(kinds.values()).count("ablation_run") == 1  # a session of one study run is that run
        for name, dataset in saved.items():
            if kinds[name] == "metrics":
                _log(client, run_id, metrics=records.metrics(name, _load(dataset, version)))
            elif kinds[name] in ("artifact", "model"):
                with _local_file(dataset, version) as path:
                    client.log_artifact(run_id, str(path), artifact_path=name)
                    if kinds[name] == "model":
                        _log_served_model(run_id, path, version)
            elif kinds[name] == "ablation_run":
                _log_study_run(client, run_id, _load(dataset, version), own)


@contextmanager
def _local_file(dataset, version: str) -> Iterator[Path]:
    """The saved version as a local file: itself on the local disk, else a temporary copy (the
    catalog on object storage: MLflow logs files)."""
    path = Path(str(dataset._get_versioned_path(version)))
    if getattr(dataset, "_protocol", "file") == "file":
        yield path
        return
    from kedro.io.core import get_filepath_str

    with tempfile.TemporaryDirectory() as folder:
        local = Path(folder) / path.name
        dataset._fs.get(get_filepath_str(dataset._get_versioned_path(version), dataset._protocol), str(local))
        yield local


def _log_served_model(run_id: str, path: Path, version: str) -> None:
    """The saved model as the MLflow model that serves (``simple_cnn.serving``), in the
    session's run, registered as ``simple-cnn``."""
    from simple_cnn import serving  # torch and pandas: only for a run that saved a model

    active = mlflow.active_run()
    same = active is not None and active.info.run_id == run_id
    with nullcontext() if same else mlflow.start_run(run_id=run_id, nested=active is not None):
        info = _retried(lambda: serving.log_model(path, version))
    logger.info("Logged cnn_model %s as MLflow model %s (registered as %s, version %s); serve it "
                "with: mlflow models serve -m %s --env-manager local", version, info.model_uri,
                serving.NAME, info.registered_model_version, info.model_uri)


def _unwrapped(dataset):
    """The real dataset behind the project's proxies (a stale output being remade under
    ``--only-missing-outputs``, a rank's in-memory saves): its versions and metadata count."""
    while hasattr(dataset, "wrapped"):
        dataset = dataset.wrapped
    return dataset


def _load(dataset, version: str) -> Any:
    """The version ``version`` of a versioned dataset."""
    return dataset._copy(_version=Version(version, None)).load()


def _kind(name: str, dataset) -> str | None:
    kind = (getattr(dataset, "metadata", None) or {}).get("mlflow")
    if kind is not None and kind not in records.KINDS:
        logger.warning("%s: metadata mlflow: %r is not one of %s; not logged", name, kind, records.KINDS)
        return None
    return kind


def _saved(dataset, version: str) -> bool:
    """Whether this run saved a version of ``dataset`` (pinned or not, e.g. under
    ``--only-missing-outputs``)."""
    if not isinstance(dataset, AbstractVersionedDataset) or dataset._version is None:
        return False
    return dataset._exists_function(str(dataset._get_versioned_path(version)))


def _log_study_run(client: MlflowClient, session_run: str, row: dict[str, Any], own: bool) -> None:
    name, tags, params, metrics = records.ablation_run(row)
    if own:
        run_id = session_run
        tags = {**tags, "mlflow.runName": name}
    else:
        experiment = client.get_run(session_run).info.experiment_id
        run_id = client.create_run(experiment, run_name=name,
                                   tags={**tags, "mlflow.parentRunId": session_run}).info.run_id
    _log(client, run_id, tags=_tags(tags), params=[Param(k, v) for k, v in params.items()],
         metrics=metrics)
    if not own:
        client.set_terminated(run_id)


def _tags(values: dict[str, str]) -> list[RunTag]:
    return [RunTag(key, str(value)) for key, value in values.items()]


RETRIES = (0.2, 0.5, 1.0, 2.0)
"""Waits (s) before each retry of a write that found the store locked (SQLite, many writers)."""


def _log(client: MlflowClient, run_id: str, metrics=(), params=(), tags=()) -> None:
    """``log_batch`` within MLflow's limits per call, retried while the store is locked."""
    now = int(time.time() * 1000)
    metrics = [MlflowMetric(m.key, m.value, now, m.step) for m in metrics]
    params, tags = list(params), list(tags)
    while metrics or params or tags:
        batch = {"metrics": metrics[:BATCH], "params": params[:100], "tags": tags[:100]}
        _retried(lambda batch=batch: client.log_batch(run_id, **batch))
        metrics, params, tags = metrics[BATCH:], params[100:], tags[100:]


def _retried(write):
    """``write()``, again after a short wait while the store reports itself locked."""
    for wait in RETRIES:
        try:
            return write()
        except MlflowException as error:
            if "locked" not in str(error).lower():
                raise
            time.sleep(wait)
    return write()
