"""``kedro ablation run``: the smoke study on Dask workers (127.0.0.1 only), against the same
study run in one process (``tests/test_ablation.py``'s ``study`` fixture, same seeds, CPU)."""

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from simple_cnn.errors import ClusterError
from simple_cnn.pipelines.ablation.cluster import check_workers
from tests.conftest import DIVERGE, free_port, make_project, newest, project_command

pytestmark = pytest.mark.slow
BROKEN = "ablation.activation_lr.round_1.relu.seed_1"  # of the first round: its study's later rounds wait
BROKEN_ROW = "ablation.activation_lr.relu.seed_1"  # its row's name (without the round)
TIMED = ("train_seconds", "images_per_second")


def ablation_run(project, *args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    """The command, its workers using one torch thread each, as the ``study`` fixture does."""
    return subprocess.run(
        [sys.executable, "-m", "kedro", "ablation", "run", "--env", "smoke", "--params", DIVERGE, *args],
        cwd=project, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "OMP_NUM_THREADS": "1"})


def rows(project) -> dict[str, int]:
    """Namespace -> how many versions of its row exist."""
    folder = project / "data/07_model_output/ablation"
    return {p.name.removesuffix(".json"): len(list(p.glob("*/*.json"))) for p in folder.iterdir()
            if p.is_dir()}


def untimed(summary: dict) -> dict:
    """The summary without what depends on the machine's speed."""
    out = json.loads(json.dumps(summary))
    out.pop("budget")
    for study in out["studies"].values():
        for variant in study["variants"].values():
            for metric in TIMED:
                variant.pop(metric)
    return out


@pytest.fixture(scope="module")
def cluster_study(tmp_path_factory):
    """The smoke study through `kedro ablation run --workers 2`, with one run made to fail: a
    file stands where its row's version folder goes, so saving the row fails."""
    project = make_project(tmp_path_factory.mktemp("cluster") / "project")
    blocker = project / f"data/07_model_output/ablation/{BROKEN_ROW}.json"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("in the way")
    first = ablation_run(project, "--workers", "2")
    blocker.unlink()
    return project, first


def test_a_failed_run_is_named_with_its_error_and_the_others_finish(cluster_study):
    """The smoke study's 36 runs in two rounds: the failed run's study cannot be judged after
    its first round, so its second round waits; the other studies go on to the end."""
    project, first = cluster_study
    assert first.returncode == 1, first.stdout + first.stderr
    assert "36 runs, 0 already have their row, 36 to run" in first.stdout
    assert "1 run(s) of the ablation study failed" in first.stderr
    assert f"  {BROKEN}: " in first.stderr and "DatasetError" in first.stderr
    assert "4 run(s) of later rounds of their studies wait for them" in first.stderr
    assert f"--namespaces {BROKEN}" in first.stderr and "Traceback" not in first.stderr
    finished = rows(project)
    assert len(finished) == 31 and set(finished.values()) == {1} and BROKEN_ROW not in finished
    assert not any(ns.startswith("ablation.activation_lr.") and ns.endswith(("seed_4", "seed_5")) for ns in finished)
    assert not list((project / "data/08_reporting").glob("ablation_summary.json/*"))  # not yet
    assert not list(project.glob("data/**/*.partial"))


