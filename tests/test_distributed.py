"""Training on two processes: DistributedDataParallel over Gloo on 127.0.0.1 (one thread each).

The model has GroupNorm (no batch statistics) and no dropout, and the images are not
augmented, so a two-process run can be compared with a one-process run of the same global
batch: only the order of float sums differs (each rank's mean over its half, then the mean of
the two gradients, against one mean over the whole batch)."""

import json
import os
import pickle
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from simple_cnn.augment import BatchAugment
from simple_cnn.data.raw import channel_stats
from simple_cnn.data.synthetic import make_synthetic
from simple_cnn.errors import ConfigError, DistributedTrainingError, NonFiniteLossError
from simple_cnn.models.config import ModelConfig
from simple_cnn.models.simple_cnn import SimpleCNN
from simple_cnn.training import distributed
from simple_cnn.training.config import TrainConfig
from simple_cnn.training.distributed import _failure, _keep, _start_method, check_world
from simple_cnn.training.launch import fit_on_processes
from simple_cnn.training.loop import fit
from simple_cnn.training.state import FitResult

DATA = make_synthetic(n_train=640, n_test=160, seed=5)
MEAN, STD = channel_stats(DATA.train_images)
MODEL = ModelConfig(base_width=8, num_groups=4, norm="group", hidden_units=32, dropout=0.0)
AUGMENT = BatchAugment("none", MEAN, STD, num_classes=10)
TIMING = ("seconds", "images_per_second", "train_seconds")


def settings(**changes) -> TrainConfig:
    return TrainConfig(**{"epochs": 3, "batch_size": 64, "lr": 0.05, "warmup": 1, "amp": "off",
                          "device": "cpu", "seed": 3, "progress_bar": False,
                          "label_smoothing": 0.1, **changes})


def arguments(checkpoint: Path, config: TrainConfig, on_epoch_end=None) -> tuple:
    torch.manual_seed(0)
    return (SimpleCNN(MODEL), DATA.train_images, DATA.train_labels, DATA.test_images,
            DATA.test_labels, AUGMENT, config, checkpoint, MODEL.model_dump(), on_epoch_end)


def on_two(checkpoint: Path, on_epoch_end=None, **changes) -> list[FitResult]:
    """``fit`` on two processes; every rank's result."""
    return distributed.launch(fit, arguments(checkpoint, settings(**changes), on_epoch_end), 2,
                              "gloo", None)


def without_timing(history: dict) -> dict:
    return {k: v for k, v in history.items() if k not in TIMING}


@pytest.fixture(scope="module")
def two(tmp_path_factory) -> list[FitResult]:
    return on_two(tmp_path_factory.mktemp("two") / "last.pt")


def test_both_ranks_end_with_bit_identical_weights_and_history(two):
    zero, one = two
    assert zero.best_state.keys() == one.best_state.keys()
    assert all(torch.equal(zero.best_state[k], one.best_state[k]) for k in zero.best_state)
    assert without_timing(zero.history) == without_timing(one.history)
    assert (zero.history["world_size"], zero.history["global_batch_size"]) == (2, 64)
    assert zero.history["best_val_accuracy"] > 0.4  # it learns (chance: 0.1)


@pytest.fixture(scope="module")
def one(tmp_path_factory) -> FitResult:
    return fit(*arguments(tmp_path_factory.mktemp("one") / "last.pt", settings()))


def test_with_batchnorm_and_augmentation_both_ranks_still_hold_the_same_model(tmp_path):
    """Each rank's BatchNorm sees its own slice and its augmentation its own draws; rank 0's
    running statistics are copied to every rank at the end of each epoch."""
    model = MODEL.model_copy(update={"norm": "batch"})
    torch.manual_seed(0)
    args = (SimpleCNN(model), DATA.train_images, DATA.train_labels, DATA.test_images, DATA.test_labels,
            BatchAugment("standard", MEAN, STD, num_classes=10), settings(epochs=2),
            tmp_path / "last.pt", model.model_dump(), None)
    zero, one = distributed.launch(fit, args, 2, "gloo", None)
    assert any("running_mean" in k for k in zero.best_state)
    assert all(torch.equal(zero.best_state[k], one.best_state[k]) for k in zero.best_state)


