"""Runs that used to go silently wrong: two runs at once, an older model pinned with
--load-versions, commands from a sub-folder of the project."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from simple_cnn.datasets import NumpyDataset, TorchStateDictDataset
from simple_cnn.pipelines.cnn.nodes import record_cnn_activation_stats
from tests.conftest import kedro


def versions(project: Path, relative: str) -> list[str]:
    return sorted(p.name for p in (project / relative).iterdir())


def load(project: Path, relative: str, version: str):
    path = project / relative / version / Path(relative).name
    if path.suffix == ".json":
        return json.loads(path.read_text())
    if path.suffix == ".pt":
        return TorchStateDictDataset(filepath=str(path)).load()
    return NumpyDataset(filepath=str(path)).load()


def test_two_runs_at_once_keep_their_own_versions_and_checkpoint(smoke_copy):
    """A trains; B starts later, writes new splits (another seed), then reaches train_cnn while
    A holds the checkpoint. B is refused, naming A; A's later nodes still read A's splits."""
    command = [sys.executable, "-m", "kedro", "run", "--env", "smoke", "--pipeline", "cnn"]
    a = subprocess.Popen([*command, "--params", "cnn.training.epochs=25"], cwd=smoke_copy,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in a.stdout:  # wait until A trains
            if "Training on cpu" in line:
                break
        b = subprocess.run([*command, "--params", "ingestion.seed=5"], cwd=smoke_copy,
                           capture_output=True, text=True, timeout=240)
        a_output = a.stdout.read()
        assert a.wait(timeout=240) == 0, a_output
    finally:
        a.kill()
    assert b.returncode == 1
    assert "Another training run is writing the checkpoint" in b.stderr
    assert f"pid {a.pid}" in b.stderr and "Traceback" not in b.stderr

    val_versions = versions(smoke_copy, "data/03_primary/val_split.npz")
    assert len(val_versions) == 3  # the fixture's run, A, B
    run_a = versions(smoke_copy, "data/06_models/cnn_model.pt")[-1]
    assert val_versions[1] == run_a  # B's split is the newest
    model = load(smoke_copy, "data/06_models/cnn_model.pt", run_a)
    saved = load(smoke_copy, "data/08_reporting/cnn_activation_stats.json", run_a)

    def stats(version):
        split = load(smoke_copy, "data/03_primary/val_split.npz", version)
        return json.loads(json.dumps(record_cnn_activation_stats(model, split)))
    assert saved == stats(run_a)
    assert saved != stats(val_versions[2])  # without pinning, A would have read B's split


def test_an_older_model_is_evaluated_with_its_own_training_details(smoke_copy):
    first = versions(smoke_copy, "data/06_models/cnn_model.pt")[0]  # the fixture's 3 epochs
    bootstrap_project(smoke_copy)
    with KedroSession.create(project_path=smoke_copy, env="smoke",
                             runtime_params={"cnn": {"training": {"epochs": 2}}}) as session:
        session.run(pipeline_name="cnn", node_names=["train_cnn"])
    with KedroSession.create(project_path=smoke_copy, env="smoke") as session:
        session.run(pipeline_name="cnn", node_names=["evaluate_cnn"],
                    load_versions={"cnn_model": first})
    metrics = versions(smoke_copy, "data/08_reporting/cnn_test_metrics.json")
    pinned = load(smoke_copy, "data/08_reporting/cnn_test_metrics.json", metrics[-1])
    newest = load(smoke_copy, "data/07_model_output/cnn_training_history.json",
                  versions(smoke_copy, "data/07_model_output/cnn_training_history.json")[-1])
    assert len(newest["epoch"]) == 2  # the newest history is the 2-epoch run's ...
    assert pinned["epochs"] == 3  # ... but the pinned model was trained for 3
    model = load(smoke_copy, "data/06_models/cnn_model.pt", first)
    assert pinned["train_seconds"] == model["training"]["train_seconds"]


def test_prune_versions_from_a_sub_folder_finds_the_project(smoke_copy):
    result = kedro(smoke_copy / "data" / "08_reporting", "prune-versions", "--keep", "1",
                   "--dry-run", "--env", "smoke")
    assert "0 version(s)" in result.stdout and "Traceback" not in result.stderr


@pytest.mark.parametrize("runner", ["ThreadRunner", "ParallelRunner"])
def test_the_pipelines_run_under_the_thread_and_parallel_runners(project, runner):
    """Through the CLI, as users run it: a fresh process (forking a test process whose torch
    thread pools already ran can deadlock, which says nothing about the project)."""
    kedro(project, "run", "--env", "smoke", "--runner", runner, "--params",
          "cnn.training.epochs=1,cnn.training.warmup=0")
    metrics = load(project, "data/08_reporting/cnn_test_metrics.json",
                   versions(project, "data/08_reporting/cnn_test_metrics.json")[0])
    assert metrics["accuracy"] > 0.3 and metrics["epochs"] == 1
    assert versions(project, "data/08_reporting/comparison_report.html")
