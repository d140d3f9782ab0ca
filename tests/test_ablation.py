"""The ablation study: typed study definitions, the verdict rule, the run record's pieces, and
the pipeline through the real CLI on the smoke study (namespaces, resume, divergence)."""

import json
import shutil

import numpy as np
import pytest
import torch
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from torch import nn

from simple_cnn.ablation.studies import AblationParams, Run, run_parameters
from simple_cnn.ablation.summary import judge, summarise
from simple_cnn.ablation.warmup_pitfall import lr_traces
from simple_cnn.data.raw import stratified_subset
from simple_cnn.errors import ConfigError
from simple_cnn.parameters import CnnParams
from simple_cnn.training.config import TrainConfig
from simple_cnn.training.diagnostics import dead_units
from tests.conftest import DIVERGE, kedro, newest, raw_params, run_study

STUDY = {"claim": "b beats a", "test": {"metric": "test_accuracy", "better": "b", "than": "a"},
         "variants": {"a": {"model": {"norm": "batch"}}, "b": {"model": {"norm": "group"}}}}


def ablation(**changes) -> AblationParams:
    return AblationParams.model_validate({"studies": {"norm": STUDY}, **changes})


# ------------------------------------------------------------------------ study definitions
def test_base_and_smoke_studies_expand_to_valid_runs():
    for env in (None, "smoke"):
        params = AblationParams.model_validate(raw_params("ablation", env))
        cnn = CnnParams.model_validate(raw_params("cnn", env)).model_dump()
        runs = params.runs()
        assert len({r.namespace for r in runs}) == len(runs) > 0
        for run in runs:
            assert run_parameters(cnn, params, run).training.seed == run.seed
    gpu = AblationParams.model_validate(raw_params("ablation", "gpu"))  # conf/gpu changes only the study
    assert gpu.max_steps > 1000 and len(gpu.seeds) >= 5 and gpu.runs()
    cnn = CnnParams.model_validate(raw_params("cnn", None)).model_dump()
    assert all(run_parameters(cnn, gpu, run).training.device == "auto" for run in gpu.runs())
    base = AblationParams.model_validate(raw_params("ablation", None))
    assert len(base.seeds) >= 2 and {"norm_batch_size", "activation_lr", "augmentation_data",
                                     "warmup_lr_norm", "amp", "dropout_l2", "width_kernel"} <= set(base.studies)


def test_a_run_merges_cnn_base_study_and_variant_then_seed_and_budget():
    params = ablation(base={"training": {"lr": 0.3, "batch_size": 16}}, max_steps=40,
                      studies={"norm": {**STUDY, "overrides": {"training": {"lr": 0.2}}}})
    run = Run("norm", "b", 5)
    cnn = run_parameters(CnnParams().model_dump(), params, run)
    assert cnn.model.norm == "group" and cnn.training.lr == 0.2 and cnn.training.batch_size == 16
    assert (cnn.training.seed, cnn.training.max_steps, cnn.training.resume) == (5, 40, False)
    assert run.namespace == "ablation.norm.b.seed_5"


@pytest.mark.parametrize("changes, message", [
    ({"seeds": []}, r"ablation.seeds=\[\]: List should have at least 1 item"),
    ({"seeds": [1, 1]}, r"ablation.seeds=\[1, 1\]: .*seeds repeat"),
    ({"studies": {"norm": {**STUDY, "variants": {}}}}, r"ablation.studies.norm.variants=\{\}: .*at least 1 item"),
    ({"studies": {"norm": {**STUDY, "test": {"better": "c", "than": "a"}}}},
     r"ablation.studies.norm.test.better='c' is not a variant of this study; choose one of: a, b"),
    ({"studies": {"Norm Study": STUDY}}, r"name 'Norm Study' must be lower-case letters, digits and "
     r"underscores, starting with a letter \(it becomes a Kedro namespace\)"),
    ({"studies": {"norm": {**STUDY, "variants": {"a": {"training": {"seed": 3}}, "b": {}}}}},
     r"ablation.studies.norm.variants.a.training.seed=3 is set by the study"),
    ({"studies_to_run": ["nrom"]}, r"ablation.studies_to_run=\['nrom'\] names no study; choose from: norm"),
    ({"studies": {"norm": {**STUDY, "claim": ""}}}, r"ablation.studies.norm.claim=''"),
])
def test_bad_study_definitions_name_the_study_variant_and_key(changes, message):
    with pytest.raises(ConfigError, match=message):
        ablation(**changes)