def test_two_processes_equal_one_with_the_same_global_batch(two, one):
    """Only the order of float32 sums differs (~1e-7 per step), but a ReLU or max-pool that
    flips on such a difference can amplify it over these 30 steps. Measured here: weights (up
    to 1.07 in size) at most 8.6e-4 apart and losses 4.1e-4 relative with one thread per
    process, 3.2e-7 and 1.3e-7 with two. The errors this test is for are far outside the
    tolerance: both ranks on the same slice moved the weights by 0.14 and the first epoch's loss
    by 0.9 %; a sum of the gradients instead of their mean, 0.35 and 97 %."""
    for key, weights in one.best_state.items():
        torch.testing.assert_close(two[0].best_state[key], weights, rtol=0, atol=1e-2)
    for key in ("train_loss", "val_loss", "lr_per_step"):
        assert two[0].history[key] == pytest.approx(one.history[key], rel=5e-3)
    assert one.history["world_size"] == 1


def _die_on_rank_1_after_epoch_1(epoch: int, row: dict) -> None:
    if epoch == 1 and distributed.current().rank == 1:
        os.kill(os.getpid(), signal.SIGKILL)


def test_a_run_killed_after_its_first_checkpoint_resumes_to_the_uninterrupted_result(two, tmp_path):
    checkpoint = tmp_path / "last.pt"
    with pytest.raises(DistributedTrainingError, match=r"rank 1 of 2 (was killed by SIGKILL|died without an error)") as error:
        on_two(checkpoint, on_epoch_end=_die_on_rank_1_after_epoch_1)
    assert "last complete checkpoint is kept" in str(error.value)
    assert torch.load(checkpoint, weights_only=True)["state"]["epoch"] == 1
    assert not list(tmp_path.glob("*.partial"))  # nothing half-written
    resumed = on_two(checkpoint, resume=True)
    assert without_timing(resumed[0].history) == without_timing(two[0].history)
    assert all(torch.equal(resumed[0].best_state[k], v) for k, v in two[0].best_state.items())


def _raise_on_rank_1(epoch: int, row: dict) -> None:
    if distributed.current().rank == 1:
        raise RuntimeError("disk full on rank 1")


def test_a_failing_worker_takes_the_run_down_with_its_rank_and_error(tmp_path):
    with pytest.raises(DistributedTrainingError, match=r"rank 1 of 2 failed: RuntimeError: "
                       r"disk full on rank 1") as error:
        on_two(tmp_path / "last.pt", on_epoch_end=_raise_on_rank_1)
    assert isinstance(error.value.__cause__, RuntimeError)
    # the project's own errors come back as they are, with their details
    with pytest.raises(NonFiniteLossError) as error:
        on_two(tmp_path / "nan.pt", lr=1e30)
    assert error.value.details["epoch"] == 1 and error.value.details["step"] >= 1
    with pytest.raises(ConfigError, match="there is no checkpoint"):
        on_two(tmp_path / "missing.pt", resume=True)


def test_the_node_route_starts_the_processes_and_returns_rank_0s_result(tmp_path):
    config = settings(epochs=2, distributed={"nproc_per_node": 2})
    result = fit_on_processes(*arguments(tmp_path / "last.pt", config))
    assert result.history["world_size"] == 2 and len(result.history["epoch"]) == 2


def test_settings_that_cannot_run_on_cpu_are_refused_before_any_process_starts(tmp_path, monkeypatch):
    """(A global batch that does not split, NCCL without CUDA and nproc_per_node below 1 are
    refused with the parameters, at session start: tests/test_parameters.py.)"""
    monkeypatch.setattr(distributed, "launch", lambda *a: pytest.fail("a process was started"))
    config = settings(distributed={"nproc_per_node": 2, "sync_batchnorm": True})
    with pytest.raises(ConfigError, match=r"distributed.sync_batchnorm=true needs CUDA .* training "
                       "runs on cpu; set it to false"):
        fit_on_processes(*arguments(tmp_path / "last.pt", config))
    config = settings(distributed={"nproc_per_node": 2}).model_copy(update={"batch_size": 1024})
    with pytest.raises(ConfigError, match=r"batch_size=1024 is larger than the training set \(640"):
        fit_on_processes(*arguments(tmp_path / "last.pt", config))


