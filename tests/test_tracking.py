"""Experiment tracking (the `mlflow` extra, which the test extra installs): a tracked smoke run
read back through MLflow's client and through the UI server's REST API, the study's runs, the
refusals of a store that cannot take a run, and a project without the extra."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from simple_cnn.errors import TrackingError
from simple_cnn.tracking import SWITCH, records, store
from tests.conftest import PROJECT_ROOT, free_port, make_project, project_command, raw_params, stop_server

STUDY = "ablation.activation_lr"
NESTED = [f"{STUDY}.round_1.leaky.seed_0", f"{STUDY}.round_1.leaky.seed_1"]  # node namespaces
ALONE = f"{STUDY}.round_1.relu.seed_0"
COLLECTED_AT = time.time()  # before any session of the suite runs (fixtures run after collection)


def tracked_run(project: Path, *args: str):
    """``kedro run --env smoke ARGS`` in this process, tracked into the project's own store."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(SWITCH, "on")
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        return project_command(project, "run", "--env", "smoke", *args)


@pytest.fixture(scope="module")
def tracked(smoke_project, tmp_path_factory) -> Path:
    """A copy of ``smoke_project``, whose default run was tracked, after two tracked ablation
    sessions: one of two study runs, one of a single run (shared: do not modify)."""
    project = tmp_path_factory.mktemp("tracked") / "project"
    shutil.copytree(smoke_project, project, symlinks=True)
    for args in [("--pipelines", "ablation", "--namespaces", ",".join(NESTED)),
                 ("--pipelines", "ablation", "--namespaces", ALONE)]:
        result = tracked_run(project, *args)
        assert result.exit_code == 0, result.output + repr(result.exception)
    return project


