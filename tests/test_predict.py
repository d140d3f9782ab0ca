"""Use the trained model: a saved cnn_model describes itself, the core module predicts from
arrays and image files, and the predict pipeline classifies a folder of your own images."""

from __future__ import annotations

import csv
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from PIL import Image

from simple_cnn.data.decode import fit_to_square
from simple_cnn.errors import ConfigError, DataError
from simple_cnn.inference import inference, load


def newest_file(project: Path, relative: str) -> Path:
    folder = project / relative
    return folder / sorted(p.name for p in folder.iterdir())[-1] / folder.name


def test_the_resize_rule_keeps_the_centre_and_never_squashes():
    bands = np.zeros((32, 96, 3), np.uint8)
    bands[:, :32, 0], bands[:, 32:64, 1], bands[:, 64:, 2] = 255, 255, 255  # red | green | blue
    square = np.asarray(fit_to_square(Image.fromarray(bands), 16))
    assert square.shape == (16, 16, 3)
    assert (square[..., 1] > 200).all() and square[..., 0].max() < 60 and square[..., 2].max() < 60
    tall = np.asarray(fit_to_square(Image.fromarray(bands.transpose(1, 0, 2).copy()), 8))
    assert tall.shape == (8, 8, 3) and (tall[..., 1] > 200).all()


def test_the_core_module_predicts_what_evaluate_cnn_did(smoke_project):
    """The smoke env trains in bf16 on every CPU (emulated where it has no native bf16); the
    model records that it is evaluated in full precision with mirror averaging (as
    cnn.evaluation says), and load() predicts exactly that by default."""
    model_file = newest_file(smoke_project, "data/06_models/cnn_model.pt")
    test = np.load(newest_file(smoke_project, "data/03_primary/test_split.npz"))
    saved = np.load(newest_file(smoke_project, "data/07_model_output/cnn_test_predictions.npz"))
    metrics = json.loads(newest_file(smoke_project, "data/08_reporting/cnn_test_metrics.json").read_text())
    assert metrics["amp"] == "bf16" and metrics["evaluation_amp"] == "off" and metrics["flip_tta"]
    recorded = torch.load(model_file, weights_only=True)["evaluated_with"]
    assert recorded == {"amp": "off", "flip_tta": True}
    run = load(model_file, "cpu")
    probabilities = run.probabilities(test["images"])  # nothing said: as it was evaluated
    assert np.array_equal(probabilities.argmax(1), saved["predictions"])
    np.testing.assert_allclose(probabilities, saved["probabilities"], atol=1e-5)
    plain = run.probabilities(test["images"], flip_tta=False)
    assert np.abs(plain - probabilities).max() > 1e-3  # the record, not a coincidence
    top = run.predict(test["images"][:5], k=3)
    assert all(len(t) == 3 and t[0][1] >= t[1][1] >= t[2][1] for t in top)
    assert {c for t in top for c, _ in t} <= set(run.class_names)
    with pytest.raises(ValueError, match=r"expected uint8 RGB images of shape \(N, 32, 32, 3\)"):
        run.probabilities(np.zeros((2, 40, 40, 3), np.uint8))


def test_a_saved_model_is_evaluated_with_its_own_shape_whatever_cnn_model_says(smoke_copy):
    first = sorted(p.name for p in (smoke_copy / "data/06_models/cnn_model.pt").iterdir())[0]
    accuracy = json.loads(newest_file(smoke_copy, "data/08_reporting/cnn_test_metrics.json").read_text())["accuracy"]
    bootstrap_project(smoke_copy)
    with KedroSession.create(project_path=smoke_copy, env="smoke", runtime_params={
            "cnn": {"model": {"base_width": 32}}}) as session:
        session.run(pipeline_name="cnn", node_names=["evaluate_cnn"], load_versions={"cnn_model": first})
    again = json.loads(newest_file(smoke_copy, "data/08_reporting/cnn_test_metrics.json").read_text())
    assert again["accuracy"] == accuracy
    model = torch.load(newest_file(smoke_copy, "data/06_models/cnn_model.pt"), weights_only=True)
    assert model["model_config"]["base_width"] != 32 and model["class_names"]
    assert set(model["input"]) == {"image_size", "channels"} and len(model["normalisation"]["mean"]) == 3
    older = {k: v for k, v in model.items() if k in ("state_dict", "training")}
    with pytest.raises(ConfigError, match=r"saved by an older Simple CNN.*re-run train_cnn"):
        inference(older)


