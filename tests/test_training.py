"""Training loop behaviour on the synthetic task: learning, determinism, resume, NaN trap."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from simple_cnn.augment import BatchAugment
from simple_cnn.data.raw import channel_stats
from simple_cnn.data.synthetic import make_synthetic
from simple_cnn.errors import ConcurrentRunError, ConfigError
from simple_cnn.models.config import ModelConfig
from simple_cnn.models.simple_cnn import SimpleCNN
from simple_cnn.training.checkpoint import checkpoint_lock
from simple_cnn.training.config import TrainConfig
from simple_cnn.training.diagnostics import NonFiniteLossError
from simple_cnn.training.loop import fit

DATA = make_synthetic(n_train=1200, n_test=400, seed=3)
MEAN, STD = channel_stats(DATA.train_images)
MODEL = {"base_width": 8, "hidden_units": 64, "dropout": 0.1}


def train(tmp_path, model=MODEL, on_epoch_end=None, preset="standard", n_train=None, **overrides):
    config = ModelConfig(**model)
    params = {"epochs": 3, "batch_size": 64, "lr": 0.05, "warmup": 10, "warmup_unit": "steps",
              "amp": "off", "device": "cpu", "seed": 7, "progress_bar": False,
              "label_smoothing": 0.0, **overrides}
    augment = BatchAugment(preset, MEAN, STD, num_classes=10)
    torch.manual_seed(params["seed"])
    n = n_train or len(DATA.train_labels)
    return fit(SimpleCNN(config), DATA.train_images[:n], DATA.train_labels[:n], DATA.test_images,
               DATA.test_labels, augment, TrainConfig(**params),
               checkpoint_path=tmp_path / "ckpt" / "last.pt", model_config=config.model_dump(),
               on_epoch_end=on_epoch_end)


def test_learns_the_synthetic_task_well_above_chance(tmp_path):
    result = train(tmp_path)
    assert result.history["best_val_accuracy"] > 0.6  # chance is 0.1
    assert result.history["train_loss"][-1] < result.history["train_loss"][0]
    assert len(result.history["lr_per_step"]) == 3 * (1200 // 64)
    assert (tmp_path / "ckpt" / "last.pt").exists()


def test_bf16_autocast_learns_on_cpu(tmp_path):
    result = train(tmp_path, amp="bf16", epochs=2)
    assert result.amp == "bf16"
    assert result.history["best_val_accuracy"] > 0.4


def test_same_seed_same_result(tmp_path):
    a = train(tmp_path / "a")
    b = train(tmp_path / "b")
    assert a.history["val_accuracy"] == b.history["val_accuracy"]
    assert a.history["train_loss"] == b.history["train_loss"]
    for key in a.best_state:
        assert torch.equal(a.best_state[key], b.best_state[key])


class Crash(Exception):
    pass


def test_resume_after_a_crash_ends_like_an_uninterrupted_run(tmp_path):
    straight = train(tmp_path / "straight", epochs=4)

    def crash_after_epoch_2(epoch, row):
        if epoch == 2:
            raise Crash
    with pytest.raises(Crash):
        train(tmp_path / "resumed", epochs=4, on_epoch_end=crash_after_epoch_2)
    trained = []  # a resume that silently retrained from scratch would train epochs 1-4 here
    resumed = train(tmp_path / "resumed", epochs=4, resume=True,
                    on_epoch_end=lambda epoch, row: trained.append(epoch))
    assert trained == [3, 4]
    assert resumed.history["epoch"] == [1, 2, 3, 4]
    assert resumed.history["val_accuracy"] == straight.history["val_accuracy"]
    assert resumed.history["lr_per_step"] == straight.history["lr_per_step"]
    for key in straight.best_state:
        assert torch.equal(resumed.best_state[key], straight.best_state[key])


KILL_SCRIPT = """
import sys, time
sys.path.insert(0, {tests!r})
from pathlib import Path
from test_training import train

def report(epoch, row):
    print("EPOCH", epoch, flush=True)
    if epoch >= 3:
        time.sleep(0.5)  # keep the run alive long enough to be killed before it ends

