"""The checkpoint's guarantees, function by function and without training (fast, so mutation
testing can afford them): what the run signature holds, the data fingerprint, the lock, the
atomic save and each refusal of ``load_checkpoint``."""

import os
import pickle

import numpy as np
import pytest
import torch

from simple_cnn.errors import ConcurrentRunError, ConfigError
from simple_cnn.training.checkpoint import (
    NOT_SHAPING,
    checkpoint_lock,
    fingerprint,
    load_checkpoint,
    run_signature,
    save_checkpoint,
)
from simple_cnn.training.config import TrainConfig

IMAGES = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
LABELS = np.array([3, 7])
MODEL = {"base_width": 8}


def signature(resolved: str = "bf16", **changes) -> dict:
    return run_signature(TrainConfig(epochs=4, warmup=1, **changes), "standard", IMAGES, LABELS, resolved)


def test_the_signature_holds_every_shaping_setting_and_nothing_else():
    base = signature()
    assert set(base) == set(TrainConfig.model_fields) - set(NOT_SHAPING) | {"augmentation", "train_data"}
    for how_it_runs in ({"resume": True}, {"progress_bar": False}, {"device": "cpu"}, {"compile": True},
                        {"log_every": 7}):
        assert signature(**how_it_runs) == base, how_it_runs
    for shaping in ({"lr": 0.1}, {"seed": 1}, {"batch_size": 32}, {"max_steps": 9}, {"order_seed": 5}):
        assert signature(**shaping) != base, shaping
    assert run_signature(TrainConfig(epochs=4, warmup=1), "heavy", IMAGES, LABELS, "off")["augmentation"] == "heavy"


def test_the_signature_holds_the_precision_the_setting_resolved_to():
    """``amp: auto`` is bf16 on one machine and off (or fp16) on another: the signature holds
    what it resolved to, so a checkpoint is resumed only at the precision it was trained at."""
    assert signature("bf16", amp="auto")["amp"] == "bf16" == signature("bf16", amp="bf16")["amp"]
    assert signature("off", amp="auto") != signature("fp16", amp="auto")
    assert signature("off", amp="auto") == signature("off", amp="off")


def test_a_cpu_run_resumed_where_auto_means_fp16_is_refused_by_name_not_a_crash(tmp_path, monkeypatch):
    """A CPU checkpoint (no loss scaling: an empty GradScaler state) resumed on a GPU, where auto
    resolves to fp16 with a GradScaler, used to fail inside GradScaler.load_state_dict({})."""
    import torch

    from simple_cnn.augment import BatchAugment
    from simple_cnn.training import loop
    from simple_cnn.training.loop import fit

    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (16, 8, 8, 3), dtype=np.uint8), np.arange(16) % 2
    config = TrainConfig(epochs=2, warmup=0, batch_size=8, device="cpu", amp="auto", progress_bar=False)
    augment = BatchAugment("none", [0.5] * 3, [0.25] * 3, 2)

    def model():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 2))

    monkeypatch.setattr(loop, "resolve_amp", lambda mode, device: None)  # a CPU without bf16
    with pytest.raises(KeyboardInterrupt):
        fit(model(), images, labels, images[:4], labels[:4], augment, config, tmp_path / "last.pt",
            on_epoch_end=lambda epoch, row: _stop(epoch))
    monkeypatch.setattr(loop, "resolve_amp", lambda mode, device: torch.float16)  # auto on a GPU
    resumed = config.model_copy(update={"resume": True})
    with pytest.raises(ConfigError, match=r"it was trained with other settings or data \(amp: "
                                          r"checkpoint 'off', now 'fp16'\)"):
        fit(model(), images, labels, images[:4], labels[:4], augment, resumed, tmp_path / "last.pt")


def _stop(epoch: int) -> None:
    if epoch == 1:
        raise KeyboardInterrupt  # as a killed run: the checkpoint of epoch 1 stays


def test_the_fingerprint_sees_every_pixel_label_and_the_shape_but_not_the_label_dtype():
    reference = fingerprint(IMAGES, LABELS)
    assert len(reference) == 24 and int(reference, 16) >= 0  # 12 bytes, hex
    pixel = IMAGES.copy()
    pixel[1, 3, 3, 2] ^= 1
    assert fingerprint(pixel, LABELS) != reference
    assert fingerprint(IMAGES, LABELS[::-1].copy()) != reference
    assert fingerprint(IMAGES.reshape(2, 4, 12, 1), LABELS) != reference  # same bytes, other shape
    assert fingerprint(IMAGES, LABELS.astype(np.int32)) == reference
    assert fingerprint(np.asfortranarray(IMAGES), LABELS) == reference  # the values, not the layout