def test_an_override_is_checked_against_the_cnn_parameters_naming_the_variant():
    params = ablation(studies={"norm": {**STUDY, "variants": {"a": {"model": {"nrom": "group"}},
                                                              "b": {"training": {"lr": -1}}}}})
    with pytest.raises(ConfigError, match=r"ablation.studies.norm.variants.a.model.nrom is not a known key"):
        run_parameters(CnnParams().model_dump(), params, Run("norm", "a", 0))
    with pytest.raises(ConfigError, match=r"ablation.studies.norm.variants.b.training.lr=-1: .*greater than 0"):
        run_parameters(CnnParams().model_dump(), params, Run("norm", "b", 0))


def test_a_study_can_be_picked_by_name():
    assert ablation(studies_to_run="norm").runs() == ablation().runs()
    two = ablation(studies={"norm": STUDY, "other": STUDY}, studies_to_run=["other"], seeds=[3])
    assert [(r.study, r.variant, r.seed) for r in two.runs()] == [("other", "a", 3), ("other", "b", 3)]
    assert len(ablation(studies={"norm": STUDY, "other": STUDY}).runs()) == 8


def test_a_run_leaves_the_base_parameters_as_they_were_and_names_its_factors():
    from simple_cnn.ablation.studies import factors

    base = CnnParams().model_dump()
    before = json.dumps(base, sort_keys=True)
    params = ablation(studies={"norm": {**STUDY, "variants": {
        "a": {"model": {"norm": "group", "num_groups": 4}, "training": {"lr": 0.3}}, "b": {}}}})
    run_parameters(base, params, Run("norm", "a", 0))
    assert json.dumps(base, sort_keys=True) == before
    assert factors(params, Run("norm", "a", 0)) == {"model.norm": "group", "model.num_groups": 4,
                                                    "training.lr": 0.3}
    scalar = ablation(studies={"norm": {**STUDY, "variants": {"a": {"model": 3}, "b": {}}}})
    with pytest.raises(ConfigError, match=r"ablation.studies.norm.variants.a.model=3"):
        run_parameters(base, scalar, Run("norm", "a", 0))


# ------------------------------------------------------------------------------ the verdict
def record(variant, value, seed, diverged=False):
    return {"study": "norm", "variant": variant, "seed": seed, "diverged": diverged,
            "test_accuracy": None if diverged else value, "factors": {}}


@pytest.mark.parametrize("a, b, verdict", [
    ([0.50, 0.52], [0.60, 0.61], "supported"),       # b better by 0.095, noise 2 x 0.011
    ([0.60, 0.61], [0.50, 0.52], "contradicted"),
    ([0.50, 0.60], [0.52, 0.61], "inconclusive"),    # within 2 x the pooled std
    ([0.500, 0.500], [0.503, 0.503], "inconclusive"),  # below min_difference
])
def test_the_verdict_rule(a, b, verdict):
    records = [record("a", v, s) for s, v in enumerate(a)] + [record("b", v, s) for s, v in enumerate(b)]
    summary = summarise(records, ablation())
    study = summary["studies"]["norm"]
    assert study["verdict"] == verdict
    pooled = np.sqrt((np.var(a, ddof=1) + np.var(b, ddof=1)) / 2)
    assert study["difference"] == pytest.approx(np.mean(b) - np.mean(a))
    assert study["threshold"] == pytest.approx(max(2 * pooled, 0.005))
    assert (summary["seeds"], summary["max_steps"], summary["runs"]) == ([0, 1], 200, 4)
    assert "max(2 x the pooled seed standard deviation, 0.005)" in summary["rule"]
    assert study["variants"]["b"]["test_accuracy"]["mean"] == pytest.approx(np.mean(b))
    assert study["variants"]["b"]["test_accuracy"]["std"] == pytest.approx(np.std(b, ddof=1))


