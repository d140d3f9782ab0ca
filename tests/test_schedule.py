import math

import pytest
import torch

from simple_cnn.errors import ConfigError
from simple_cnn.parameters import CnnParams
from simple_cnn.training.config import TrainConfig
from simple_cnn.training.schedule import build_scheduler


def lrs(config, steps_per_epoch):
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=config.lr)
    scheduler = build_scheduler(optimizer, config, steps_per_epoch)
    values = []
    for _ in range(config.epochs * steps_per_epoch):
        values.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return values


def test_linear_warmup_then_cosine_decay_values():
    config = TrainConfig(**{"lr": 0.4, "epochs": 3, "warmup": 10, "warmup_unit": "steps",
                                      "warmup_start_factor": 0.1, "scheduler": "cosine"})
    values = lrs(config, steps_per_epoch=20)
    expected_warmup = [0.4 * (0.1 + 0.9 * step / 10) for step in range(10)]
    assert values[:10] == pytest.approx(expected_warmup)
    assert values[10] == pytest.approx(0.4)  # peak right after the warmup
    decay = 50
    assert values[10 + 25] == pytest.approx(0.4 * (1 + math.cos(math.pi * 25 / decay)) / 2)
    assert values[-1] < 0.001
    assert all(a >= b for a, b in zip(values[10:], values[11:]))  # monotone decay


def test_warmup_in_epochs_and_linear_decay():
    config = TrainConfig(**{"lr": 1.0, "epochs": 4, "warmup": 1, "warmup_unit": "epochs",
                                      "scheduler": "linear", "warmup_start_factor": 0.5})
    values = lrs(config, steps_per_epoch=5)
    assert values[:5] == pytest.approx([0.5, 0.6, 0.7, 0.8, 0.9])
    assert values[5] == pytest.approx(1.0)
    assert values[5:] == pytest.approx([1.0 - k / 15 for k in range(15)])


def test_step_decay_after_warmup():
    config = TrainConfig(**{"lr": 1.0, "epochs": 4, "warmup": 2, "warmup_unit": "steps",
                                      "scheduler": "step", "step_size_epochs": 1, "step_gamma": 0.5})
    values = lrs(config, steps_per_epoch=4)
    assert values[2:6] == pytest.approx([1.0] * 4)
    assert values[6] == pytest.approx(0.5)


def test_warmup_longer_than_training_is_refused():
    with pytest.raises(ConfigError, match=r"cnn.training.warmup=3.0 epochs of warmup is not shorter than training \(2 epochs\)"):
        CnnParams.model_validate({"training": {"epochs": 2, "warmup": 3, "warmup_unit": "epochs"}})
    config = TrainConfig(epochs=2, warmup=30, warmup_unit="steps")  # steps: known with the data
    with pytest.raises(ConfigError, match="warmup=30.0 steps .* is not shorter than training"):
        lrs(config, steps_per_epoch=10)


@pytest.mark.parametrize("params, message", [
    ({"lr": 0}, r"cnn.training.lr=0: must be greater than 0"),
    ({"lr": -0.1}, "cnn.training.lr=-0.1: must be greater than 0"),
    ({"batch_size": 0}, "cnn.training.batch_size=0: must be greater than or equal to 1"),
    ({"epochs": 0}, "cnn.training.epochs=0: must be greater than or equal to 1"),
    ({"epochs": 2.5}, "cnn.training.epochs=2.5: must be a valid integer"),
    ({"epochs": True}, "cnn.training.epochs=True: must be a valid integer"),
    ({"seed": -1}, "cnn.training.seed=-1: must be greater than or equal to 0"),
    ({"seed": 2**32}, "cnn.training.seed=4294967296: must be less than or equal to 4294967295"),
    ({"momentum": 0}, "cnn.training.nesterov=True needs momentum > 0"),
    ({"lr_max": 1}, "cnn.training.lr_max is not a known key"),
    ({"optimizer": "adam"}, "optimizer='adam' .* sgd, adamw"),
    ({"scheduler": "onecycle"}, "scheduler='onecycle' .* cosine, linear, step, constant"),
    ({"amp": "fp8"}, "amp='fp8' .* auto, fp16, bf16, off"),
])
def test_bad_training_params_are_named(params, message):
    with pytest.raises(ConfigError, match=message):
        CnnParams.model_validate({"training": params})


@pytest.mark.parametrize("typed", [False, "off", "OFF"[0:0] or "off"])
def test_amp_off_as_yaml_reads_it(typed):
    """YAML 1.1 reads `amp: off` as False; the choice takes it back as the word."""
    assert CnnParams.model_validate({"training": {"amp": typed}}).training.amp == "off"


def test_device_settings_validate_anywhere_and_are_checked_where_the_run_trains():
    """A CPU login node may send fp16 or nccl runs to GPU workers: validation accepts them, and
    the check runs where the training does (here, without CUDA, it refuses)."""
    import torch

    from simple_cnn.device_checks import check_devices

    for training in ({"amp": "fp16"}, {"distributed": {"backend": "nccl"}}):
        params = CnnParams.model_validate({"training": training})  # no refusal at validation
        if torch.cuda.is_available():
            params.training.check_device()
            continue
        with pytest.raises(ConfigError, match=r"^cnn\.training\.(amp='fp16': fp16 needs a CUDA GPU|"
                                              r"distributed\.backend='nccl': nccl needs CUDA GPUs)"):
            check_devices({"cnn": params}, {"cnn"})
        check_devices({"cnn": params}, {"ingestion"})  # a run that does not train: no check
