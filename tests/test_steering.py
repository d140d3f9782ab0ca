"""Seeing and steering: the report, the run profile, re-running nodes, pruning, viz, notebook."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from kedro.framework.project import pipelines

from simple_cnn.datasets import NumpyDataset
from tests.conftest import PROJECT_ROOT, kedro, project_command, run_command


def latest(project: Path, relative: str) -> Path:
    folder = project / relative
    version = sorted(p.name for p in folder.iterdir())[-1]
    return folder / version / folder.name


def test_report_is_self_contained_and_compares_both_models(smoke_project):
    html = latest(smoke_project, "data/08_reporting/comparison_report.html").read_text()
    svm = json.loads(latest(smoke_project, "data/08_reporting/svm_test_metrics.json").read_text())
    cnn = json.loads(latest(smoke_project, "data/08_reporting/cnn_test_metrics.json").read_text())
    assert f"{svm['accuracy']:.2%}" in html and f"{cnn['accuracy']:.2%}" in html
    assert html.count('src="data:image/png;base64,') == 7  # 5 of the comparison, 2 of the first lesson
    assert "percentage points" in html and "http" not in html.split("<body>")[1]  # no external links


def test_run_profile_lists_every_node_of_the_run(smoke_project):
    profile = json.loads(latest(smoke_project, "data/08_reporting/run_profile.json").read_text())
    assert {row["node"] for row in profile["nodes"]} == {n.name for n in pipelines["__default__"].nodes}
    assert all(row["seconds"] >= 0 and row["peak_rss_mib"] > 0 for row in profile["nodes"])


def readme_rerun_commands() -> list[str]:
    """The re-run commands the docs show (``docs/steering.md``, linked from the README)."""
    page = (PROJECT_ROOT / "docs/steering.md").read_text()
    block = re.search(r"<!-- rerun-commands -->\n```\n(.*?)```", page, re.S).group(1)
    return [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]


def test_readme_rerun_commands_work_and_a_rerun_reproduces_its_output(smoke_copy):
    commands = readme_rerun_commands()
    assert len(commands) == 4
    model_version = sorted(p.name for p in (smoke_copy / "data/06_models/cnn_model.pt").iterdir())[0]
    for command in commands:
        args = command.replace("<version>", model_version).split()[1:]  # drop "kedro"
        run_command(smoke_copy, *args, "--env", "smoke")
    # the first command re-fit the classifier: two versions of the report now
    assert len(list((smoke_copy / "data/07_model_output/svm_training_report.json").iterdir())) == 2
    # re-running train_svm with its inputs unchanged reproduces its output
    run_command(smoke_copy, "run", "--nodes", "train_svm", "--params", "hog_svm.classifier=sgd", "--env", "smoke")
    reports = sorted((smoke_copy / "data/07_model_output/svm_training_report.json").iterdir())
    a, b = (json.loads((r / "svm_training_report.json").read_text()) for r in reports[-2:])
    assert a["candidates"][0]["val_accuracy"] == b["candidates"][0]["val_accuracy"]
    assert a["best"] == b["best"]


def test_only_missing_outputs_runs_nothing_when_all_is_saved(smoke_copy):
    before = sorted((smoke_copy / "data").glob("*/*/*"))
    run_command(smoke_copy, "run", "--only-missing-outputs", "--env", "smoke")
    assert sorted((smoke_copy / "data").glob("*/*/*")) == before  # no node ran: no new version, no profile


def _add_versions(project: Path, name: str, count: int) -> list[str]:
    from kedro.io import Version

    stamps = [f"2026-01-0{i + 1}T00.00.00.000Z" for i in range(count)]
    for stamp in stamps:
        NumpyDataset(filepath=str(project / f"data/03_primary/{name}.npz"),
                     version=Version(None, stamp)).save({"x": np.zeros(1000)})
    return stamps


def test_prune_versions_keeps_the_newest_and_the_pinned(smoke_copy):
    added = _add_versions(smoke_copy, "val_split", 3)  # older than the smoke run's version
    folder = smoke_copy / "data/03_primary/val_split.npz"
    newest = sorted(p.name for p in folder.iterdir())[-1]

    dry = project_command(smoke_copy, "prune-versions", "--keep", "1", "--dataset", "val_split",
                          "--dry-run")
    assert "would free" in dry.output and len(list(folder.iterdir())) == 4

    result = project_command(smoke_copy, "prune-versions", "--keep", "1", "--dataset", "val_split",
                             "--load-versions", f"val_split:{added[0]}")
    assert result.exit_code == 0 and "freed" in result.output
    assert sorted(p.name for p in folder.iterdir()) == [added[0], newest]
    # other datasets were not touched
    assert len(list((smoke_copy / "data/03_primary/train_split.npz").iterdir())) == 1


def test_prune_versions_across_all_datasets(smoke_copy):
    _add_versions(smoke_copy, "train_split", 2)
    assert project_command(smoke_copy, "prune-versions", "--keep", "2").exit_code == 0
    assert len(list((smoke_copy / "data/03_primary/train_split.npz").iterdir())) == 2
    assert len(list((smoke_copy / "data/06_models/cnn_model.pt").iterdir())) == 1


@pytest.mark.parametrize("args, message", [
    (["--keep", "0"], "--keep must be at least 1"),
    (["--keep", "1", "--dataset", "nope"], "Not versioned datasets of this project: nope"),
    (["--keep", "1", "--dataset", "raw_images"], "Not versioned datasets of this project: raw_images"),
    (["--keep", "1", "--load-versions", "val_split"], "takes dataset:version"),
    (["--keep", "1", "--load-versions", "val_split:2000-01-01T00.00.00.000Z"], "has no version"),
])
def test_prune_versions_refuses_ambiguous_input(smoke_copy, args, message):
    before = sorted(p for p in (smoke_copy / "data").rglob("*"))
    result = project_command(smoke_copy, "prune-versions", *args)
    assert result.exit_code == 2 and message in result.output
    assert sorted(p for p in (smoke_copy / "data").rglob("*")) == before


def test_viz_build_holds_every_pipeline_node_layer_and_plot_preview(smoke_copy):
    kedro(smoke_copy, "viz", "build", "--include-previews")
    graph = json.loads((smoke_copy / "build/api/main").read_text())
    assert {p["id"] for p in graph["pipelines"]} == set(pipelines)
    built = {n["name"] for n in graph["nodes"] if n["type"] == "task"}  # kedro-viz: within its group
    assert built == {n.name.removeprefix(f"{n.namespace}.") if n.namespace else n.name
                     for n in pipelines["__default__"].nodes}
    for name in pipelines:
        assert (smoke_copy / "build/api/pipelines" / name).exists()
    data = [n for n in graph["nodes"] if n["type"] == "data"]
    assert data and all(n.get("layer") for n in data), [n["name"] for n in data if not n.get("layer")]
    assert {t["id"] for t in graph["tags"]} >= {"ingestion", "features", "training", "evaluation", "plots"}
    plots = [n for n in data if n["name"].endswith("_plot")]
    assert {p["name"] for p in plots} == {d for d in pipelines["__default__"].datasets()
                                          if d.endswith("_plot")}
    for plot in plots:
        details = json.loads((smoke_copy / "build/api/nodes" / plot["id"]).read_text())
        assert details["preview_type"] == "ImagePreview" and details["preview"], plot["name"]


def test_notebook_runs_top_to_bottom(smoke_copy):
    import nbformat
    from nbclient import NotebookClient

    notebook_dir = smoke_copy / "notebooks"
    notebook_dir.mkdir()
    shutil.copy(PROJECT_ROOT / "notebooks/explore.ipynb", notebook_dir)
    notebook = nbformat.read(notebook_dir / "explore.ipynb", as_version=4)
    NotebookClient(notebook, timeout=180, kernel_name="python3",
                   resources={"metadata": {"path": str(notebook_dir)}}).execute()
    outputs = "".join(o.get("text", "") for c in notebook.cells for o in c.get("outputs", []))
    assert "accuracy" in outputs and "train_cnn" in outputs