train(Path({root!r}), epochs=6, on_epoch_end=report)
"""


@pytest.mark.slow  # a subprocess: it imports the unmutated package
def test_resume_after_sigkill(tmp_path):
    script = KILL_SCRIPT.format(tests=str(Path(__file__).parent), root=str(tmp_path / "killed"))
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    for line in process.stdout:  # kill it during epoch 4 (or just before it)
        if line.startswith("EPOCH 3"):
            time.sleep(0.55)
            os.kill(process.pid, signal.SIGKILL)
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    checkpoint = torch.load(tmp_path / "killed" / "ckpt" / "last.pt", weights_only=True)
    done = checkpoint["state"]["epoch"]
    assert 3 <= done < 6
    trained = []
    resumed = train(tmp_path / "killed", epochs=6, resume=True,
                    on_epoch_end=lambda epoch, row: trained.append(epoch))
    assert trained == list(range(done + 1, 7))
    straight = train(tmp_path / "straight", epochs=6)
    assert resumed.history["val_accuracy"] == straight.history["val_accuracy"]


def test_nan_trap_names_step_lr_and_layer_and_keeps_the_checkpoint(tmp_path):
    def poison(epoch, row):
        if epoch == 1:
            with torch.no_grad():
                poison.model.features[1].conv.weight[0, 0, 0, 0] = float("nan")

    config = ModelConfig(**MODEL)
    model = SimpleCNN(config)
    poison.model = model
    augment = BatchAugment("standard", MEAN, STD, num_classes=10)
    params = TrainConfig(epochs=3, batch_size=64, lr=0.05, amp="off", device="cpu", warmup=0,
                         progress_bar=False, scheduler="constant")
    before = (tmp_path / "ckpt" / "last.pt")
    with pytest.raises(NonFiniteLossError) as error:
        fit(model, DATA.train_images, DATA.train_labels, DATA.test_images, DATA.test_labels,
            augment, params, checkpoint_path=before, model_config=config.model_dump(),
            on_epoch_end=poison)
    message = str(error.value)
    assert "epoch 2, step 1/18" in message and "lr 0.05" in message
    assert "features.1.conv" in message
    checkpoint = torch.load(before, weights_only=True)
    assert checkpoint["state"]["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in checkpoint["model"].values() if v.is_floating_point())


def test_nan_trap_on_a_diverging_run(tmp_path):
    with pytest.raises(NonFiniteLossError, match=r"at epoch \d+, step \d+/\d+ .* with lr .* First non-finite: "):
        train(tmp_path, model={**MODEL, "norm": "none"}, lr=1e4, warmup=0, momentum=0.0,
              nesterov=False, weight_decay=0.0)


def test_fp16_on_cpu_is_refused_before_training(tmp_path):
    with pytest.raises(ConfigError, match="amp=fp16 needs a CUDA GPU \\(device is cpu\\)"):
        train(tmp_path, amp="fp16")


def test_resume_without_checkpoint_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="no checkpoint at"):
        train(tmp_path, resume=True)


def test_resume_with_another_model_shape_is_refused(tmp_path):
    train(tmp_path, epochs=1, warmup=0)
    with pytest.raises(ConfigError, match="model of another shape.*base_width"):
        train(tmp_path, model={**MODEL, "base_width": 4}, epochs=2, resume=True)


def test_resume_with_other_settings_is_refused_and_lists_them(tmp_path):
    with pytest.raises(Crash):
        train(tmp_path, epochs=4, on_epoch_end=lambda epoch, row: (_ for _ in ()).throw(Crash))
    with pytest.raises(ConfigError, match="other settings or data .*epochs: checkpoint 4, now 3; "
                                          "lr: checkpoint 0.05, now 0.1"):
        train(tmp_path, epochs=3, lr=0.1, resume=True)
    with pytest.raises(ConfigError, match="augmentation: checkpoint 'standard', now 'medium'"):
        train(tmp_path, epochs=4, resume=True, preset="medium")


def test_resume_on_other_training_data_is_refused(tmp_path):
    with pytest.raises(Crash):
        train(tmp_path, epochs=4, on_epoch_end=lambda epoch, row: (_ for _ in ()).throw(Crash))
    with pytest.raises(ConfigError, match="train_data: checkpoint '[0-9a-f]+', now '[0-9a-f]+'"):
        train(tmp_path, epochs=4, resume=True, n_train=1100)


def test_resuming_a_finished_run_says_it_is_complete(tmp_path):
    train(tmp_path, epochs=2, warmup=0)
    with pytest.raises(ConfigError, match="already complete \\(epoch 2 of 2\\)"):
        train(tmp_path, epochs=2, warmup=0, resume=True)


def test_a_second_run_on_the_same_checkpoint_is_refused_naming_the_first(tmp_path):
    with checkpoint_lock(tmp_path / "ckpt" / "last.pt"):
        with pytest.raises(ConcurrentRunError, match=f"Another training run .*pid {os.getpid()}"):
            train(tmp_path, epochs=1, warmup=0)
    assert train(tmp_path, epochs=1, warmup=0).history["epoch"] == [1]  # released


def test_batch_larger_than_the_data_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="batch_size=5000 is larger than the training set"):
        train(tmp_path, batch_size=5000)


def test_early_stopping_after_patience_epochs_without_improvement(tmp_path):
    # a learning rate too small to change anything: validation accuracy stays flat
    result = train(tmp_path, model={**MODEL, "norm": "none", "dropout": 0.0}, epochs=6, lr=1e-12,
                   warmup=0, early_stopping_patience=2)
    assert result.history["epoch"] == [1, 2, 3]
    assert result.history["best_epoch"] == 1


@pytest.mark.slow  # compiles for ~10 s
def test_torch_compile_trains_and_saves_plain_weights(tmp_path):
    result = train(tmp_path, epochs=1, warmup=0, compile=True)
    assert result.history["val_accuracy"][0] > 0.2
    assert all(not key.startswith("_orig_mod") for key in result.best_state)


def test_batch_norm_with_a_tiny_batch_warns_and_says_what_to_use(tmp_path, caplog):
    with caplog.at_level("WARNING"):
        train(tmp_path / "a", epochs=1, warmup=0, batch_size=2, n_train=40)
    assert "batch_size=2 with BatchNorm" in caplog.text and "norm: group or layer" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        train(tmp_path / "b", model={**MODEL, "norm": "group", "num_groups": 4}, epochs=1,
              warmup=0, batch_size=2, n_train=40)
    assert "BatchNorm" not in caplog.text


def test_without_a_validation_split_the_last_epoch_is_kept_and_no_accuracy_is_invented(tmp_path):
    config = ModelConfig(**MODEL)
    torch.manual_seed(0)
    result = fit(SimpleCNN(config), DATA.train_images, DATA.train_labels, DATA.test_images[:0],
                 DATA.test_labels[:0], BatchAugment("standard", MEAN, STD, num_classes=10),
                 TrainConfig(epochs=2, batch_size=64, lr=0.05, warmup=0, amp="off", device="cpu",
                             progress_bar=False), checkpoint_path=tmp_path / "last.pt")
    assert result.history["best_val_accuracy"] is None
    assert result.history["best_epoch"] == 2


def test_max_steps_is_an_exact_budget_and_the_schedule_ends_on_it(tmp_path):
    """1200 images // 64 = 18 steps per epoch: 25 steps are one full epoch and 7 steps."""
    result = train(tmp_path, epochs=1, max_steps=25, scheduler="linear")
    history = result.history
    assert len(history["lr_per_step"]) == 25 and history["total_steps"] == 25
    assert history["epoch"] == [1, 2]  # the second epoch is cut short
    assert history["lr"][-1] == pytest.approx(0.0, abs=1e-9)  # linear decay reaches 0 at step 25
    assert history["images_per_second"][1] * history["seconds"][1] == pytest.approx(7 * 64)


def test_max_steps_shorter_than_the_warmup_is_refused_at_once():
    with pytest.raises(ValidationError, match="warmup.*not shorter than training .max_steps=10"):
        TrainConfig(max_steps=10, warmup=10, warmup_unit="steps")


def test_a_diverged_run_carries_its_step_lr_and_layer(tmp_path):
    with pytest.raises(NonFiniteLossError) as error:
        train(tmp_path, model={**MODEL, "norm": "none"}, lr=1e6, warmup=0, scheduler="constant")
    details = error.value.details
    assert details["lr"] == pytest.approx(1e6) and details["step"] >= 1
    assert details["layer"] and len(details["lr_per_step"]) == details["step"]
    import pickle

    assert pickle.loads(pickle.dumps(error.value)).details == details  # survives ParallelRunner
