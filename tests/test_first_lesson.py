"""The first lesson, measured: transforms that are what they claim, consistency, the fitted
cost slopes, verdicts by the ablation study's rule, and the outputs in both reports."""

from __future__ import annotations

import json

import numpy as np
import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from simple_cnn.ablation.report import first_lesson_section
from simple_cnn.errors import ConfigError
from simple_cnn.first_lesson import claims
from simple_cnn.first_lesson.robustness import (
    RobustnessParams,
    consistency,
    key,
    measured_images,
    predictions_under_transforms,
    robustness_table,
)
from simple_cnn.first_lesson.svm_cost import SvmCostParams, cost_scaling, fit_slope, per_size
from simple_cnn.first_lesson.transforms import DIRECTIONS, rotation_signs, shift_directions, transformed
from simple_cnn.parameters import FirstLessonParams, HogSvmParams, check_across_groups
from tests.conftest import newest


def dot(side: int = 9, row: int = 4, col: int = 2) -> np.ndarray:
    """8 black images with one white pixel at (row, col)."""
    images = np.zeros((8, side, side, 3), np.uint8)
    images[:, row, col] = 255
    return images


def white(image: np.ndarray) -> tuple[int, int]:
    (where,) = np.argwhere(image[..., 0] > 127)
    return int(where[0]), int(where[1])


# ----------------------------------------------------------------------------- transforms
@pytest.mark.parametrize("pixels", [1, 2])
def test_a_shifted_pixel_moves_by_the_strength_in_its_direction(pixels):
    moved = transformed(dot(), "shift", pixels, fill="zeros", directions=np.arange(8))
    for image, (dx, dy) in zip(moved, DIRECTIONS):
        assert white(image) == (4 + pixels * dy, 2 + pixels * dx)  # x right, y down
        assert (image > 0).sum() == 3  # one pixel, three channels: nothing else appears


def test_a_shift_fills_the_uncovered_border_as_stated():
    images = np.full((8, 9, 9, 3), 7, np.uint8)
    images[:, :, 0] = 200  # the left column
    right = np.array([6] * 8)  # DIRECTIONS[6] = (1, 0): one pixel to the right
    assert tuple(DIRECTIONS[6]) == (1, 0)
    zeros = transformed(images, "shift", 1, fill="zeros", directions=right)
    border = transformed(images, "shift", 1, fill="border", directions=right)
    mirrored = transformed(images, "shift", 1, fill="reflection", directions=right)
    assert (zeros[:, :, 0] == 0).all() and (zeros[:, :, 1] == 200).all()
    assert (border[:, :, 0] == 200).all()
    assert (mirrored[:, :, 0] == 7).all()  # mirrored about the edge pixel: its neighbour


def test_a_rotated_pixel_turns_about_the_centre_by_the_strength():
    moved = transformed(dot(), "rotation", 90, fill="zeros", seed=3)
    signs = rotation_signs(8, 3)
    assert set(signs) == {-1.0, 1.0}
    for image, sign in zip(moved, signs):  # (row 4, col 2) is 2 left of the centre (4, 4)
        assert white(image) == ((6, 4) if sign > 0 else (2, 4))  # counter-clockwise: below


def test_lighting_scales_and_clips_and_the_identity_is_the_image():
    images = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    brighter = transformed(images, "brightness", 1.5)
    expected = np.clip(images * 1.5, 0, 255)
    assert np.abs(brighter - expected).max() <= 1 and (brighter[expected >= 255] == 255).all()
    flat = transformed(images, "contrast", 0.0001)
    assert np.ptp(flat.astype(int), axis=(1, 2, 3)).max() <= 1  # each image: its mean gray
    for kind, identity in (("rotation", 0), ("brightness", 1), ("contrast", 1), ("shift", 0)):
        assert transformed(images, kind, identity) is images


def test_two_shifts_never_share_a_direction():
    first = shift_directions(1000, 0)
    second = shift_directions(1000, 0, unlike=first)
    assert (first != second).all() and len(set(second)) == 8


# ---------------------------------------------------------------------------- consistency
SMALL = RobustnessParams(rotation=[10], brightness=[0.5], contrast=[1.5], shift=[1, 2])


