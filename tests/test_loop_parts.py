"""The training loop's parts, one at a time and without a training run (fast, so mutation
testing can afford them): the optimiser's groups, AMP names, inference, the RNG snapshot, one
optimiser step, the NaN trap's details, evaluation, the history row, the best epoch, and an
epoch that reads the device once per ``log_every`` steps."""

import contextlib
import logging
import math
import sys

import pytest
import torch
from torch import nn

from simple_cnn.augment import BatchAugment
from simple_cnn.errors import ConcurrentRunError, ConfigError, NonFiniteLossError
from simple_cnn.training.checkpoint import checkpoint_lock
from simple_cnn.training.config import TrainConfig
from simple_cnn.training.device import amp_name, autocast_factory
from simple_cnn.training.diagnostics import first_non_finite_layer, non_finite_message
from simple_cnn.training.distributed import World
from simple_cnn.training.evaluation import evaluate, predict_logits
from simple_cnn.training.loop import (
    _build,
    _log_start,
    _record,
    _restore,
    _update_best,
    fit,
    make_optimizer,
)
from simple_cnn.training.state import FitResult
from simple_cnn.training.steps import (
    _non_finite,
    _optimiser_step,
    _rng_state,
    _set_rng_state,
    epoch_order,
    epoch_seed,
    train_one_epoch,
)

AUGMENT = BatchAugment("none", [0.5] * 3, [0.25] * 3, num_classes=3)


def tiny() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 3))


def run_of(tmp_path, **config):
    settings = {"epochs": 3, "warmup": 0, "lr": 0.1, "scheduler": "constant", **config}
    return _build(tiny(), AUGMENT, TrainConfig(**settings), torch.device("cpu"), None,
                  steps_per_epoch=4, checkpoint_path=tmp_path / "last.pt")


def images(n: int = 6) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8)


def test_weight_decay_only_on_weight_matrices_and_the_chosen_optimiser():
    model = tiny()
    sgd = make_optimizer(model, TrainConfig(lr=0.3, momentum=0.8, nesterov=True, weight_decay=0.01))
    decay, no_decay = sgd.param_groups
    shapes = lambda group: sorted(tuple(p.shape) for p in group["params"])  # noqa: E731
    assert shapes(decay) == [(3, 4), (4, 3, 3, 3)] and decay["weight_decay"] == 0.01
    assert shapes(no_decay) == [(3,), (4,), (4,), (4,)] and no_decay["weight_decay"] == 0.0
    assert (type(sgd), sgd.defaults["lr"], sgd.defaults["momentum"], sgd.defaults["nesterov"]) == (
        torch.optim.SGD, 0.3, 0.8, True)
    adamw = make_optimizer(model, TrainConfig(optimizer="adamw", lr=0.002))
    assert type(adamw) is torch.optim.AdamW and adamw.defaults["lr"] == 0.002
    assert [g["weight_decay"] for g in adamw.param_groups] == [5e-4, 0.0]


def test_amp_names_and_autocast():
    assert [amp_name(d) for d in (None, torch.float16, torch.bfloat16)] == ["off", "fp16", "bf16"]
    cpu = torch.device("cpu")
    with autocast_factory(cpu, None)():
        assert not torch.is_autocast_enabled("cpu")
    for dtype in (torch.bfloat16, torch.float16):
        with autocast_factory(cpu, dtype)():
            assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == dtype


def test_predictions_batch_restore_the_mode_and_average_the_mirror():
    torch.manual_seed(0)
    model, x = tiny().train(), images(7)
    plain = autocast_factory(torch.device("cpu"), None)
    whole = predict_logits(model, x, AUGMENT, plain, batch_size=100)
    assert model.training and whole.dtype == torch.float32 and whole.shape == (7, 3)
    torch.testing.assert_close(predict_logits(model, x, AUGMENT, plain, batch_size=3), whole)
    model.eval()
    mirrored = model(AUGMENT.prepare(x).flip(-1))
    tta = predict_logits(model, x, AUGMENT, plain, batch_size=4, flip_tta=True)
    torch.testing.assert_close(tta, (whole + mirrored) / 2)
    assert not model.training  # left as it was: eval


def test_the_rng_snapshot_replays_the_same_draws():
    torch.manual_seed(3)
    snapshot = _rng_state()
    first = torch.rand(5)
    torch.rand(100)
    _set_rng_state(snapshot)
    assert torch.equal(torch.rand(5), first)