def test_more_processes_than_gpus_or_an_uneven_batch_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ConfigError, match=r"nproc_per_node=4 processes on this machine but 2 GPU\(s\) "
                                          r"are visible"):
        check_world(4, settings(), torch.device("cuda"))
    check_world(2, settings(distributed={"sync_batchnorm": True}), torch.device("cuda"))


def test_the_world_is_checked_per_machine_and_one_visible_gpu_per_task_is_a_gpu_each(monkeypatch):
    """torchrun --nnodes 2 --nproc-per-node 8 (16 processes, 8 per machine of 8 GPUs), and SLURM's
    one visible GPU per task, used to be refused: the global world was compared with the local
    GPUs, and a local rank of 3 asked for a device that a task with one GPU does not have."""
    from simple_cnn.training.distributed import World

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    check_world(16, settings(batch_size=256), torch.device("cuda"), local_size=8)
    with pytest.raises(ConfigError, match=r"nproc_per_node=16 processes on this machine but 8 GPU"):
        check_world(16, settings(batch_size=256), torch.device("cuda"), local_size=16)
    assert World(rank=11, size=16, local_rank=3, local_size=8).device(torch.device("cuda")) == torch.device("cuda", 3)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)  # SLURM: each task sees its own GPU
    check_world(4, settings(batch_size=256), torch.device("cuda"), local_size=4)
    assert World(rank=3, size=4, local_rank=3, local_size=4).device(torch.device("cuda")) == torch.device("cuda", 0)
    assert World().device(torch.device("cuda")) == torch.device("cuda")