def test_consistency_is_one_at_the_identity_and_for_a_model_that_ignores_its_input():
    images = np.random.default_rng(0).integers(0, 256, (50, 12, 12, 3), dtype=np.uint8)
    labels = np.arange(50) % 5
    by_pixel = predictions_under_transforms(images, lambda x: x[:, 5, 5, 0] % 5, SMALL)
    constant = predictions_under_transforms(images, lambda x: np.full(len(x), 2), SMALL)
    for kind, row in robustness_table(by_pixel, labels, SMALL).items():
        assert row["consistency"][row["strengths"].index({"brightness": 1, "contrast": 1}
                                                         .get(kind, 0))] == 1.0
    assert robustness_table(by_pixel, labels, SMALL)["shift"]["consistency"][1] < 1.0
    for row in robustness_table(constant, labels, SMALL).values():
        assert row["consistency"] == [1.0] * len(row["strengths"])
        assert row["accuracy"] == [0.2] * len(row["strengths"])  # the class's share
    assert robustness_table(constant, labels, SMALL)["shift"]["two_shift_consistency"] == [1.0] * 3
    assert consistency(np.array([1, 2, 3, 4]), np.array([1, 2, 0, 0])) == 0.5


def test_the_measured_images_are_a_seeded_part_of_the_test_split():
    part = measured_images(100, 30, seed=1)
    assert len(set(part)) == 30 and (np.diff(part) > 0).all()
    assert np.array_equal(part, measured_images(100, 30, seed=1))
    assert not np.array_equal(part, measured_images(100, 30, seed=2))
    assert np.array_equal(measured_images(100, 0, seed=1), np.arange(100))


# ---------------------------------------------------------------------------- the SVM cost
def test_the_fitted_slope_of_a_quadratic_timing_is_two():
    n = np.array([500, 1000, 2000, 4000] * 2)
    noise = np.random.default_rng(0).lognormal(0, 0.05, len(n))
    fit = fit_slope(n, 3e-7 * n**2 * noise)
    assert fit["slope"] == pytest.approx(2.0, abs=0.05)
    assert fit["interval"][0] < 2.0 < fit["interval"][1] and fit["df"] == 6
    assert fit_slope([10, 20, 40], [1.0, 2.0, 4.0])["slope"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="3 different sizes"):
        fit_slope([10, 10, 20], [1, 1, 2])


def test_cost_scaling_times_each_classifier_on_nested_parts():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(300, 8)).astype(np.float32), np.arange(300) % 3
    hog_svm = HogSvmParams.model_validate({"kernel_approx": {"pca_components": 0, "n_components": 50}})
    params = SvmCostParams(sizes=[40, 80, 160], predict_rows=50, repeats=2)
    scaling = cost_scaling(x, y, {n: getattr(hog_svm, n) for n in params.classifiers}, params, 0.05)
    exact = scaling["classifiers"]["rbf_svc"]
    assert exact["n"] == [40, 40, 80, 80, 160, 160] and len(exact["fit_seconds"]) == 6
    assert exact["support_vectors"][0] <= 40 < exact["support_vectors"][-1] <= 160
    assert "n_components > n_samples" in " ".join(scaling["classifiers"]["kernel_approx"]["warnings"])
    with pytest.raises(ConfigError, match="need 1,050 feature rows; the training features have 300"):
        cost_scaling(x, y, {}, SvmCostParams(sizes=[100, 500, 1000], predict_rows=50), 0.05)


def test_repeats_are_averaged_per_size_before_the_slope_is_fitted():
    """Two timings per size are one point each: the same timings give the same slope and
    degrees of freedom (3 sizes: df 1) with one repeat or two, and the interval does not shrink
    from counting a repeat as an independent point."""
    n, seconds = [100, 100, 200, 200, 400, 400], [1.0, 1.2, 2.1, 1.9, 4.4, 3.6]
    assert per_size(n, seconds) == ([100, 200, 400], [1.1, 2.0, 4.0])
    fit = fit_slope(*per_size(n, seconds))
    assert fit["df"] == 1
    # three sizes evenly spaced in log n: least squares joins the ends, log2(4.0 / 1.1) / 2;
    # stderr 0.0397 from the middle point's residual, times t(1 df) = 12.706
    assert fit["slope"] == pytest.approx(0.93125, abs=1e-4)
    assert fit["interval"] == pytest.approx([0.4269, 1.4356], abs=2e-4)