def test_one_optimiser_step_moves_the_weights_clears_old_gradients_and_schedules(tmp_path):
    run = run_of(tmp_path, scheduler="linear", warmup=0)
    lr_before = run.optimizer.param_groups[0]["lr"]
    weights = run.model[5].weight.detach().clone()
    run.model[5].weight.grad = torch.full_like(weights, 1e6)  # stale: must be cleared first
    x, y = AUGMENT.prepare(images()), torch.tensor([0, 1, 2, 0, 1, 2])
    loss = run.loss_fn(run.model(x), y)
    expected = torch.autograd.grad(loss, run.model[5].weight, retain_graph=True)[0]
    assert _optimiser_step(run, loss) == 0  # no GradScaler on CPU: nothing skipped
    torch.testing.assert_close(run.model[5].weight.grad, expected)
    assert not torch.equal(run.model[5].weight, weights)
    assert run.optimizer.param_groups[0]["lr"] < lr_before  # the schedule took its step


def test_the_nan_trap_reports_the_global_step_lr_and_the_lr_trace(tmp_path):
    run = run_of(tmp_path)
    run.state.history["lr_per_step"] = [0.1] * 9
    run.state.epoch = 2
    x, y = AUGMENT.prepare(images()), torch.tensor([0, 1, 2, 0, 1, 2])
    x[0, 0, 0, 0] = math.inf  # finite weights: the first layer's output is where it shows
    error = _non_finite(run, epoch=3, step=1, lr=0.25, loss=torch.tensor(float("nan")), x=x, y=y)
    assert isinstance(error, NonFiniteLossError)
    layer = "activations of 0 (Conv2d)"  # the inf pixel shows first in the first conv's output
    assert error.details["layer"] == layer == first_non_finite_layer(run.model, x, y, run.loss_fn,
                                                                     run.autocast)
    assert str(error) == non_finite_message(math.nan, 3, 2, 4, 10, 0.25, layer, tmp_path / "last.pt", 2)
    assert error.details["step"] == 2 * 4 + 1 + 1 and error.details["epoch"] == 3
    assert error.details["lr"] == 0.25 and error.details["lr_per_step"] == [0.1] * 9 + [0.25]
    assert "epoch 3" in str(error) and str(tmp_path / "last.pt") in str(error)


def test_evaluation_without_a_split_is_nan_and_otherwise_the_accuracy(tmp_path):
    run = run_of(tmp_path)
    empty = evaluate(run, images(0), torch.zeros(0, dtype=torch.long))
    assert math.isnan(empty["val_loss"]) and math.isnan(empty["val_accuracy"])
    x = images(8)
    logits = predict_logits(run.model, x, AUGMENT, run.autocast)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    result = evaluate(run, x, y)
    assert result["val_accuracy"] == pytest.approx((logits.argmax(1) == y).float().mean().item())
    assert result["val_loss"] == pytest.approx(nn.functional.cross_entropy(logits, y).item())


def test_an_epochs_row_joins_the_history_and_the_log(tmp_path, caplog):
    run = run_of(tmp_path)
    row = {"epoch": 1, "train_loss": 1.5, "train_accuracy": 0.25, "val_loss": 1.25,
           "val_accuracy": 0.5, "lr": 0.1, "seconds": 2.0, "images_per_second": 300.0,
           "skipped_steps": 2}
    with caplog.at_level(logging.INFO, logger="simple_cnn.training.loop"):
        _record(run, row)
        _record(run, {**row, "epoch": 2, "skipped_steps": 0})
    assert run.state.history["epoch"] == [1, 2] and run.state.history["skipped_steps"] == [2, 0]
    assert [r.getMessage() for r in caplog.records] == [
        "epoch 1/3  loss 1.5000  acc 0.2500  val_loss 1.2500  val_acc 0.5000  lr 0.1  2.0s  300 img/s  skipped 2",
        "epoch 2/3  loss 1.5000  acc 0.2500  val_loss 1.2500  val_acc 0.5000  lr 0.1  2.0s  300 img/s"]