def test_diverged_runs_count_for_divergence_and_not_for_accuracy():
    records = [record("a", 0, 0, diverged=True), record("a", 0.5, 1), record("b", 0.6, 0), record("b", 0.6, 1)]
    study = summarise(records, ablation())["studies"]["norm"]
    assert study["variants"]["a"]["n_diverged"] == 1 and study["variants"]["a"]["test_accuracy"]["n"] == 1
    assert study["verdict"] == "inconclusive" and "fewer than 2 finished runs (2 and 1)" in study["reason"]
    assert study["variants"]["a"]["diverged"] == {"mean": 0.5, "std": pytest.approx(0.7071, abs=1e-4), "n": 2}
    assert study["difference"] is None and study["threshold"] is None
    diverged = judge([0.0, 0.0], [1.0, 1.0], "diverged", ablation())  # lower is better
    assert diverged["verdict"] == "supported" and diverged["difference"] == pytest.approx(1.0)
    assert judge([0.1, 0.1], [0.3, 0.3], "gap", ablation())["difference"] == pytest.approx(0.2)


def test_a_difference_exactly_at_the_bound_is_inconclusive():
    strict = ablation(min_difference=0.25)
    assert judge([0.75, 0.75], [0.5, 0.5], "test_accuracy", strict)["verdict"] == "inconclusive"
    assert judge([0.5, 0.5], [0.75, 0.75], "test_accuracy", strict)["verdict"] == "inconclusive"
    assert judge([0.8, 0.8], [0.5, 0.5], "test_accuracy", strict)["verdict"] == "supported"


def test_describe_over_no_one_and_two_seeds():
    from simple_cnn.ablation.summary import describe

    assert describe([]) == {"mean": None, "std": None, "n": 0}
    assert describe([0.4]) == {"mean": 0.4, "std": 0.0, "n": 1}
    assert describe([0.4, 0.6]) == {"mean": pytest.approx(0.5), "std": pytest.approx(0.1414, abs=1e-4), "n": 2}


# ---------------------------------------------------------------------- the record's pieces
def test_stratified_subset_is_seeded_and_keeps_every_class():
    labels = np.repeat(np.arange(10), [100, 50, 20, 10, 5, 5, 5, 5, 5, 1])
    keep = stratified_subset(labels, 0.1, seed=3)
    assert np.array_equal(keep, stratified_subset(labels, 0.1, seed=3))
    assert not np.array_equal(keep, stratified_subset(labels, 0.1, seed=4))
    assert np.bincount(labels[keep], minlength=10).tolist() == [10, 5, 2, 1, 1, 1, 1, 1, 1, 1]
    assert len(stratified_subset(labels, 1.0, seed=3)) == len(labels)


def test_dead_units_counts_channels_that_never_fire():
    conv = nn.Conv2d(1, 4, 1)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.copy_(torch.tensor([0.0, -10.0, 0.0, -10.0]))  # channels 1 and 3 never > 0
    images = torch.rand(6, 1, 4, 4)
    assert dead_units(nn.Sequential(conv, nn.ReLU()), images, batch_size=4) == {"1": 0.5}
    assert dead_units(nn.Sequential(conv, nn.LeakyReLU(0.3)), images) == {"1": 0.5}
    assert dead_units(nn.Sequential(conv, nn.GELU()), images) is None


def test_the_hand_rolled_warmup_never_decays_and_the_projects_schedule_does():
    config = TrainConfig(epochs=6, warmup=1, step_size_epochs=2, step_gamma=0.1, lr=0.2)
    wrapper, ours = lr_traces(config, steps_per_epoch=10).values()
    assert len(wrapper) == len(ours) == 60
    assert ours[5] < ours[15] == pytest.approx(0.2)         # warmed up to the peak
    assert ours[-1] == pytest.approx(0.2 * 0.1 ** 2)          # two decays after the warmup
    assert max(wrapper) < 0.2 and wrapper[-1] == wrapper[15]  # never the peak, never a decay


# ------------------------------------------------- the pipeline, in a session and via the CLI
def versions(project, namespace):
    return sorted((project / "data/07_model_output/ablation").glob(f"{namespace}.json/*"))