def test_the_cost_claim_needs_the_exact_svm_and_both_linear_ones():
    with pytest.raises(ConfigError, match=r"first_lesson\.svm_cost\.classifiers=\['linear_svc', "
                                          r"'kernel_approx'\] lacks rbf_svc"):
        FirstLessonParams.model_validate({"svm_cost": {"classifiers": ["linear_svc", "kernel_approx"]}})
    with pytest.raises(ConfigError, match=r"linear_slope_band=\[1\.1, 1\.3\] must be a band"):
        FirstLessonParams.model_validate({"linear_slope_band": [1.1, 1.3]})


# ------------------------------------------------------------------------------ verdicts
def predictions(n: int, wrong_under: dict[str, float], seed: int = 0) -> tuple[dict, np.ndarray]:
    """Per transform key, predicted classes: right on every image except a ``wrong_under``
    share of the images (per transform kind, at every non-identity strength)."""
    labels = np.random.default_rng(99).integers(0, 10, n)  # the same images for every model
    rng = np.random.default_rng(seed)
    out = {}
    for kind in ("rotation", "brightness", "contrast", "shift", "shift_second"):
        strengths = SMALL.strengths("shift" if kind == "shift_second" else kind)
        for s in strengths:
            identity = s == {"brightness": 1, "contrast": 1}.get(kind, 0)
            wrong = rng.random(n) < (0 if identity else wrong_under.get(kind, 0))
            out[key(kind, s)] = np.where(wrong, (labels + 1) % 10, labels)
    return out, labels


def lesson(**changes) -> FirstLessonParams:
    return FirstLessonParams.model_validate({"robustness": SMALL.model_dump(), "small_shift": 2,
                                             "bootstrap_resamples": 200, **changes})


def cost(slopes: dict[str, tuple[float, float]], df: int = 8) -> dict:
    """Fitted slopes (slope, stderr) as svm_cost_scaling holds them (10 sizes: df 8)."""
    return {"classifiers": {name: {"fit_slope": {"slope": s, "stderr": e, "df": df}}
                            for name, (s, e) in slopes.items()}}


T_1999 = 2.73727  # Student t, 1999 df, at 1 - 0.05 / 8 / 2: every part at alpha / 8
T_8 = 3.67657  # 8 df, the same level


def test_the_verdicts_read_each_part_at_the_familys_level_and_say_which_parts_hold():
    svm, labels = predictions(2000, {"rotation": 0.4, "brightness": 0.3, "shift": 0.2})
    cnn, _ = predictions(2000, {"rotation": 0.1, "contrast": 0.3}, seed=1)
    verdicts = claims.judge(svm, cnn, labels, cost({"rbf_svc": (2.3, 0.05), "linear_svc": (1.72, 0.05),
                                                    "kernel_approx": (1.0, 0.02)}), lesson())
    parts = {(p["claim"], p["part"]): p for p in verdicts["parts"]}
    assert {k: p["verdict"] for k, p in parts.items()} == {
        ("lighting_and_rotation", "rotation"): "supported",     # SVM loses 40 %, CNN 10 %
        ("lighting_and_rotation", "brightness"): "supported",
        ("lighting_and_rotation", "contrast"): "contradicted",  # the CNN loses more
        ("shift_consistency", "with the unshifted image"): "supported",
        ("shift_consistency", "between two shifts"): "supported",
        ("svm_cost", "rbf_svc"): "supported",         # 2.3 +- 0.18: above 2
        ("svm_cost", "linear_svc"): "contradicted",   # 1.72 +- 0.18: wholly above the band
        ("svm_cost", "kernel_approx"): "supported",   # 1.0 +- 0.07: inside [0.8, 1.3]
    }
    assert verdicts["part_level"] == pytest.approx(0.05 / 8)
    rotation = parts[("lighting_and_rotation", "rotation")]
    d = 100 * claims.accuracy_drop_difference(svm, cnn, labels, "rotation", SMALL)
    half = T_1999 * d.std(ddof=1) / np.sqrt(2000)
    assert rotation["interval"]["mean"] == pytest.approx(30.0, abs=3.0)  # points
    assert rotation["interval"]["low"] == pytest.approx(d.mean() - half, rel=1e-4)
    assert rotation["interval"]["high"] == pytest.approx(d.mean() + half, rel=1e-4)
    low, high = rotation["bootstrap_interval"]
    assert low < rotation["interval"]["mean"] < high
    exact = parts[("svm_cost", "rbf_svc")]["interval"]
    assert (exact["low"], exact["high"]) == pytest.approx((0.3 - T_8 * 0.05, 0.3 + T_8 * 0.05), rel=1e-4)
    assert verdicts["claims"]["lighting_and_rotation"]["verdict"] == "partly supported"
    assert verdicts["claims"]["lighting_and_rotation"]["holds_for"] == ["rotation", "brightness"]
    assert verdicts["claims"]["lighting_and_rotation"]["contradicted_for"] == ["contrast"]
    assert verdicts["claims"]["svm_cost"]["verdict"] == "partly supported"
    assert "grows at least quadratically" in verdicts["claims"]["svm_cost"]["statement"]
    assert verdicts["claims"]["shift_consistency"]["verdict"] == "supported"
    lighting_only = claims._claim("lighting_and_rotation", "", [
        {"part": "rotation", "verdict": "open"}, {"part": "contrast", "verdict": "contradicted"}])
    assert lighting_only["verdict"] == "partly contradicted"