def test_the_lock_names_its_holder_and_is_released_with_its_owner_file(tmp_path):
    path = tmp_path / "new" / "folder" / "last.pt"
    with checkpoint_lock(path):
        owner = path.with_name("last.pt.owner").read_text()
        assert owner.startswith(f"pid {os.getpid()}, started ") and "command: " in owner
        with pytest.raises(ConcurrentRunError, match=rf"writing the checkpoint {path} \(pid {os.getpid()}, "):
            with checkpoint_lock(path):
                pass
    assert not path.with_name("last.pt.owner").exists()
    with checkpoint_lock(path):  # released: a later run takes it
        pass


def test_a_held_lock_without_owner_file_says_another_process(tmp_path):
    path = tmp_path / "last.pt"
    with checkpoint_lock(path):
        path.with_name("last.pt.owner").unlink()
        with pytest.raises(ConcurrentRunError, match=r"\(another process\)"):
            with checkpoint_lock(path):
                pass


def test_save_is_atomic_and_makes_its_folder(tmp_path):
    path = tmp_path / "a" / "b" / "last.pt"
    save_checkpoint(path, {"x": torch.ones(2)})
    save_checkpoint(path, {"x": torch.zeros(2)})
    assert torch.equal(torch.load(path, weights_only=True)["x"], torch.zeros(2))
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pt"]


def test_a_crash_mid_save_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    """Atomic: the new checkpoint is written beside the old one, then moved over it."""
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"x": torch.ones(2)})

    def crash(payload, target):
        with open(target, "wb") as handle:
            handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"x": torch.zeros(2)})
    monkeypatch.undo()
    assert torch.equal(torch.load(path, weights_only=True)["x"], torch.ones(2))


def saved(tmp_path, **payload):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"model_config": MODEL, "signature": signature(),
                           "state": {"epoch": 2, "finished": False}, "model": {"w": torch.ones(3)},
                           **payload})
    return path


def refusal(path, model=MODEL, wanted=None) -> str:
    with pytest.raises(ConfigError) as error:
        load_checkpoint(path, model, wanted or signature())
    return str(error.value)


def test_a_checkpoint_of_this_run_loads_onto_the_cpu(tmp_path):
    checkpoint = load_checkpoint(saved(tmp_path), MODEL, signature())
    assert checkpoint["state"] == {"epoch": 2, "finished": False}
    assert checkpoint["model"]["w"].device.type == "cpu" and checkpoint["model"]["w"].sum() == 3


class Payload:
    """Not a tensor or a plain container: only an unsafe load would rebuild it."""


def test_pickled_objects_are_not_loaded(tmp_path):
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        load_checkpoint(saved(tmp_path, extra=Payload()), MODEL, signature())


def test_another_model_shape_is_refused_with_the_difference(tmp_path):
    assert refusal(saved(tmp_path), {"base_width": 16}) == (
        f"Cannot resume from {tmp_path / 'last.pt'}: it holds a model of another shape "
        "(base_width: checkpoint 8, now 16). Set cnn.model back, or train from scratch with "
        "resume: false.")


def test_a_checkpoint_without_a_model_or_a_setting_names_what_it_lacks(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"signature": signature(), "state": {"epoch": 1}})
    assert "(base_width: checkpoint None, now 8)" in refusal(path)
    old = {k: v for k, v in signature().items() if k != "fraction"}  # before `fraction` existed
    assert "(fraction: checkpoint None, now 1.0)" in refusal(saved(tmp_path, signature=old))


def test_other_settings_are_refused_listing_each_difference_in_order(tmp_path):
    assert refusal(saved(tmp_path), wanted=signature(lr=0.1, seed=3)) == (
        f"Cannot resume from {tmp_path / 'last.pt'}: it was trained with other settings or data "
        "(lr: checkpoint 0.2, now 0.1; seed: checkpoint 0, now 3). Set them back to resume it, or "
        "train anew with resume: false. Extending a finished run is not supported: its "
        "learning-rate schedule was laid out for its own length.")


def test_a_finished_run_is_complete_and_says_whether_it_stopped_early(tmp_path):
    assert refusal(saved(tmp_path, state={"epoch": 4, "finished": True})) == (
        f"The run in {tmp_path / 'last.pt'} is already complete (epoch 4 of 4); its best weights "
        "are the newest cnn_model version. To train again, set resume: false.")
    assert "already complete (epoch 2 of 4, stopped early); its best" in refusal(
        saved(tmp_path, state={"epoch": 2, "finished": True}))


def test_a_missing_checkpoint_names_the_path_and_the_fix(tmp_path):
    assert refusal(tmp_path / "none.pt") == (
        f"cnn.training.resume is true but there is no checkpoint at {tmp_path / 'none.pt'}. Train "
        "once with resume: false (a checkpoint is written every epoch), or point the catalog entry "
        "cnn_checkpoint at the file that holds one.")
