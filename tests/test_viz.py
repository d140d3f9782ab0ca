"""The graph as kedro-viz draws it, read from its own JSON (``kedro viz build``): the study
collapses to a few groups, every run's row sits in its study's group, and the layers read in
data-flow order in every pipeline."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import make_project

pytestmark = pytest.mark.slow
FLOW = ["01_raw", "02_intermediate", "03_primary", "04_feature", "05_model_input", "06_models",
        "07_model_output", "08_reporting"]  # Kedro's data layers, named as the data/ folders


@pytest.fixture(scope="module")
def viz(tmp_path_factory) -> Path:
    """``kedro viz build`` of the project's default conf (the default study), its API JSON."""
    project = make_project(tmp_path_factory.mktemp("viz") / "project")
    result = subprocess.run([sys.executable, "-m", "kedro", "viz", "build"], cwd=project,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (project / "build/log.txt").write_text(result.stdout + result.stderr)
    return project / "build/api/pipelines"


def test_no_group_is_interrupted_by_another(viz):
    """Kedro warns of a namespace whose nodes another namespace's nodes come between (kedro-viz
    would draw a cycle between the collapsed groups): the study's rounds prevent it."""
    log = (viz.parents[1] / "log.txt").read_text()
    assert "interrupted" not in log and "invalid" not in log, log[:3000]


def load(viz: Path, pipeline: str) -> dict:
    return json.loads((viz / pipeline).read_text())


def test_the_collapsed_study_is_ingestion_the_study_and_its_outputs(viz):
    graph = load(viz, "ablation")
    names = {n["id"]: n["name"] for n in graph["nodes"]}
    tree = graph["modular_pipelines"]
    top = tree["__root__"]["children"]
    assert len(top) <= 25, len(top)  # was 162, 146 of them datasets
    groups = sorted(names.get(c["id"], c["id"]) for c in top if c["type"] == "modularPipeline")
    assert groups == ["ablation", "ingestion"]
    assert not [c for c in top if c["type"] == "task"]  # every node in a group
    opened = Counter(c["type"] for c in tree["ablation"]["children"])
    studies = [c["id"] for c in tree["ablation"]["children"] if c["type"] == "modularPipeline"]
    assert len(studies) == 8 and opened["task"] == 8  # the summary, 6 figures, the report
    assert {names[c["id"]] for c in tree["ablation.amp"]["children"] if c["type"] == "modularPipeline"} \
        == {"ablation.amp.round_1", "ablation.amp.round_2", "ablation.amp.round_3"}  # on its rounds
    assert {names[c["id"]] for c in tree["ablation.amp.round_2"]["children"]
            if c["type"] == "modularPipeline"} == {"ablation.amp.round_2.bf16", "ablation.amp.round_2.fp32"}


def test_every_runs_row_sits_in_its_studys_group(viz):
    graph = load(viz, "ablation")
    names = {n["id"]: n["name"] for n in graph["nodes"]}
    tree = graph["modular_pipelines"]
    rows = {n["id"]: n["name"] for n in graph["nodes"] if n["name"].endswith(".ablation_run")}
    assert len(rows) == 168  # the default study, every seed up to each cap
    placed = {child["id"]: group for group, node in tree.items() for child in node["children"]}
    for row, name in rows.items():
        study = ".".join(name.split(".")[:2])
        assert placed[row] == study, (name, placed[row])
    seed = tree["ablation.amp.round_2.bf16.seed_5"]
    assert sorted(names[c["id"]].rsplit(".", 1)[-1] for c in seed["children"]) == [
        "configure_run", "decide_whether_to_run", "round_decision", "run_params", "train_and_evaluate_run"]


@pytest.mark.parametrize("pipeline", ["ablation", "__default__", "cnn", "hog_svm", "first_lesson",
                                      "predict", "reporting", "ingestion"])
def test_the_layers_read_in_data_flow_order(viz, pipeline):
    graph = load(viz, pipeline)
    used = {n["layer"] for n in graph["nodes"] if n.get("layer") and pipeline in n.get("pipelines", [])}
    shown = [layer for layer in graph["layers"] if layer in used]
    assert shown == [layer for layer in FLOW if layer in used], shown