class NaNAt(torch.nn.Module):
    """Logits that turn NaN on rank 1 at its ``at``-th training forward: a counter in a buffer, so
    the interval's replay (which restores the buffers) meets the NaN again, and the trap's
    search, one forward later, does not: it then runs a backward to look for it there."""

    def __init__(self, inner: torch.nn.Module, at: int) -> None:
        super().__init__()
        self.inner, self.at = inner, at
        self.register_buffer("calls", torch.zeros((), dtype=torch.int64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inner(x)
        if self.training:
            self.calls += 1
            if torch.distributed.get_rank() == 1 and int(self.calls) == self.at:
                out = out * float("nan")
        return out


@pytest.mark.timeout(90)
def test_the_nan_trap_under_ddp_searches_a_plain_copy_and_does_not_hang(tmp_path):
    """Rank 1 alone sees the NaN. Its search for the layer runs a backward; on the model inside
    DistributedDataParallel that backward would wait for rank 0's gradients, which never come."""
    torch.manual_seed(0)
    model = NaNAt(SimpleCNN(MODEL), at=3)
    args = (model, DATA.train_images, DATA.train_labels, DATA.test_images, DATA.test_labels, AUGMENT,
            settings(), tmp_path / "last.pt", None, None)
    with pytest.raises(NonFiniteLossError) as error:
        distributed.launch(fit, args, 2, "gloo", None)
    assert error.value.details["step"] == 3
    assert "no layer on a re-run of the batch" in str(error.value)
    uneven = settings().model_copy(update={"batch_size": 63})  # torchrun's world, not the params'
    with pytest.raises(ConfigError, match=r"batch_size=63 \(the global batch\) does not split "
                       r"evenly over 2 processes; use a multiple of 2, e\.g\. 62"):
        check_world(2, uneven, torch.device("cpu"))


class _Stop(Exception):
    pass


def _stop_after_epoch_1(epoch: int, row: dict) -> None:
    if epoch == 1:
        raise _Stop


def test_a_run_resumes_on_another_number_of_processes_and_says_what_changes(one, tmp_path, caplog):
    """Without batch statistics or augmentation nothing changes but the order of float sums."""
    checkpoint = tmp_path / "last.pt"
    with pytest.raises(_Stop):
        fit(*arguments(checkpoint, settings(), on_epoch_end=_stop_after_epoch_1))
    resumed = on_two(checkpoint, resume=True)[0]
    assert resumed.history["train_loss"] == pytest.approx(one.history["train_loss"], rel=5e-3)  # as above
    saved = torch.load(checkpoint, weights_only=True)
    assert saved["world_size"] == 2 and saved["state"]["epoch"] == 3
    saved["state"].update(epoch=1, finished=False)
    torch.save(saved, checkpoint)
    with caplog.at_level("WARNING"):
        fit(*arguments(checkpoint, settings(resume=True)))
    assert ("Resuming a run of 2 process(es) on 1: the data order, weights, optimiser and schedule "
            "continue exactly, but each process now takes 64 images per step (was 32)") in caplog.text


@pytest.mark.slow
def test_torchrun_runs_the_cnn_pipeline_and_rank_0_writes_one_version_of_each_output(smoke_copy):
    before = {path for path in (smoke_copy / "data").rglob("*") if path.is_file()}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "kedro", "run", "--env", "smoke", "--pipeline", "cnn"],
        cwd=smoke_copy, capture_output=True, text=True, timeout=300,
        env={**os.environ, "SIMPLE_CNN_TRACKING": "off"})
    assert result.returncode == 0, result.stderr[-3000:]
    new = {path for path in (smoke_copy / "data").rglob("*") if path.is_file()} - before
    versioned = [path for path in new if "checkpoints" not in path.parts]
    outputs = {path.parent.parent.name for path in versioned}
    assert len(versioned) == len(outputs)  # one new version of each
    assert {"cnn_model.pt", "cnn_training_history.json", "cnn_test_metrics.json",
            "run_profile.json"} <= outputs
    model = torch.load(next(p for p in versioned if p.name == "cnn_model.pt"), weights_only=True)
    assert model["training"]["world_size"] == 2
    metrics = json.loads(next(p for p in versioned if p.name == "cnn_test_metrics.json").read_text())
    assert (metrics["world_size"], metrics["global_batch_size"]) == (2, 64)
    assert metrics["accuracy"] > 0.5
    assert result.stdout.count("Run profile") == 1  # rank 1 kept quiet


class _Process:
    """What torch's elastic launcher records of a failed process."""

    def __init__(self, exitcode: int = 1, signal: str = "<N/A>") -> None:
        self.exitcode, self._signal = exitcode, signal

    def signal_name(self) -> str:
        return self._signal


class _Failed:
    """torch's ChildFailedError, as far as ``_failure`` reads it."""

    def __init__(self, **failures: _Process) -> None:
        self.failures = {int(rank[1:]): process for rank, process in failures.items()}

    def get_first_failure(self):
        rank = min(self.failures)
        return rank, self.failures[rank]


def outcomes(folder: Path, **by_rank) -> Path:
    """Each rank's outcome file as ``_worker`` leaves it: an error, "stopped", "done" or none."""
    for rank, outcome in by_rank.items():
        path = folder / f"rank_{rank[1:]}"
        if isinstance(outcome, BaseException):
            _keep(outcome, path.with_suffix(".pickle"))
        elif outcome is not None:
            path.with_suffix(f".{outcome}").touch()
    return folder


