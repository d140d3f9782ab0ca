import numpy as np
import pytest
from matplotlib.figure import Figure

from simple_cnn.classifiers import fit_with_selection
from simple_cnn.errors import ConfigError, DataError
from simple_cnn.features.extract import color_histograms, extract_features
from simple_cnn.parameters import HogSvmParams, IngestionParams
from simple_cnn.pipelines.hog_svm import create_pipeline
from simple_cnn.pipelines.hog_svm.nodes import extract_svm_features
from simple_cnn.pipelines.ingestion.nodes import load_raw_images, split_train_val
from tests.conftest import run_sliced, typed_params

SMOKE = typed_params(HogSvmParams)
INGEST = typed_params(IngestionParams, val_size=300, seed=0, synthetic={"n_train": 1500, "n_test": 500})


def smoke(**changes) -> HogSvmParams:
    return typed_params(HogSvmParams, **changes)


@pytest.fixture(scope="module")
def splits():
    train, val, test, names = split_train_val(load_raw_images(None, None, INGEST), INGEST)
    return {"train_split": train, "val_split": val, "test_split": test, "class_names": names}


def test_pipeline_learns_the_synthetic_task_and_writes_every_output(splits):
    pipeline = create_pipeline()
    catalog = run_sliced(pipeline, {**splits, "params:hog_svm": SMOKE})
    metrics = catalog.load("svm_test_metrics")
    assert metrics["accuracy"] > 0.6  # chance is 0.1
    predictions = catalog.load("svm_test_predictions")["predictions"]
    assert metrics["accuracy"] == (predictions == splits["test_split"]["labels"]).mean()
    assert metrics["n_features"] == catalog.load("svm_train_features")["features"].shape[1]
    assert metrics["total_seconds"] == pytest.approx(
        metrics["feature_seconds"] + metrics["fit_seconds"] + metrics["predict_seconds"])
    assert 0 < metrics["macro_f1"] <= 1 and metrics["fit_seconds"] > 0
    report = catalog.load("svm_training_report")
    assert [c["alpha"] for c in report["candidates"]] == [0.1, 1.0]  # selection on val
    assert report["val_accuracy"] == max(c["val_accuracy"] for c in report["candidates"])
    scaler = catalog.load("feature_scaler")
    train = catalog.load("svm_train_features")["features"]
    np.testing.assert_allclose(scaler.mean_, train.mean(axis=0), rtol=1e-5, atol=1e-6)
    assert isinstance(catalog.load("svm_confusion_matrix_plot"), Figure)
    assert isinstance(catalog.load("svm_per_class_plot"), Figure)


@pytest.mark.parametrize("classifier", ["linear_svc", "sgd", "rbf_svc"])
def test_every_classifier_learns(splits, classifier):
    params = smoke(classifier=classifier)
    catalog = run_sliced(create_pipeline(), {**splits, "params:hog_svm": params})
    assert catalog.load("svm_test_metrics")["accuracy"] > 0.5


def test_flips_double_the_training_features(splits):
    train, val, test, report = extract_svm_features(splits["train_split"], splits["val_split"],
                                            splits["test_split"], smoke(train_on_flips=True))
    assert len(train["features"]) == 2 * len(splits["train_split"]["labels"])
    assert len(val["features"]) == 300
    assert report["n_images"] == 2 * 1200 + 300 + 500


def test_default_features_are_multiscale_colour_hog_and_histograms():
    config = typed_params(HogSvmParams, env=None).feature_config((32, 32))
    images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    assert extract_features(images, config).shape == (2, 7 * 7 * 36 + 3 * 3 * 36 + 3 * 8)


def test_pixels_features_are_the_raw_values():
    config = smoke(features="pixels").feature_config((32, 32))
    images = np.full((2, 32, 32, 3), 255, dtype=np.uint8)
    features = extract_features(images, config)
    assert features.shape == (2, 3072) and features.max() == 1.0