def client(project: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(f"sqlite:///{project / 'mlflow.db'}")


def runs(mlflow_client, query: str = ""):
    experiment = mlflow_client.get_experiment_by_name("simple_cnn")
    return mlflow_client.search_runs([experiment.experiment_id], query)


def saved(project: Path, name: str) -> tuple[str, Path]:
    """The one saved version of ``name`` (a JSON or other file): its version and path."""
    (folder,) = (project / "data").glob(f"*/{name}.*/*")
    return folder.name, next(folder.iterdir())


def test_a_run_records_the_parameters_metrics_curves_artifacts_and_catalog_versions(tracked):
    mlflow_client = client(tracked)
    (run,) = runs(mlflow_client, "tags.`kedro.pipelines` = '__default__'")
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    cnn = raw_params("cnn")
    assert params["cnn.training.lr"] == str(cnn["training"]["lr"])
    assert params["cnn.model.base_width"] == str(cnn["model"]["base_width"])
    assert params["hog_svm.classifier"] == raw_params("hog_svm")["classifier"]
    assert not any(len(value) > 250 for value in params.values())  # no model dumped as one string

    for name in ("cnn_test_metrics", "svm_test_metrics"):
        version, path = saved(tracked, name)
        recorded = json.loads(path.read_text())
        for key in ("accuracy", "macro_f1", "predict_seconds"):
            assert metrics[f"{name}.{key}"] == pytest.approx(recorded[key])
        assert tags[f"kedro.version.{name}"] == version
    assert metrics["cnn_test_metrics.train_seconds"] == pytest.approx(
        json.loads(saved(tracked, "cnn_test_metrics")[1].read_text())["train_seconds"])

    version, path = saved(tracked, "cnn_training_history")
    history = json.loads(path.read_text())
    for key in ("train_loss", "val_loss", "train_accuracy", "val_accuracy", "lr"):
        points = mlflow_client.get_metric_history(run.info.run_id, f"cnn_training_history.{key}")
        assert [p.step for p in points] == history["epoch"]
        assert [p.value for p in points] == pytest.approx(history[key])
    steps = mlflow_client.get_metric_history(run.info.run_id, "cnn_training_history.lr_per_step")
    assert [p.step for p in steps] == list(range(1, len(history["lr_per_step"]) + 1))

    assert tags["kedro.env"] == "smoke" and tags["kedro.save_version"] == version
    found = runs(mlflow_client, f"tags.`kedro.version.cnn_model` = '{version}'")
    assert [r.info.run_id for r in found] == [run.info.run_id]  # from a catalog version to its run


def test_the_artifacts_are_the_files_the_catalog_saved(tracked, smoke_project):
    mlflow_client = client(tracked)
    (run,) = runs(mlflow_client, "tags.`kedro.pipelines` = '__default__'")
    logged = {item.path for item in mlflow_client.list_artifacts(run.info.run_id)}
    assert {"cnn_model", "cnn_model_summary", "comparison_report", "cnn_training_curves_plot",
            "model_comparison_plot"} <= logged
    assert "train_split" not in logged  # only what the catalog marks
    assert run.info.artifact_uri.startswith((smoke_project.resolve() / "mlruns").as_uri())  # where it ran
    for name in ("cnn_model", "comparison_report"):
        _, path = saved(tracked, name)
        local = mlflow_client.download_artifacts(run.info.run_id, f"{name}/{path.name}",
                                                 str(tracked / "downloads"))
        assert Path(local).read_bytes() == path.read_bytes()


def test_each_study_run_is_a_run_with_its_study_variant_and_seed(tracked):
    mlflow_client = client(tracked)
    (parent,) = runs(mlflow_client, f"tags.namespaces LIKE '%{NESTED[0]}%'")
    children = runs(mlflow_client, f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert sorted(r.data.tags["kedro.namespace"] for r in children) == NESTED
    for child in children:
        row = json.loads(_row(tracked, child.data.tags["kedro.namespace"]))
        assert child.data.tags["study"] == "activation_lr" and child.data.tags["variant"] == "leaky"
        assert child.data.tags["seed"] == str(row["seed"])
        assert child.info.run_name == f"activation_lr/leaky/seed_{row['seed']}"
        assert child.data.params["factors.model.activation"] == "leaky_relu"
        for key in ("test_accuracy", "train_seconds", "dead_unit_fraction"):  # None if it diverged
            assert child.data.metrics.get(f"ablation_run.{key}") == pytest.approx(row[key])
        assert child.info.status == "FINISHED"

    (alone,) = runs(mlflow_client, f"tags.`kedro.namespace` = '{ALONE}'")
    assert alone.info.run_name == "activation_lr/relu/seed_0"
    assert "mlflow.parentRunId" not in alone.data.tags  # a session of one study run is that run
    assert alone.data.params["cnn.training.lr"] == str(raw_params("cnn")["training"]["lr"])
    assert {r.info.status for r in runs(mlflow_client)} == {"FINISHED"}


def _row(project: Path, namespace: str) -> str:
    """The row of the run whose nodes are in ``namespace`` (its file is named without the round)."""
    run = namespace.replace(".round_1.", ".")
    (path,) = (project / "data/07_model_output/ablation").glob(f"{run}.json/*/*.json")
    return path.read_text()


@pytest.mark.slow
def test_the_ui_server_serves_the_runs_to_a_client(tracked):
    from mlflow.tracking import MlflowClient

    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "ui", "--backend-store-uri",
         f"sqlite:///{tracked / 'mlflow.db'}", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(f"{url}/health", server, seconds=90)
        over_rest = {r.info.run_id: r.data.metrics for r in runs(MlflowClient(url))}
        direct = {r.info.run_id: r.data.metrics for r in runs(client(tracked))}
        assert over_rest == direct and len(direct) == 5
    finally:
        stop_server(server)


@pytest.mark.slow
def test_the_served_model_answers_over_http_what_the_predict_pipeline_writes(tracked, tmp_path):
    from mlflow.exceptions import MlflowException
    from mlflow.pyfunc import load_model

    from simple_cnn.serving import encode_file
    from tests.test_predict import _images

    project = tmp_path / "project"
    shutil.copytree(tracked, project, symlinks=True)
    folder = project / "data/01_raw/predict"
    _images(folder)
    result = project_command(project, "run", "--env", "smoke", "--pipeline", "predict")
    assert result.exit_code == 0, result.output + repr(result.exception)
    (csv_file,) = project.glob("data/07_model_output/predictions.csv/*/predictions.csv")
    table = pd.read_csv(csv_file).to_dict("records")
    files = [row["file"] for row in table]
    request = {"dataframe_split": {"columns": ["file", "image"],
                                   "data": [[name, encode_file(folder / name)] for name in files]}}

    (run,) = runs(client(project), "tags.`kedro.pipelines` = '__default__'")
    store = f"sqlite:///{project / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", store)
        registered = load_model("models:/simple-cnn/latest")
        answer = registered.predict(pd.DataFrame(request["dataframe_split"]["data"], columns=["file", "image"]))
        assert answer.to_dict("records") == table
        with pytest.raises(MlflowException, match=r"row 'x': 'image' is not base64-encoded"):
            registered.predict(pd.DataFrame({"file": ["x"], "image": ["not base64!"]}))
        with pytest.raises(MlflowException, match="image"):
            registered.predict(pd.DataFrame({"picture": ["x"]}))

    port = free_port()
    started = time.monotonic()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m",
         f"runs:/{run.info.run_id}/simple-cnn", "--env-manager", "local", "--host", "127.0.0.1",
         "--port", str(port)],
        env={**os.environ, "MLFLOW_TRACKING_URI": store}, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(f"{url}/ping", server, seconds=120)
        answer = _post(f"{url}/invocations", request)
        print(f"mlflow models serve answered {time.monotonic() - started:.1f} s after it started")
        assert answer["predictions"] == table
        broken = {"dataframe_split": {"columns": ["file", "image"], "data": [
            ["notes.txt", encode_file(folder / "notes.txt")]]}}
        with pytest.raises(urllib.error.HTTPError) as refused:
            _post(f"{url}/invocations", broken)
        assert refused.value.code == 400
        assert "row 'notes.txt': the bytes are not an image" in refused.value.read().decode()
    finally:
        stop_server(server)


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def _wait_until_up(url: str, server: subprocess.Popen, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"the server exited: {server.stderr.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.25)
    raise AssertionError(f"the server did not answer on {url} within {seconds} s")


def _nothing_saved(project: Path) -> bool:
    return not [p for p in (project / "data").rglob("*") if p.is_file()]


def test_an_unreachable_tracking_server_stops_the_run_before_any_node(project, monkeypatch):
    uri = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv(SWITCH, "on")
    result = project_command(project, "run", "--env", "smoke", "--pipeline", "cnn")
    assert result.exit_code == 1
    assert f"The MLflow tracking server {uri} cannot be reached" in result.output
    assert f"sqlite:///{project.resolve() / 'mlflow.db'}" in result.output
    assert "SIMPLE_CNN_TRACKING=off" in result.output and "Traceback" not in result.output
    assert _nothing_saved(project) and not (project / "mlflow.db").exists()


def test_a_store_from_another_mlflow_version_is_refused_with_what_to_do(tracked, tmp_path):
    project = make_project(tmp_path / "project")
    (project / "mlflow.db").write_bytes((tracked / "mlflow.db").read_bytes())
    with sqlite3.connect(project / "mlflow.db") as db:
        db.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")
    result = tracked_run(project, "--pipeline", "cnn")
    assert result.exit_code == 1, result.output
    assert "was written by another MLflow version" in result.output
    assert "mlflow db upgrade" in result.output and "Traceback" not in result.output
    assert _nothing_saved(project)


def test_a_read_only_store_folder_is_refused(tmp_path, monkeypatch):
    folder = tmp_path / "store"
    folder.mkdir()
    real_access = os.access
    monkeypatch.setattr(store.os, "access", lambda path, mode: Path(path) != folder and real_access(path, mode))
    with pytest.raises(TrackingError, match=f"{folder} is read-only") as error:
        store.check_store(f"sqlite:///{folder / 'mlflow.db'}", tmp_path)
    assert "nothing was trained or saved" in str(error.value)
    with pytest.raises(TrackingError, match="artifact folder"):
        store.check_artifacts(str(folder / "mlruns"), tmp_path)
    store.check_store(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path)  # a writable one passes


def test_the_store_is_the_projects_unless_configuration_or_environment_names_one(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    conf = store.with_project_store({}, tmp_path)
    assert conf["server"]["mlflow_tracking_uri"] == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert conf["tracking"]["experiment"]["create_experiment_kwargs"]["artifact_location"] == \
        str(tmp_path.resolve() / "mlruns")
    named = {"server": {"mlflow_tracking_uri": "http://tracking:5000"}}
    assert store.with_project_store(named, tmp_path) == named
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://elsewhere:5000")
    conf = store.with_project_store({}, tmp_path)
    assert conf["server"]["mlflow_tracking_uri"] == "http://elsewhere:5000"
    assert "tracking" not in conf  # a server keeps its own artifact location


def test_metric_names_steps_and_what_is_not_a_metric():
    record = {"epoch": [1, 2], "val_loss": [0.5, 0.25], "lr_per_step": [0.1, 0.2, 0.3],
              "best_epoch": 2, "device": "cpu", "amp": False, "per_class": {"cat": {"f1": 0.5}},
              "confusion_matrix": [[1, 0], [0, 1]], "divergence": None}
    got = {(m.key, m.step): m.value for m in records.metrics("h", record)}
    assert got == {("h.val_loss", 1): 0.5, ("h.val_loss", 2): 0.25, ("h.lr_per_step", 1): 0.1,
                   ("h.lr_per_step", 2): 0.2, ("h.lr_per_step", 3): 0.3, ("h.best_epoch", 0): 2.0,
                   ("h.per_class.cat.f1", 0): 0.5}


def test_parameters_flatten_to_dotted_keys():
    assert records.flat_parameters({"cnn": {"training": {"lr": 0.2, "warmup": None}},
                                    "sizes": [8, 8], "empty": {}}) == {
        "cnn.training.lr": "0.2", "cnn.training.warmup": "None", "sizes": "[8, 8]", "empty": "{}"}


def test_a_study_row_splits_into_name_tags_parameters_and_metrics():
    row = {"study": "s", "variant": "v", "seed": 1, "namespace": "ablation.s.v.seed_1",
           "factors": {"training": {"lr": 0.5}}, "steps": 20, "test_accuracy": 0.75}
    name, tags, params, metrics = records.ablation_run(row)
    assert name == "s/v/seed_1"
    assert tags == {"study": "s", "variant": "v", "seed": "1", "kedro.namespace": "ablation.s.v.seed_1"}
    assert params == {"factors.training.lr": "0.5", "seed": "1", "steps": "20"}
    assert [(m.key, m.value) for m in metrics] == [("ablation_run.test_accuracy", 0.75)]


def test_without_the_extra_nothing_imports_mlflow_and_no_hook_is_added():
    script = """
import sys, importlib.abc
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("mlflow", "kedro_mlflow"):
            raise ModuleNotFoundError(name)
sys.meta_path.insert(0, Absent())
import simple_cnn.settings as settings
from simple_cnn import tracking
assert not tracking.installed()
assert not any("Mlflow" in type(hook).__name__ for hook in settings.HOOKS), settings.HOOKS
assert "mlflow" not in sys.modules
print("ok")
"""
    env = {**os.environ, SWITCH: "on"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]


def test_untracked_sessions_leave_no_store(study):
    assert not (study / "mlflow.db").exists() and not (study / "mlruns").exists()
    # nor under the working directory: a developer's own tracked runs may have made one before
    folder = PROJECT_ROOT / "mlruns"
    made_since = [path for path in [folder, *folder.rglob("*")]
                  if path.exists() and path.stat().st_mtime >= COLLECTED_AT]
    assert not made_since, made_since[:5]


@pytest.mark.parametrize("locked_calls", [2, 99], ids=["a lock that passes", "a lock that stays"])
def test_a_locked_store_after_the_save_is_retried_then_a_warning_never_a_failed_run(
        project, monkeypatch, caplog, locked_calls):
    """Many writers on one SQLite store (Dask workers, NFS) can find it locked; the outputs
    are saved by then, so the run succeeds, and what could not be logged is named."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from simple_cnn.tracking import hooks

    calls = {"n": 0}
    real = MlflowClient.log_batch

    def log_batch(self, run_id, **kwargs):
        if any(t.key.startswith("kedro.version.") for t in kwargs.get("tags", [])):
            calls["n"] += 1
            if calls["n"] <= locked_calls:
                raise MlflowException("(sqlite3.OperationalError) database is locked")
        return real(self, run_id, **kwargs)

    monkeypatch.setattr(MlflowClient, "log_batch", log_batch)
    monkeypatch.setattr(hooks, "RETRIES", (0.01, 0.01, 0.01, 0.01))
    with caplog.at_level("WARNING"):
        result = tracked_run(project, "--pipeline", "ingestion")
    assert result.exit_code == 0, result.output
    assert list((project / "data/03_primary").glob("train_split.npz/*/train_split.npz"))
    warned = [m for m in caplog.messages if "Tracking failed after the run's outputs were saved" in m]
    (run,) = runs(client(project))
    if locked_calls == 2:
        assert calls["n"] == 3 and not warned and "kedro.version.train_split" in run.data.tags
    else:
        assert calls["n"] == 5 and len(warned) == 1 and "database is locked" in warned[0]
        assert run.info.run_id in warned[0]


def _log_many(uri: str, run_id: str, worker: int, rounds: int) -> int:
    """One of several processes writing to the same SQLite store as fast as it can."""
    from mlflow.tracking import MlflowClient

    from simple_cnn.tracking import hooks, records

    client = MlflowClient(uri)
    for step in range(rounds):
        hooks._log(client, run_id, metrics=[records.Metric(f"w{worker}.m{i}", float(step), step)
                                            for i in range(20)])
    return worker


def test_four_writers_on_one_sqlite_store_lose_nothing(tmp_path):
    """Four processes (as four Dask workers tracking into one mlflow.db) log at once: every
    metric of every process is there afterwards."""
    import multiprocessing

    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow_client = MlflowClient(uri)
    experiment = mlflow_client.create_experiment("writers")
    run_id = mlflow_client.create_run(experiment).info.run_id
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        done = pool.starmap(_log_many, [(uri, run_id, w, 10) for w in range(4)], chunksize=1)
    assert sorted(done) == [0, 1, 2, 3]
    metrics = mlflow_client.get_run(run_id).data.metrics
    assert len(metrics) == 4 * 20 and all(value == 9.0 for value in metrics.values())
    assert len(mlflow_client.get_metric_history(run_id, "w3.m19")) == 10


def test_an_artifact_on_object_storage_is_logged_from_a_local_copy_not_skipped():
    """With the catalog on a remote filesystem (here fsspec's memory://), the saved version is
    fetched to a temporary file for MLflow, which logs files; it used to be skipped silently."""
    from kedro.io.core import Version
    from kedro_datasets.text import TextDataset

    from simple_cnn.tracking.hooks import _local_file

    dataset = TextDataset(filepath="memory:///reports/report.html", version=Version(None, "2026-12-04T00.00.00.000Z"))
    dataset.save("<html>remote</html>")
    with _local_file(dataset, "2026-12-04T00.00.00.000Z") as path:
        assert path.is_file() and path.read_text() == "<html>remote</html>" and path.name == "report.html"
    assert not path.exists()  # the copy is gone afterwards