def _images(root: Path) -> None:
    """Synthetic images of several formats, modes and sizes, nested; a broken and a text file."""
    rng = np.random.default_rng(0)
    (root / "holiday" / "day 2").mkdir(parents=True)
    Image.fromarray(rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)).save(root / "a.png")
    Image.fromarray(rng.integers(0, 256, (120, 90, 3), dtype=np.uint8)).save(root / "holiday/b.jpg")
    Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(root / "holiday/c.bmp")
    Image.fromarray(rng.integers(0, 256, (50, 70, 4), dtype=np.uint8)).save(root / "holiday/day 2/d.png")
    (root / "holiday/broken.png").write_bytes(b"\x89PNG not really")
    (root / "notes.txt").write_text("not an image")


def test_the_predict_pipeline_classifies_every_image_and_lists_the_rest(smoke_copy):
    folder = smoke_copy / "data/01_raw/predict"
    _images(folder)
    bootstrap_project(smoke_copy)
    with KedroSession.create(project_path=smoke_copy, env="smoke") as session:
        session.run(pipeline_name="predict")
    with newest_file(smoke_copy, "data/07_model_output/predictions.csv").open() as handle:
        table = list(csv.DictReader(handle))
    assert [row["file"] for row in table] == ["a.png", "holiday/b.jpg", "holiday/c.bmp", "holiday/day 2/d.png"]
    version = sorted(p.name for p in (smoke_copy / "data/06_models/cnn_model.pt").iterdir())[-1]
    assert {row["model_version"] for row in table} == {version}
    assert set(table[0]) >= {"predicted_class", "probability", "top1_class", "top2_class",
                             "top3_class", "top3_probability"}
    assert all(row["predicted_class"] == row["top1_class"] for row in table)
    unread = json.loads(newest_file(smoke_copy, "data/07_model_output/unread_images.json").read_text())
    assert unread == [{"file": "holiday/broken.png", "why": "cannot be read as an image"},
                      {"file": "notes.txt", "why": "not one of the image formats read (PNG, JPEG, BMP, GIF, TIFF, WEBP, PPM)"}]
    assert newest_file(smoke_copy, "data/08_reporting/predictions.png").stat().st_size > 0
    run = load(newest_file(smoke_copy, "data/06_models/cnn_model.pt"), "cpu")
    direct, _ = run.predict_files(folder)  # the Python use gives the pipeline's answers
    assert [direct[row["file"]][0][0] for row in table] == [row["predicted_class"] for row in table]
    assert [round(direct[row["file"]][0][1], 6) for row in table] == [float(row["probability"]) for row in table]

    archive = smoke_copy / "mine.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="mine")
    with KedroSession.create(project_path=smoke_copy, env="smoke",
                             runtime_params={"predict": {"source": str(archive)}}) as session:
        session.run(pipeline_name="predict")
    with newest_file(smoke_copy, "data/07_model_output/predictions.csv").open() as handle:
        assert [row["file"] for row in csv.DictReader(handle)] == [f"mine/{row['file']}" for row in table]


@pytest.mark.parametrize("make, message", [
    (lambda root: root.mkdir(parents=True), r"holds no images to classify\. Put the images"),
    (lambda root: None, r"does not exist\. Put the images to classify in"),
    (lambda root: (root.mkdir(parents=True), (root / "x.txt").write_text("x")),
     r"holds no images to classify \(1 file\(s\), none an image"),
])
def test_an_empty_or_missing_folder_says_where_to_put_images(smoke_copy, make, message):
    make(smoke_copy / "data/01_raw/predict")
    bootstrap_project(smoke_copy)
    with pytest.raises(DataError, match=message):
        with KedroSession.create(project_path=smoke_copy, env="smoke") as session:
            session.run(pipeline_name="predict")