def test_color_histograms_count_fractions_per_channel():
    images = np.zeros((1, 2, 2, 3), dtype=np.uint8)
    images[0, 0, 0] = (255, 128, 31)
    hist = color_histograms(images, bins=8)[0].reshape(3, 8)
    np.testing.assert_allclose(hist.sum(axis=1), 1.0)
    assert hist[0, 7] == 0.25 and hist[1, 4] == 0.25 and hist[2, 0] == 1.0


@pytest.mark.parametrize("change, message", [
    ({"features": "sift"}, "hog_svm.features='sift' .* hog, pixels, hog\\+color"),
    ({"classifier": "knn"}, "hog_svm.classifier='knn' .* linear_svc, rbf_svc, kernel_approx, sgd"),
    ({"hog": {"block_norm": "max"}}, "hog_svm.hog.block_norm='max' .* L1, L1-sqrt, L2, L2-Hys"),
    ({"hog": {"orientations": 0}}, "hog_svm.hog.orientations=0: must be greater than or equal to 1"),
    ({"linear_svc": {"C": [1.0, -2.0]}}, "hog_svm.linear_svc.C.1=-2.0: must be greater than 0"),
    ({"rbf_svc": {"gamma": 0}}, "hog_svm.rbf_svc.gamma=0"),
    ({"kernel_approx": {"gamma": -1}}, "hog_svm.kernel_approx.gamma=-1: must be greater than 0"),
    ({"sgd": {"alpha": []}}, "hog_svm.sgd.alpha=\\[\\]: .*at least 1 item"),
    ({"seed": -3}, "hog_svm.seed=-3: must be greater than or equal to 0"),
    ({"kernel_aprox": {}}, "hog_svm.kernel_aprox is not a known key"),
])
def test_bad_params_are_refused_by_the_typed_model(change, message):
    with pytest.raises(ConfigError, match=message):
        smoke(**change)


@pytest.mark.parametrize("hog, message", [
    ({"pixels_per_cell": [64, 64]}, "hog_svm.hog.pixels_per_cell=\\[64, 64\\] is larger than the 32x32"),
    ({"cells_per_block": [5, 5]}, "hog_svm.hog.cells_per_block=\\[5, 5\\] is larger than the grid of 4x4"),
])
def test_hog_cells_that_do_not_fit_fail_before_any_feature_is_computed(splits, hog, message,
                                                                       monkeypatch):
    monkeypatch.setattr("simple_cnn.pipelines.hog_svm.nodes.extract_features",
                        lambda *a: pytest.fail("features computed before the check"))
    with pytest.raises(ConfigError, match=message):
        extract_svm_features(splits["train_split"], splits["val_split"], splits["test_split"],
                             smoke(hog=hog))


def test_rbf_svc_refuses_too_many_samples_and_explains_why():
    params = smoke(classifier="rbf_svc", rbf_svc={"max_train_samples": 50})
    x, y = np.zeros((60, 3), np.float32), np.arange(60) % 2
    with pytest.raises(ConfigError, match="quadratically.*max_train_samples=50. Use classifier: kernel_approx"):
        fit_with_selection(params.classifier, params.classifier_params, x, y, x, y)


def test_features_with_nan_are_refused():
    images = np.zeros((1, 32, 32, 3), dtype=np.float64)
    images[0, 3, 3, 0] = np.nan
    config = smoke(features="hog").feature_config((32, 32))
    with pytest.raises(DataError, match="NaN"):
        extract_features(images, config)


def test_lean_ridge_classifier_matches_sklearns():
    from sklearn.linear_model import RidgeClassifier

    from simple_cnn.classifiers import LeanRidgeClassifier

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 20)).astype(np.float32)
    y = rng.integers(0, 4, 300)
    ours = LeanRidgeClassifier(alpha=2.0).fit(x, y)
    theirs = RidgeClassifier(alpha=2.0).fit(x, y)
    np.testing.assert_array_equal(ours.predict(x), theirs.predict(x))
    np.testing.assert_allclose(ours.coef_, theirs.coef_, rtol=1e-4, atol=1e-5)