@contextmanager
def dask_cluster(workers: int):
    """`dask scheduler` and `dask worker` as a user starts them (here on 127.0.0.1), as
    processes of their own: a nanny in this process would set OMP_NUM_THREADS=1 in this
    process's environment for every later subprocess. Stopped, and waited for, at the end."""
    port = free_port()
    dask = [str(Path(sys.executable).parent / "dask")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    started = [subprocess.Popen(
        dask + ["scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        started.append(subprocess.Popen(
            dask + ["worker", f"tcp://127.0.0.1:{port}", "--nworkers", str(workers), "--nthreads",
                    "1", "--no-dashboard", "--host", "127.0.0.1"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        yield f"tcp://127.0.0.1:{port}"
    finally:
        for process in reversed(started):
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=20)


@pytest.fixture(scope="module")
def resumed(cluster_study):
    """The same command again, on a running scheduler (`--scheduler`), after the fix."""
    project, _ = cluster_study
    with dask_cluster(2) as address:
        second = ablation_run(project, "--scheduler", address)
    return project, second


def test_running_again_trains_just_the_failed_run_and_the_summary_equals_one_process(resumed, study):
    project, second = resumed
    assert second.returncode == 0, second.stdout + second.stderr
    assert "36 runs, 31 already have their row, 5 to run" in second.stdout  # and the waiting round
    assert rows(project) == {ns: 1 for ns in rows(study)}
    assert untimed(newest(project, "ablation_summary")) == untimed(newest(study, "ablation_summary"))
    assert list((project / "data/08_reporting").glob("ablation_report.html/*/ablation_report.html"))


def test_a_third_invocation_trains_and_remakes_nothing(resumed):
    project, _ = resumed
    summaries = sorted((project / "data/08_reporting").glob("ablation_summary.json/*"))
    third = ablation_run(project, "--workers", "2")
    assert third.returncode == 0, third.stdout + third.stderr
    assert "36 runs, 36 already have their row, 0 to run" in third.stdout
    assert set(rows(project).values()) == {1}
    assert sorted((project / "data/08_reporting").glob("ablation_summary.json/*")) == summaries


def test_an_unreachable_scheduler_is_named_with_what_to_do(project):
    address = f"tcp://127.0.0.1:{free_port()}"
    result = project_command(project, "ablation", "run", "--env", "smoke", "--scheduler", address)
    assert result.exit_code == 1
    assert f"Cannot reach the Dask scheduler at '{address}'" in result.output
    assert "dask scheduler" in result.output and "--workers N" in result.output
    assert "Traceback" not in result.output


class _Workers:
    """A cluster as ``check_workers`` sees it: one worker sees the probe, one does not."""

    def gather(self, futures):
        return futures

    def run(self, function, path, storage):
        return {"tcp://10.0.0.1:4000": function(path, storage), "tcp://10.0.0.2:4000": None}


def test_workers_that_cannot_see_the_data_folder_are_refused_by_address(project):
    folder = str(project / "data" / "03_primary")
    with pytest.raises(ClusterError, match=r"cannot see .*03_primary, where the runs read and write: "
                                           r"tcp://10\.0\.0\.2:4000\. Every worker must see it"):
        check_workers(_Workers(), [(folder, {})])
    assert not list((project / "data").rglob(".dask-probe-*"))  # the probe is removed


class _SeeingWorkers(_Workers):
    probes: list = []

    def run(self, function, path, storage):
        self.probes.append(path)
        return {"tcp://10.0.0.1:4000": function(path, storage)}


def test_the_probe_goes_where_the_catalog_puts_the_data_not_to_the_local_folder(project):
    """The advice to point the catalog at a remote file system is followed, not refused."""
    import fsspec

    from simple_cnn.pipelines.ablation.cluster import probe_folders

    (project / "conf/remote").mkdir()
    (project / "conf/remote/catalog.yml").write_text(
        "train_split:\n  type: simple_cnn.datasets.NumpyDataset\n"
        "  filepath: memory:///bucket/primary/train_split.npz\n")
    bootstrap_project(project)
    with KedroSession.create(project_path=project, env="remote") as session:
        folders = probe_folders(session, ["ablation.norm.a.seed_0"])
    assert folders[0] == ("memory:///bucket/primary", {})
    assert folders[1:] == [(str(project / "data/07_model_output/ablation"), {"auto_mkdir": True})]
    workers = _SeeingWorkers()
    check_workers(workers, folders[:1])  # the worker reads the probe from memory://
    assert workers.probes[0].startswith("memory:///bucket/primary/.dask-probe-")
    assert not fsspec.filesystem("memory").glob("/bucket/primary/.dask-probe-*")


def test_both_workers_and_scheduler_is_a_usage_error(project):
    result = project_command(project, "ablation", "run", "--workers", "2", "--scheduler", "tcp://x:1")
    assert result.exit_code == 2 and "Give --workers (a local cluster) or --scheduler" in result.output


def test_a_run_that_would_start_ddp_processes_is_refused_before_the_study_starts():
    from simple_cnn.parameters import CnnParams
    from simple_cnn.pipelines.ablation.rounds import refuse_ddp

    ddp = CnnParams.model_validate({"training": {"distributed": {"nproc_per_node": 2}}})
    with pytest.raises(ClusterError, match=r"^ablation\.norm\.a\.seed_0 trains on 2 processes "
                                           r"\(cnn\.training\.distributed\.nproc_per_node=2\), which a "
                                           r"Dask task cannot start: .*daemonic.*set nproc_per_node: 1"):
        refuse_ddp("ablation.norm.a.seed_0", ddp)
    refuse_ddp("ablation.norm.a.seed_0", CnnParams())  # one process: fine