def test_the_cost_claim_is_tested_as_its_sentence_says():
    """At least quadratically means a slope above 2 (1.9 +- 0.07 is no longer supported, as it
    was against 1.8); about linearly is a band on both sides (a slope of 0.2 is not linear)."""
    verdicts = claims.judge(*_same(), cost({"rbf_svc": (1.9, 0.02), "linear_svc": (0.2, 0.02),
                                            "kernel_approx": (1.25, 0.3)}), lesson())
    parts = {p["part"]: p["verdict"] for p in verdicts["parts"] if p["claim"] == "svm_cost"}
    assert parts == {"rbf_svc": "contradicted", "linear_svc": "contradicted", "kernel_approx": "inconclusive"}
    exact = next(p for p in verdicts["parts"] if p["part"] == "rbf_svc")
    assert exact["reason"].startswith("slope 1.90 [") and exact["reason"].endswith("the interval lies below 2")
    looser = claims.judge(*_same(), cost({"rbf_svc": (1.9, 0.02), "linear_svc": (1.0, 0.02),
                                          "kernel_approx": (1.0, 0.02)}), lesson(quadratic_slope=1.8))
    assert looser["claims"]["svm_cost"]["verdict"] == "supported"
    assert "grows at least as n^1.8" in looser["claims"]["svm_cost"]["statement"]


def _same():
    svm, labels = predictions(1000, {"rotation": 0.2})
    return svm, svm, labels


def test_equal_models_are_equivalent_and_a_small_difference_is_not_an_effect():
    verdicts = claims.judge(*_same(), cost({"rbf_svc": (1.8, 0.1), "linear_svc": (1.0, 0.1),
                                            "kernel_approx": (1.0, 0.1)}), lesson())
    image_parts = [p for p in verdicts["parts"] if p["claim"] != "svm_cost"]
    assert {p["verdict"] for p in image_parts} == {"equivalent"}  # d is 0 on every image
    small, labels = predictions(20000, {"rotation": 0.105})
    cnn, _ = predictions(20000, {"rotation": 0.1}, seed=1)
    verdicts = claims.judge(small, cnn, labels, cost({"rbf_svc": (2.5, 0.01), "linear_svc": (1.0, 0.02),
                                                      "kernel_approx": (1.0, 0.02)}),
                            lesson(min_effect=2.0, margin=2.0))
    rotation = verdicts["parts"][0]
    assert rotation["verdict"] == "equivalent" and "inside the margin of +-2 points" in rotation["reason"]
    assert abs(rotation["interval"]["mean"] - 0.5) < 1.0