def test_the_best_epoch_keeps_a_copy_of_its_weights_and_patience_stops(tmp_path):
    run = run_of(tmp_path, epochs=6, early_stopping_patience=2)
    stops = []
    for epoch, accuracy in enumerate([0.3, 0.5, 0.5, 0.4], start=1):
        stops.append(_update_best(run, epoch, accuracy, has_val=True))
        if epoch == 2:
            best = {k: v.clone() for k, v in run.model.state_dict().items()}
            with torch.no_grad():
                run.model[5].weight.add_(1.0)  # later epochs change the weights
    state = run.state
    assert stops == [False, False, False, True]  # a tie is no improvement
    assert (state.best_epoch, state.best_accuracy, state.epoch, state.finished) == (2, 0.5, 4, True)
    assert all(torch.equal(state.best_state[k], best[k]) for k in best)
    assert state.epochs_without_improvement == 2


def test_without_validation_the_last_epoch_is_best_and_the_last_epoch_finishes(tmp_path):
    run = run_of(tmp_path, epochs=3)
    assert [_update_best(run, e, math.nan, has_val=False) for e in (1, 2, 3)] == [False] * 3
    assert (run.state.best_epoch, run.state.finished) == (3, True)
    patient = run_of(tmp_path, epochs=3)  # patience 0: never stops early
    assert [_update_best(patient, e, 0.1, has_val=True) for e in (1, 2)] == [False, False]
    assert not patient.state.finished