@pytest.mark.slow
def test_the_smoke_study_records_every_run_with_a_verdict_and_a_report(study):
    results, summary = newest(study, "ablation_results"), newest(study, "ablation_summary")
    assert len(results) == 24 and summary["runs"] == 24
    assert set(summary["studies"]) == {"activation_lr", "warmup_lr_norm"}
    for verdict in summary["studies"].values():
        assert verdict["verdict"] in ("supported", "contradicted", "inconclusive")
        assert all(v["runs"] == 2 for v in verdict["variants"].values())
    finished = [r for r in results if not r["diverged"]]
    assert all(0 <= r["test_accuracy"] <= 1 and r["train_seconds"] > 0 and r["images_per_second"] > 0
               and len(r["lr_per_step"]) == 20 for r in finished)
    relu = [r for r in finished if r["factors"].get("model.activation") == "relu"]
    assert relu and all({"features.0.act", "features.1.act", "features.2.act"} <= set(r["dead_units"])
                        and 0 <= r["dead_unit_fraction"] <= 1 for r in relu)
    report = sorted((study / "data/08_reporting").glob("ablation_report.html/*/ablation_report.html"))[-1].read_text()
    for verdict in summary["studies"].values():
        assert verdict["claim"] in report
    for figure in ("ablation_accuracy", "ablation_augmentation_heatmap", "ablation_dead_units",
                   "ablation_batch_size", "ablation_warmup_lr", "warmup_wrapper_bug"):
        assert list((study / "data/08_reporting").glob(f"{figure}.png/*/{figure}.png")), figure


@pytest.mark.slow
def test_a_diverged_variant_is_recorded_and_the_study_goes_on(study):
    results = newest(study, "ablation_results")
    diverged = [r for r in results if r["variant"] == "cold_none"]
    assert len(diverged) == 2 and all(r["diverged"] for r in diverged)
    for r in diverged:
        assert r["divergence"]["lr"] > 100 and r["divergence"]["step"] >= 1 and r["divergence"]["layer"]
        assert r["test_accuracy"] is None and r["lr_per_step"][-1] == r["divergence"]["lr"]
    assert newest(study, "ablation_summary")["studies"]["warmup_lr_norm"]["variants"]["cold_none"]["n_diverged"] == 2


@pytest.fixture
def study_copy(study, tmp_path):
    root = tmp_path / "project"
    shutil.copytree(study, root)
    return root


@pytest.mark.slow
def test_namespaces_reruns_one_variant_only(study_copy):
    one = "ablation.activation_lr.relu_lr_low.seed_1"
    before = {ns.name: len(versions(study_copy, ns.name.removesuffix(".json")))
              for ns in (study_copy / "data/07_model_output/ablation").iterdir()}
    run_study(study_copy, namespaces=[one])
    after = {ns.name: len(versions(study_copy, ns.name.removesuffix(".json")))
             for ns in (study_copy / "data/07_model_output/ablation").iterdir()}
    assert {k for k in after if after[k] != before[k]} == {f"{one}.json"}


@pytest.mark.slow
def test_only_missing_outputs_trains_just_a_new_variant_and_refreshes_the_summary(study_copy):
    added = "ablation.studies.activation_lr.variants.gelu_lr_low.model.activation=gelu"
    first_summary = newest(study_copy, "ablation_summary")
    run_study(study_copy, f"{DIVERGE},{added}", only_missing_outputs=True)
    ran = [row["node"] for row in newest(study_copy, "run_profile")["nodes"]]
    trained = {name for name in ran if name.endswith("train_and_evaluate_run")}
    assert trained == {f"ablation.activation_lr.gelu_lr_low.seed_{s}.train_and_evaluate_run" for s in (0, 1)}
    assert "split_train_val" not in ran and "build_ablation_report" in ran
    summary = newest(study_copy, "ablation_summary")
    assert summary["runs"] == 26 != first_summary["runs"]
    gelu = summary["studies"]["activation_lr"]["variants"]["gelu_lr_low"]
    assert gelu["runs"] == 2 and gelu["dead_unit_fraction"]["n"] == 0  # GELU is never exactly off