def test_the_parameters_are_checked_with_the_full_key():
    with pytest.raises(ConfigError, match=r"first_lesson\.robustness\.rotation.*identity"):
        FirstLessonParams.model_validate({"robustness": {"rotation": [0, 10]}})
    with pytest.raises(ConfigError, match=r"first_lesson\.svm_cost\.sizes.*at least 3"):
        FirstLessonParams.model_validate({"svm_cost": {"sizes": [100, 200, 200]}})
    with pytest.raises(ConfigError, match=r"first_lesson\.small_shift"):
        FirstLessonParams.model_validate({"robustness": {"shift": [6, 8]}, "small_shift": 4})
    with pytest.raises(ConfigError, match=r"shift=\[1, 16\].*half the image side \(32"):
        check_across_groups({"ingestion": {"source": "cifar10"}, "first_lesson": FirstLessonParams(
            robustness={"shift": [1, 16]})}, {"first_lesson"})
    with pytest.raises(ConfigError, match=r"shift=\[1, 16\].*half the image side \(32"):  # raw groups too
        check_across_groups({"ingestion": {"source": "cifar10"},
                             "first_lesson": {"robustness": {"shift": [1, 16]}}}, {"first_lesson"})
    with pytest.raises(ConfigError, match=r"sizes=\[100, 200, 400\]: kernel_approx fits a PCA of "
                                          r"hog_svm.kernel_approx.pca_components=256 components"):
        check_across_groups({"hog_svm": HogSvmParams(), "first_lesson": FirstLessonParams(
            svm_cost={"sizes": [100, 200, 400]})}, {"first_lesson"})


# --------------------------------------------------------------- in the pipeline and reports
def test_kedro_run_measures_the_lesson_and_both_reports_show_it(smoke_project):
    metrics, scaling = newest(smoke_project, "robustness_metrics"), newest(smoke_project, "svm_cost_scaling")
    verdicts = newest(smoke_project, "first_lesson_verdicts")
    assert metrics["test_images"] == 500 and set(metrics["cnn"]) == {"rotation", "brightness",
                                                                      "contrast", "shift"}
    assert metrics["cnn"]["rotation"]["strengths"] == [0, 10, 30]
    assert metrics["cnn"]["rotation"]["consistency"][0] == 1.0
    cnn_metrics = newest(smoke_project, "cnn_test_metrics")
    assert metrics["cnn"]["rotation"]["accuracy"][0] == pytest.approx(cnn_metrics["accuracy"])
    assert set(scaling["classifiers"]) == {"rbf_svc", "linear_svc", "kernel_approx"}
    assert set(verdicts["claims"]) == set(claims.CLAIMS) and len(verdicts["parts"]) == 8
    report = sorted((smoke_project / "data/08_reporting").glob(
        "comparison_report.html/*/comparison_report.html"))[-1].read_text()
    assert "Why hand-made features hit a wall" in report
    for claim in verdicts["claims"].values():
        assert f"Verdict: {claim['verdict']}" in report
    for figure in ("robustness", "svm_cost"):
        assert list((smoke_project / "data/08_reporting").glob(f"{figure}.png/*/{figure}.png"))
    assert "Verdict: " in first_lesson_section(verdicts)
    assert "Not measured yet" in first_lesson_section(None)


def test_the_svm_is_measured_with_the_features_it_was_trained_with(smoke_copy):
    """Changing hog_svm's feature settings after training changes nothing: the saved model's
    report says what it was trained on. An older report without them is refused."""
    before = newest(smoke_copy, "robustness_metrics")
    bootstrap_project(smoke_copy)
    with KedroSession.create(project_path=smoke_copy, env="smoke", runtime_params={
            "hog_svm": {"hog": {"pixels_per_cell": [4, 4]}}}) as session:
        session.run(node_names=["predict_svm_under_transforms", "measure_robustness"])
    assert newest(smoke_copy, "robustness_metrics")["hog_svm"] == before["hog_svm"]
    report = sorted(smoke_copy.glob("data/*/svm_feature_report.json/*/svm_feature_report.json"))[-1]
    saved = json.loads(report.read_text())
    report.write_text(json.dumps({k: v for k, v in saved.items() if k != "feature_settings"}))
    with pytest.raises(ConfigError, match="older Simple CNN.*kedro run --pipeline hog_svm"):
        with KedroSession.create(project_path=smoke_copy, env="smoke") as session:
            session.run(node_names=["predict_svm_under_transforms"])