def test_the_reported_failure_is_the_root_cause_not_its_echoes(tmp_path):
    lost = RuntimeError("[gloo] Connection closed by peer [127.0.0.1]:1234")
    cases = [
        (dict(r0="stopped", r1=RuntimeError("boom")), _Failed(r1=_Process()),
         "rank 1 of 2 failed: RuntimeError: boom; the other processes were stopped"),
        (dict(r0=lost, r1=None), _Failed(r0=_Process(), r1=_Process(-9, "SIGKILL")),
         "rank 1 of 2 was killed by SIGKILL"),
        (dict(r0=lost, r1=None), _Failed(r0=_Process()),
         "rank 1 of 2 died without an error (killed? out of memory?)"),
        (dict(r0=None, r1=RuntimeError("boom")), _Failed(r1=_Process()),  # rank 0: SIGTERM
         "rank 1 of 2 failed: RuntimeError: boom"),
        (dict(r0="done", r1=None), _Failed(r1=_Process(3)), "rank 1 of 2 exited with code 3"),
    ]
    for number, (by_rank, failed, message) in enumerate(cases):
        (tmp_path / str(number)).mkdir()
        error, cause = _failure(failed, outcomes(tmp_path / str(number), **by_rank), 2)
        assert type(error) is DistributedTrainingError and message in str(error), (number, error)
        assert "last complete checkpoint is kept" in str(error)
        assert (cause is None) == (number > 0 and number != 3)
    # the project's own errors are raised as they are, with their details
    (tmp_path / "own").mkdir()
    own = NonFiniteLossError("loss nan at step 3", epoch=1, step=3)
    error, cause = _failure(_Failed(r0=_Process(), r1=_Process()),
                            outcomes(tmp_path / "own", r0=own, r1=ConfigError("other")), 2)
    assert type(error) is NonFiniteLossError and error.details == {"epoch": 1, "step": 3}


def test_an_error_that_does_not_pickle_is_kept_as_its_type_and_message(tmp_path):
    error = OSError("disk gone")
    error.handle = threading.Lock()  # what pickle cannot take (tblib, which Dask installs, or not)
    _keep(error, tmp_path / "e.pickle")
    kept = pickle.loads((tmp_path / "e.pickle").read_bytes())
    assert type(kept) is RuntimeError and str(kept) == "OSError: disk gone"


def _threads_used_after_a_matmul() -> int:
    x = torch.randn(256, 256)
    for _ in range(5):
        x = torch.tanh(x @ x)
    return torch.get_num_threads()


@pytest.mark.timeout(120)
def test_processes_of_several_threads_are_spawned_and_do_not_hang():
    """GNU OpenMP hangs a forked child that starts a thread pool after its parent used one;
    so only single-threaded CPU processes are forked."""
    assert [_start_method("gloo", 1), _start_method("gloo", 2), _start_method("nccl", 1, "cuda"),
            _start_method("gloo", 1, "cuda")] == ["fork", "spawn", "spawn", "spawn"]  # Gloo between GPUs: spawn
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        _threads_used_after_a_matmul()  # the parent's OpenMP pool has run
        assert distributed.launch(_threads_used_after_a_matmul, (), 2, "gloo", 2) == [2, 2]
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("launched", [False, True], ids=["RANK alone", "torchrun's rank 1"])
def test_rank_comes_from_a_launcher_not_from_RANK_alone(project, monkeypatch, caplog, launched):  # noqa: N802
    """A pod or job script that exports RANK=1 still saves its outputs; a real rank 1 of
    torchrun keeps them in memory and says so once, at INFO."""
    import logging

    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    monkeypatch.setenv("RANK", "1")
    if launched:
        monkeypatch.setenv("WORLD_SIZE", "2")
        monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    levels = {name: logging.getLogger(name).level for name in ("kedro", "simple_cnn", "kedro.io.data_catalog")}
    bootstrap_project(project)
    try:
        with caplog.at_level("INFO"), KedroSession.create(project_path=project, env="smoke") as session:
            session.run(pipeline_names=["ingestion"])
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
    saved = [p for p in (project / "data").rglob("*") if p.is_file() and p.suffix in (".npz", ".json")]
    said = [m for m in caplog.messages if "it saves nothing" in m]
    if launched:
        assert saved == [] and said == ["This process is rank 1 of 2 under torchrun: it saves nothing "
                                        "(rank 0 writes every output) and logs warnings only from here on."]
    else:
        assert {p.parent.parent.name for p in saved} >= {"train_split.npz", "dataset_summary.json"}
        assert said == []