def test_a_run_is_built_for_its_device_and_precision(tmp_path):
    run = run_of(tmp_path)
    assert run.step_model is run.model and run.total_steps == 12 and run.epochs == 3
    assert run.model[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert not run.scaler.is_enabled()
    with run.autocast():
        assert not torch.is_autocast_enabled("cpu")
    half = _build(tiny(), AUGMENT, TrainConfig(epochs=3, warmup=0), torch.device("cpu"),
                  torch.float16, steps_per_epoch=4, checkpoint_path=tmp_path / "h.pt")
    assert half.scaler.is_enabled()  # GradScaler for fp16 only
    with half.autocast():
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.float16


def test_fp16_steps_with_inf_gradients_are_counted_as_skipped(tmp_path):
    run = _build(tiny(), AUGMENT, TrainConfig(epochs=3, warmup=0), torch.device("cpu"),
                 torch.float16, steps_per_epoch=4, checkpoint_path=tmp_path / "h.pt")
    x, y = AUGMENT.prepare(images()), torch.tensor([0, 1, 2, 0, 1, 2])
    assert _optimiser_step(run, run.loss_fn(run.model(x), y)) == 0
    assert _optimiser_step(run, run.loss_fn(run.model(x), y) * math.inf) == 1


def test_patience_one_stops_after_one_epoch_without_improvement(tmp_path):
    run = run_of(tmp_path, epochs=5, early_stopping_patience=1)
    assert [_update_best(run, e, a, has_val=True) for e, a in enumerate([0.5, 0.4], start=1)] == [False, True]


def epoch_data() -> tuple[torch.Tensor, torch.Tensor]:
    """24 seeded images of 3 classes: one epoch of 4 steps of 6."""
    data = torch.randint(0, 256, (24, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    return data, torch.arange(24) % 3


def epoch_of(tmp_path, log_every: int, augment=AUGMENT, **config):
    """One epoch of 4 steps of 6 images on ``tiny``, from the same seed: its row and the run."""
    torch.manual_seed(0)
    data, labels = epoch_data()
    run = _build(tiny(), augment, TrainConfig(**{"epochs": 3, "warmup": 0, "lr": 0.1, "batch_size": 6,
                                                  "log_every": log_every, **config}),
                 torch.device("cpu"), None, steps_per_epoch=4, checkpoint_path=tmp_path / "last.pt")
    return train_one_epoch(run, 1, data, labels), run


def test_an_epoch_is_the_same_whatever_its_log_interval(tmp_path):
    rows, runs = zip(*(epoch_of(tmp_path, every) for every in (1, 3, 50)))
    for row, run in zip(rows[1:], runs[1:]):
        assert {k: v for k, v in row.items() if k not in ("seconds", "images_per_second")} == \
            {k: v for k, v in rows[0].items() if k not in ("seconds", "images_per_second")}
        assert all(torch.equal(a, b) for a, b in zip(run.model.state_dict().values(),
                                                      runs[0].model.state_dict().values()))
        assert run.state.history["lr_per_step"] == runs[0].state.history["lr_per_step"]


@pytest.mark.parametrize("augment", [AUGMENT, BatchAugment("standard", [0.5] * 3, [0.25] * 3, 3)],
                         ids=["none", "standard"])
def test_an_epoch_reads_the_device_once_per_interval_not_once_per_step(tmp_path, monkeypatch, augment):
    reads = {"item": 0, "tolist": 0, "bool": 0}
    item, tolist, as_bool = torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.__bool__

    def counted(name, real):
        def read(self, *args):
            reads[name] += 1
            return real(self, *args)
        return read

    monkeypatch.setattr(torch.Tensor, "item", counted("item", item))
    monkeypatch.setattr(torch.Tensor, "tolist", counted("tolist", tolist))
    monkeypatch.setattr(torch.Tensor, "__bool__", counted("bool", as_bool))
    epoch_of(tmp_path, log_every=2, augment=augment)  # 4 steps: 2 intervals
    # the loss check once per interval; at the end the sums (one read) and the skipped steps
    assert reads == {"item": 1, "tolist": 1, "bool": 2}


def test_a_non_finite_loss_found_late_is_replayed_to_its_exact_step(tmp_path):
    errors = []
    for every in (1, 4):
        with pytest.raises(NonFiniteLossError) as error:
            epoch_of(tmp_path / str(every), every, lr=1e30, momentum=0.0, nesterov=False, weight_decay=0.0)
        errors.append(error.value)
    per_step, replayed = errors
    assert str(replayed) == str(per_step) and replayed.details == per_step.details
    assert 1 < per_step.details["step"] <= 4  # a later step: the interval really was replayed


@pytest.mark.slow
def test_an_epochs_row_is_the_mean_loss_and_accuracy_of_its_steps(tmp_path):
    """With the weights all but frozen (lr 1e-30), each step's loss is the model's on its batch
    of the seeded permutation, so the row can be computed without the loop."""
    row, run = epoch_of(tmp_path, log_every=3, lr=1e-30, scheduler="constant")
    data, labels = epoch_data()
    order = torch.randperm(24, generator=torch.Generator().manual_seed(epoch_seed(0, "order", 1)))
    losses, correct = [], 0
    with torch.no_grad():
        for step in range(4):
            index = order[step * 6 : (step + 1) * 6]
            logits = run.model(AUGMENT.prepare(data[index]))  # still in training mode: batch statistics
            losses.append(run.loss_fn(logits, labels[index]).item())
            correct += (logits.argmax(1) == labels[index]).sum().item()
    assert set(row) == {"epoch", "train_loss", "train_accuracy", "lr", "seconds", "images_per_second",
                        "skipped_steps"}
    assert row["epoch"] == 1 and row["skipped_steps"] == 0 and row["lr"] == 1e-30
    assert row["train_loss"] == pytest.approx(sum(losses) / 4, rel=1e-5)
    assert row["train_accuracy"] == correct / 24
    assert 0 < row["seconds"] < 60 and row["images_per_second"] == pytest.approx(24 / row["seconds"])
    assert run.state.history["lr_per_step"] == [1e-30] * 4


class _InfGradient(torch.autograd.Function):
    """Identity forward; backward gives inf gradients on the calls listed in ``on``."""

    calls = 0
    on: tuple[int, ...] = ()

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        _InfGradient.calls += 1
        return grad * math.inf if _InfGradient.calls in _InfGradient.on else grad


def test_fp16_steps_skipped_in_an_epoch_are_counted_on_the_device(tmp_path):
    _InfGradient.calls, _InfGradient.on = 0, (2, 4)
    model = nn.Sequential(tiny(), nn.Identity())
    model[1].forward = _InfGradient.apply
    run = _build(model, AUGMENT, TrainConfig(epochs=3, warmup=0, batch_size=6, log_every=3),
                 torch.device("cpu"), torch.float16, steps_per_epoch=4, checkpoint_path=tmp_path / "h.pt")
    row = train_one_epoch(run, 1, *epoch_data())
    assert row["skipped_steps"] == 2 and _InfGradient.calls == 4


def test_the_progress_bar_shows_the_epoch_and_its_running_loss_and_accuracy(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    row, _ = epoch_of(tmp_path, log_every=2, progress_bar=True)
    shown = capsys.readouterr().err
    assert "epoch 1/3" in shown and "/4 [" in shown  # set_postfix redraws: the last interval's values
    assert f"loss={row['train_loss']:.3f}" in shown and f"acc={row['train_accuracy']:.3f}" in shown
    assert f"lr={row['lr']:.3g}" in shown and "img_s=" in shown


class _NanOnce(nn.Module):
    """Identity, except that its ``on``-th call returns NaN: a non-finite loss that a replay
    does not meet again (as with a non-deterministic kernel)."""

    def __init__(self, on: int) -> None:
        super().__init__()
        self.calls, self.on = 0, on

    def forward(self, x):
        self.calls += 1
        return x * math.nan if self.calls == self.on else x


@pytest.mark.parametrize("amp", [None, torch.float16], ids=["fp32", "fp16"])
def test_a_non_finite_loss_that_a_replay_does_not_meet_again_is_named_by_its_steps(tmp_path, amp):
    """In fp16 GradScaler skips the NaN step, so the later losses are finite: still caught."""
    model = nn.Sequential(tiny(), _NanOnce(on=2))
    run = _build(model, AUGMENT, TrainConfig(epochs=3, warmup=0, batch_size=6, log_every=4),
                 torch.device("cpu"), amp, steps_per_epoch=4, checkpoint_path=tmp_path / "last.pt")
    with pytest.raises(NonFiniteLossError, match=r"epoch 1, steps 1-4, did not recur when replayed"):
        train_one_epoch(run, 1, *epoch_data())
    assert model[1].calls == 8  # the interval, then its replay


def test_each_epoch_has_its_own_seeded_order_and_augmentation_seed():
    orders = [epoch_order(seed, epoch, 50) for seed, epoch in ((0, 1), (0, 1), (0, 2), (1, 1))]
    assert torch.equal(orders[0], orders[1]) and sorted(orders[0].tolist()) == list(range(50))
    assert not torch.equal(orders[0], orders[2]) and not torch.equal(orders[0], orders[3])
    seeds = {epoch_seed(0, "augment", 1, 0), epoch_seed(0, "augment", 1, 1),
             epoch_seed(0, "augment", 2, 0), epoch_seed(1, "augment", 1, 0), epoch_seed(0, "order", 1, 0)}
    assert len(seeds) == 5 and epoch_seed(0, "augment", 1, 0) == epoch_seed(0, "augment", 1, 0)


def fit_tiny(tmp_path, on_epoch_end=None, n_val: int = 12, augment=AUGMENT, keep_at=(), **config) -> FitResult:
    """``fit`` on ``tiny`` and the 24 seeded images (4 steps of 6 an epoch): a whole run in a
    fraction of a second, so the epochs' chaining, checkpoints and resume can be mutation-tested."""
    data, labels = epoch_data()
    images = data.permute(0, 2, 3, 1).numpy()
    settings = {"epochs": 3, "warmup": 1, "lr": 0.1, "batch_size": 6, "amp": "off", "device": "cpu",
                "progress_bar": False, "seed": 2, **config}
    torch.manual_seed(0)
    return fit(tiny(), images, labels.numpy(), images[:n_val], labels.numpy()[:n_val], augment,
               TrainConfig(**settings), tmp_path / "last.pt", {"model": "tiny"}, on_epoch_end, keep_at)


class _Interrupted(Exception):
    pass


def _interrupt_at_epoch_1(epoch: int, row: dict) -> None:
    if epoch == 1:
        raise _Interrupted


def interrupt_after_epoch_1(tmp_path, **config) -> None:
    """A ``fit_tiny`` run killed after its first epoch (and checkpoint)."""
    with pytest.raises(_Interrupted):
        fit_tiny(tmp_path, on_epoch_end=_interrupt_at_epoch_1, **config)


def test_a_run_chains_its_epochs_and_checkpoints_each_one(tmp_path, caplog):
    seen = []

    def at_epoch_end(epoch, row):
        saved = torch.load(tmp_path / "last.pt", weights_only=True)
        seen.append((epoch, row["epoch"], saved["state"]["epoch"], len(saved["state"]["history"]["epoch"])))

    with caplog.at_level("INFO", logger="simple_cnn.training.loop"):
        result = fit_tiny(tmp_path, on_epoch_end=at_epoch_end)
    assert seen == [(1, 1, 1, 1), (2, 2, 2, 2), (3, 3, 3, 3)]  # written before the callback
    history = result.history
    assert history["epoch"] == [1, 2, 3] and len(history["lr_per_step"]) == 12
    assert (history["steps_per_epoch"], history["total_steps"], history["warmup_steps"]) == (4, 12, 4)
    assert (history["world_size"], history["global_batch_size"]) == (1, 6)
    assert history["train_seconds"] == pytest.approx(sum(history["seconds"]))
    best = history["val_accuracy"].index(max(history["val_accuracy"])) + 1
    assert history["best_epoch"] == best and history["best_val_accuracy"] == max(history["val_accuracy"])
    assert (result.device, result.amp) == ("cpu", "off")
    saved = torch.load(tmp_path / "last.pt", weights_only=True)
    assert saved["state"]["finished"] and saved["world_size"] == 1
    assert saved["model_config"] == {"model": "tiny"} and saved["signature"]["batch_size"] == 6
    assert saved["optimizer"]["state"] and saved["scheduler"]["last_epoch"] == 12
    assert "Training on cpu (AMP off): 24 images, 4 steps/epoch, 3 epochs (12 steps), augmentation none." in caplog.text
    assert not (tmp_path / "last.pt.owner").exists()  # the lock is released


def test_a_resumed_run_trains_only_the_remaining_epochs_from_the_saved_state(tmp_path, caplog):
    whole = fit_tiny(tmp_path / "whole")

    interrupt_after_epoch_1(tmp_path / "resumed")
    trained = []
    with caplog.at_level("INFO", logger="simple_cnn.training.loop"):
        resumed = fit_tiny(tmp_path / "resumed", on_epoch_end=lambda e, row: trained.append(e), resume=True)
    assert trained == [2, 3]  # not a run from scratch that happens to end the same
    assert f"Resumed from {tmp_path / 'resumed' / 'last.pt'} after epoch 1." in caplog.text
    assert "Resuming a run of" not in caplog.text  # the same number of processes
    ignore = ("seconds", "images_per_second", "train_seconds")
    assert {k: v for k, v in resumed.history.items() if k not in ignore} == \
        {k: v for k, v in whole.history.items() if k not in ignore}
    assert all(torch.equal(resumed.best_state[k], v) for k, v in whole.best_state.items())


def test_a_resume_restores_the_optimiser_schedule_and_scaler_not_just_the_weights(tmp_path):
    interrupt_after_epoch_1(tmp_path)
    saved = torch.load(tmp_path / "last.pt", weights_only=True)
    saved["scaler"] = {"scale": 512.0, "growth_factor": 2.0, "backoff_factor": 0.5,
                       "growth_interval": 100, "_growth_tracker": 3}  # as an fp16 run writes it
    config = TrainConfig(epochs=3, warmup=1, lr=0.1, scheduler="linear", batch_size=6, seed=2)
    run = _build(tiny(), AUGMENT, config, torch.device("cpu"), torch.float16, steps_per_epoch=4,
                 checkpoint_path=tmp_path / "fresh.pt")
    _restore(run, saved)
    assert run.state.epoch == 1 and run.state.history["epoch"] == [1]
    assert run.scheduler.last_epoch == 4 and run.optimizer.param_groups[0]["lr"] == saved["optimizer"]["param_groups"][0]["lr"]
    momentum = [s["momentum_buffer"] for s in run.optimizer.state_dict()["state"].values()]
    assert momentum and all(torch.equal(a, b["momentum_buffer"]) for a, b in zip(momentum, saved["optimizer"]["state"].values()))
    assert run.scaler.state_dict() == saved["scaler"]
    assert all(torch.equal(v, saved["model"][k]) for k, v in run.model.state_dict().items())


def test_early_stopping_ends_the_run_and_says_why(tmp_path, caplog):
    with caplog.at_level("INFO", logger="simple_cnn.training.loop"):
        result = fit_tiny(tmp_path, epochs=8, lr=1e-30, early_stopping_patience=2, scheduler="constant")
    # the weights barely move, so val accuracy cannot improve after epoch 1
    assert result.history["epoch"] == [1, 2, 3] and result.history["best_epoch"] == 1
    assert "Early stopping after epoch 3: val accuracy has not improved for 2 epochs (best" in caplog.text
    assert torch.load(tmp_path / "last.pt", weights_only=True)["state"]["finished"]


def test_without_a_validation_split_the_last_epoch_is_kept_and_no_accuracy_is_claimed(tmp_path):
    result = fit_tiny(tmp_path, n_val=0)
    assert result.history["best_val_accuracy"] is None and result.history["best_epoch"] == 3
    assert all(math.isnan(a) for a in result.history["val_accuracy"])


def test_a_run_holds_its_checkpoint_and_a_second_one_is_refused(tmp_path):
    with checkpoint_lock(tmp_path / "last.pt"):
        with pytest.raises(ConcurrentRunError, match="Another training run is writing the checkpoint"):
            fit_tiny(tmp_path)


def test_a_run_in_bf16_says_so_and_a_tiny_batch_with_batchnorm_is_warned_about(tmp_path, caplog):
    with caplog.at_level("INFO", logger="simple_cnn.training.loop"):
        result = fit_tiny(tmp_path, amp="bf16", batch_size=2, epochs=2)
    assert result.amp == "bf16" and "Training on cpu (AMP bf16): 24 images, 12 steps/epoch" in caplog.text
    # and the steps really ran under bf16 autocast: full precision gives other losses
    full = fit_tiny(tmp_path / "fp32", batch_size=2, epochs=2)
    assert result.history["train_loss"] != full.history["train_loss"]
    assert "batch_size=2 with BatchNorm: batch statistics over 2 image(s) are meaningless" in caplog.text


def test_a_resume_with_another_augmentation_is_refused(tmp_path):
    interrupt_after_epoch_1(tmp_path)
    with pytest.raises(ConfigError, match="augmentation: checkpoint 'none', now 'standard'"):
        fit_tiny(tmp_path, resume=True, augment=BatchAugment("standard", [0.5] * 3, [0.25] * 3, 3))


def test_one_validation_image_is_a_validation_split(tmp_path):
    result = fit_tiny(tmp_path, n_val=1)
    assert result.history["best_val_accuracy"] in (0.0, 1.0)


def test_a_restored_run_says_where_it_resumed_and_what_another_world_size_changes(tmp_path, caplog):
    interrupt_after_epoch_1(tmp_path)
    saved = torch.load(tmp_path / "last.pt", weights_only=True)
    restored = {}
    for written_by in (1, None, 2):  # None: a checkpoint from before world_size was recorded
        checkpoint = {k: v for k, v in saved.items() if k != "world_size"}
        if written_by is not None:
            checkpoint["world_size"] = written_by
        caplog.clear()
        with caplog.at_level("INFO", logger="simple_cnn.training.loop"):
            _restore(run_of(tmp_path / str(written_by), batch_size=6, warmup=1, scheduler="linear"),
                     checkpoint)
        restored[written_by] = caplog.messages
    resumed = f"Resumed from {tmp_path / '1' / 'last.pt'} after epoch 1."
    assert restored[1] == [resumed]
    assert restored[None] == [resumed.replace("/1/", "/None/")]
    assert restored[2][1] == (
        "Resuming a run of 2 process(es) on 1: the data order, weights, optimiser and schedule "
        "continue exactly, but each process now takes 6 images per step (was 3), so augmentation "
        "draws and per-process BatchNorm statistics differ from an uninterrupted run.")


def test_the_start_message_names_the_processes_and_their_share_of_the_batch(tmp_path, caplog):
    run = run_of(tmp_path, batch_size=6)
    run.world = World(rank=0, size=2)
    with caplog.at_level("INFO", logger="simple_cnn.training.loop"):
        _log_start(run, torch.device("cpu"), torch.bfloat16, 24)
    assert caplog.messages == ["Training on cpu (AMP bf16): 24 images, 4 steps/epoch, 3 epochs (12 steps), "
                               "augmentation none, 2 processes of 3 images per step."]


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_weights_kept_along_the_budget_leave_the_run_unchanged(tmp_path):
    """Steps 2 (mid-epoch), 4 (the first epoch's end), 7 and 12 (the end) of 12."""
    whole = fit_tiny(tmp_path / "whole")
    after_epoch_1 = {}

    def at_epoch_end(epoch, row):
        if epoch == 1:
            after_epoch_1.update(torch.load(tmp_path / "kept" / "last.pt", weights_only=True)["model"])

    kept = fit_tiny(tmp_path / "kept", on_epoch_end=at_epoch_end, keep_at=(2, 4, 7, 12))
    ignore = ("seconds", "images_per_second", "train_seconds")
    assert {k: v for k, v in kept.history.items() if k not in ignore} == \
        {k: v for k, v in whole.history.items() if k not in ignore}
    assert same_weights(kept.best_state, whole.best_state) and sorted(kept.kept) == [2, 4, 7, 12]
    assert same_weights(kept.kept[12], kept.best_state)
    assert same_weights(kept.kept[4], after_epoch_1)  # the best (and only) epoch so far
    assert not whole.kept


def test_a_kept_step_inside_an_epoch_holds_the_weights_of_that_step(tmp_path):
    constant = {"scheduler": "constant", "warmup": 0}
    two_steps = fit_tiny(tmp_path / "two", max_steps=2, **constant)
    kept = fit_tiny(tmp_path / "kept", keep_at=(2,), **constant)
    assert same_weights(kept.kept[2], two_steps.best_state)


def test_a_run_that_stops_early_keeps_its_best_for_the_steps_it_did_not_reach(tmp_path):
    result = fit_tiny(tmp_path, epochs=40, early_stopping_patience=1, keep_at=(4, 160))
    assert result.history["stopped_early"] and len(result.history["epoch"]) < 40
    assert same_weights(result.kept[160], result.best_state)
    assert not fit_tiny(tmp_path / "whole").history["stopped_early"]


def test_an_epoch_is_cut_into_intervals_at_the_kept_steps():
    from simple_cnn.training.steps import _intervals

    assert _intervals(10, 4, []) == [(0, 4), (4, 8), (8, 10)]
    assert _intervals(10, 4, [2, 4, 10, 13, -1]) == [(0, 2), (2, 4), (4, 8), (8, 10)]
    assert _intervals(3, 50, [1]) == [(0, 1), (1, 3)]


def test_the_first_non_finite_place_is_named_parameters_then_activations_then_gradients(monkeypatch):
    model = tiny()
    x, y = AUGMENT.prepare(images()), torch.tensor([0, 1, 2, 0, 1, 2])
    loss_fn, autocast = nn.CrossEntropyLoss(), contextlib.nullcontext
    assert first_non_finite_layer(model, x, y, loss_fn, autocast) == (
        "no layer on a re-run of the batch (the failure did not repeat)")
    bad = x.clone()
    bad[:, :, 2, 2] = math.nan
    assert first_non_finite_layer(model, bad, y, loss_fn, autocast) == "activations of 0 (Conv2d)"
    with torch.no_grad():
        model[5].weight[0, 0] = math.inf
    assert first_non_finite_layer(model, x, y, loss_fn, autocast) == (
        "parameters of 5 (5.weight) are already non-finite")
    monkeypatch.setattr(_InfGradient, "calls", 0)
    monkeypatch.setattr(_InfGradient, "on", (1,))
    backwards = nn.Sequential(tiny(), nn.Identity())
    backwards[1].forward = _InfGradient.apply  # finite forward, inf gradient backward
    assert first_non_finite_layer(backwards, x, y, loss_fn, autocast) == "gradients of 1 (Identity)"


@pytest.mark.parametrize("momentum", [0.9, 0.0])
def test_fused_sgd_survives_a_skipped_first_step_and_otherwise_steps_as_plain_sgd(momentum):
    """GradScaler skips a step whose gradients overflow (fp16's first steps often do). Fused SGD
    made its momentum buffers with empty_like at its first step and never filled them when
    that step was skipped; the optimiser the loop builds keeps them finite, and without a skip
    it takes the very steps plain SGD takes."""
    config = TrainConfig(lr=0.1, momentum=momentum, nesterov=momentum > 0, weight_decay=0.0)

    def run(fused: bool, skip_first: bool) -> torch.Tensor:
        torch.manual_seed(0)
        model = nn.Linear(50, 3)
        junk = [torch.full((50, 3), float("nan")) for _ in range(20)]  # memory empty_like may reuse
        del junk
        optimiser = make_optimizer(model, config, fused=fused)
        scaler = torch.amp.GradScaler("cpu")
        for step in range(3):
            optimiser.zero_grad()
            scaler.scale(model(torch.ones(4, 50)).sum()).backward()
            if step == 0 and skip_first:
                model.weight.grad.mul_(float("inf"))
            scaler.step(optimiser)
            scaler.update()
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    skipped = run(fused=True, skip_first=True)
    assert torch.isfinite(skipped).all()
    assert torch.allclose(skipped, run(fused=False, skip_first=True), atol=1e-6)
    assert torch.allclose(run(fused=True, skip_first=False), run(fused=False, skip_first=False), atol=1e-6)
