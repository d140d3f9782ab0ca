import numpy as np
import pytest
from matplotlib.figure import Figure

from simple_cnn.parameters import CnnParams, IngestionParams
from simple_cnn.pipelines.cnn import create_pipeline
from simple_cnn.pipelines.ingestion.nodes import (
    load_raw_images,
    split_train_val,
    summarise_splits,
)
from tests.conftest import run_sliced, typed_params

INGEST = typed_params(IngestionParams, val_size=300, seed=0, synthetic={"n_train": 1500, "n_test": 400})


@pytest.fixture(scope="module")
def splits():
    raw = load_raw_images(None, None, INGEST)
    train, val, test, names = split_train_val(raw, INGEST)
    return {"train_split": train, "val_split": val, "test_split": test, "class_names": names,
            "dataset_summary": summarise_splits(train, val, test, names)}


def cnn_params(tmp_path, **training) -> CnnParams:
    return typed_params(CnnParams, training=training)


def test_cnn_pipeline_learns_and_writes_every_output(splits, tmp_path):
    pipeline = create_pipeline()
    catalog = run_sliced(pipeline, {**splits, "params:cnn": cnn_params(tmp_path),
                                    "cnn_checkpoint": tmp_path / "last.pt"})
    metrics = catalog.load("cnn_test_metrics")
    assert metrics["accuracy"] > 0.6  # ten classes: chance is 0.1
    predictions = catalog.load("cnn_test_predictions")
    assert metrics["accuracy"] == (predictions["predictions"] == splits["test_split"]["labels"]).mean()
    history = catalog.load("cnn_training_history")
    assert metrics["train_seconds"] == pytest.approx(sum(history["seconds"]))
    assert metrics["epochs"] == 3 and metrics["device"] == "cpu" and metrics["amp"] == history["amp"]
    assert metrics["best_epoch"] == history["best_epoch"] and 0 < metrics["macro_f1"] <= 1
    assert metrics["skipped_steps"] == 0  # GradScaler skips steps only under fp16 (CUDA)
    assert len(history["lr_per_step"]) == 3 * (1200 // 64)
    assert history["lr_per_step"][0] < history["lr_per_step"][20]  # warmup visible
    stats = catalog.load("cnn_activation_stats")
    assert 0 < stats["features.0.act"]["fraction_zero"] < 1
    assert "Total params" in catalog.load("cnn_model_summary")
    predictions = catalog.load("cnn_test_predictions")
    assert predictions["probabilities"].shape == (400, 10)
    np.testing.assert_allclose(predictions["probabilities"].sum(1), 1, rtol=1e-5)
    for name in pipeline.outputs():
        if name.endswith("_plot"):
            assert isinstance(catalog.load(name), Figure)


def test_whole_default_pipeline_runs_offline_in_the_smoke_env(smoke_project):
    reporting = smoke_project / "data" / "08_reporting"
    for name in ("cnn_test_metrics.json", "cnn_confusion_matrix.png", "cnn_lr_schedule.png",
                 "cnn_training_curves.png", "cnn_feature_maps.png", "cnn_misclassified.png",
                 "activation_functions.png", "augmentation_preview.png", "cnn_activation_stats.json",
                 "cnn_model_summary.txt", "sample_images.png", "svm_test_metrics.json",
                 "svm_confusion_matrix.png", "svm_per_class.png", "model_comparison.png",
                 "confusion_matrices.png", "comparison_report.html", "run_profile.json"):
        versions = list((reporting / name).iterdir())
        assert len(versions) == 1 and (versions[0] / name).stat().st_size > 0
    assert len(list((smoke_project / "data/06_models/cnn_model.pt").iterdir())) == 1
    assert (smoke_project / "data/06_models/checkpoints/last.pt").exists()