@pytest.mark.slow
def test_an_unknown_override_key_stops_the_run_before_training(study_copy):
    result = kedro(study_copy, "run", "--env", "smoke", "--pipelines", "ablation", "--params",
                   "ablation.studies.warmup_lr_norm.variants.warm_none.training.lrr=1", check=False)
    assert result.returncode == 1
    assert ("Error: ablation.studies.warmup_lr_norm.variants.warm_none.training.lrr is not a known "
            "key") in result.stderr
    assert "Running node" not in result.stdout + result.stderr


@pytest.mark.slow
def test_a_duplicate_variant_name_in_the_yaml_is_refused(study_copy):
    env = study_copy / "conf/dup"
    env.mkdir()
    (env / "parameters_ablation.yml").write_text(
        "ablation:\n  studies:\n    amp:\n      variants:\n        bf16: {}\n        bf16: {}\n")
    with pytest.raises(Exception, match="found duplicate key bf16"):
        run_study(study_copy, env="dup")


@pytest.mark.slow
def test_without_valid_studies_the_session_refuses_naming_the_key(project):
    env = project / "conf/nostudy"
    env.mkdir()
    (env / "parameters_ablation.yml").write_text("ablation:\n  seeds: []\n")
    bootstrap_project(project)
    with KedroSession.create(project_path=project, env="nostudy") as session, \
            pytest.raises(Exception, match=r"ablation.seeds=\[\]"):
        session.run(pipeline_names=["ablation"])


def test_the_comparison_report_links_the_newest_ablation_report(tmp_path):
    from kedro.io import DatasetError

    from simple_cnn.datasets import NewestVersionDataset
    from simple_cnn.report import _ablation_paragraph

    target = tmp_path / "08_reporting" / "ablation_report.html"
    link = NewestVersionDataset(filepath=str(target))
    assert link.load() is None and link.exists()
    assert "kedro run --pipelines ablation" in _ablation_paragraph(None)
    for version in ("2026-11-29T06.00.00.000Z", "2026-11-29T07.00.00.000Z"):
        (target / version).mkdir(parents=True)
        (target / version / "ablation_report.html").write_text("<html></html>")
    assert link.load() == "ablation_report.html/2026-11-29T07.00.00.000Z/ablation_report.html"
    assert 'href="../../ablation_report.html/2026-11-29T07.00.00.000Z/ablation_report.html"' in \
        _ablation_paragraph(link.load())
    with pytest.raises(DatasetError, match="read-only"):
        link.save("x")


def test_figures_and_report_show_the_measured_numbers():
    from simple_cnn.ablation import figures
    from simple_cnn.ablation.report import ablation_html

    def row(preset, fraction, seed, accuracy):
        return {**record(f"{preset}_{int(fraction * 10)}", accuracy, seed), "study": "aug", "n_train": int(fraction * 1000),
                "factors": {"augmentation.preset": preset, "training.fraction": fraction}}

    rows = [row(p, f, s, 0.4 + 0.1 * i + 0.01 * s) for i, (p, f) in enumerate(
        [("none", 0.1), ("heavy", 0.1), ("none", 1.0), ("heavy", 1.0)]) for s in (0, 1)]
    texts = [t.get_text() for t in figures.augmentation_heatmap(rows).axes[0].texts]
    assert sorted(texts) == ["40.5%", "50.5% *", "60.5%", "70.5% *"]
    absent = figures.accuracy_vs_batch_size(rows).axes[0].texts[0].get_text()
    assert absent.startswith("No study in this run varies model.norm and training.batch_size")
    params = AblationParams.model_validate({"studies": {"aug": {
        "claim": "heavy beats none", "test": {"better": "heavy_1", "than": "none_1"},
        "variants": {r["variant"]: {} for r in rows}}}})
    summary = summarise(rows, params)
    assert summary["studies"]["aug"]["verdict"] == "supported"
    html = ablation_html(summary, {"max_steps": 200}, {})
    assert "heavy beats none" in html and "The numbers support the claim" in html
    assert "50.5% ± 0.7%" in html and "max steps: 200" in html
