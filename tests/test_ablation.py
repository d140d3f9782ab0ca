"""The ablation study: typed study definitions, the verdict rule, the run record's pieces, and
the pipeline through the real CLI on the smoke study (namespaces, resume, divergence)."""

import html
import json
import shutil

import numpy as np
import pytest
import torch
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from torch import nn

from simple_cnn.ablation.studies import AblationParams, Run, check_run_length, run_parameters
from simple_cnn.ablation.summary import summarise
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
    for env in (None, "smoke", "quick", "gpu"):
        params = AblationParams.model_validate(raw_params("ablation", env))
        cnn = CnnParams.model_validate(raw_params("cnn", env if env == "smoke" else None)).model_dump()
        runs = params.runs()
        assert len({r.namespace for r in runs}) == len(runs) > 0
        per_class = {f"c{i}": 200 if env == "smoke" else 4500 for i in range(10)}  # the train splits
        for run in runs:
            offset = params.studies[run.study].seed_offsets.get(run.variant, 0)
            run_params = run_parameters(cnn, params, run)
            assert run_params.training.seed == run.seed + offset
            check_run_length(run_params, per_class, run.namespace)  # every budget fits its data
    gpu = AblationParams.model_validate(raw_params("ablation", "gpu"))  # conf/gpu changes only the study
    base = AblationParams.model_validate(raw_params("ablation", None))
    assert gpu.max_steps > 1000 and len(gpu.seeds) >= 5 and len(gpu.runs()) > len(base.runs())
    cnn = CnnParams.model_validate(raw_params("cnn", None)).model_dump()
    assert all(run_parameters(cnn, gpu, run).training.device == "auto" for run in gpu.runs())
    assert len(base.seeds) >= 3 and {"aa_control", "norm_batch_size", "activation_lr", "augmentation_data",
                                     "warmup_lr_norm", "amp", "dropout_l2", "width_kernel"} <= set(base.studies)
    assert [name for name, study in base.studies.items() if study.control] == ["aa_control"]
    for name in ("augmentation_data", "dropout_l2", "width_kernel"):  # regularisation: to convergence
        assert base.studies[name].epochs and base.studies[name].patience, name
    quick = AblationParams.model_validate(raw_params("ablation", "quick"))
    assert quick.preview and not base.preview and len(quick.runs()) == len(base.runs())


def test_a_run_merges_cnn_base_study_and_variant_then_seed_and_budget():
    params = ablation(base={"training": {"lr": 0.3, "batch_size": 16}}, max_steps=40,
                      studies={"norm": {**STUDY, "overrides": {"training": {"lr": 0.2}}}})
    run = Run("norm", "b", 5)
    cnn = run_parameters(CnnParams().model_dump(), params, run)
    assert cnn.model.norm == "group" and cnn.training.lr == 0.2 and cnn.training.batch_size == 16
    assert (cnn.training.seed, cnn.training.max_steps, cnn.training.resume) == (5, 40, False)
    assert cnn.training.early_stopping_patience == 0
    assert run.namespace == "ablation.norm.b.seed_5"


def test_a_budget_in_epochs_with_patience_and_a_seed_offset():
    params = ablation(studies={"norm": {**STUDY, "epochs": 30, "patience": 4, "seed_offsets": {"b": 100}}})
    a, b = (run_parameters(CnnParams().model_dump(), params, Run("norm", v, 2)) for v in ("a", "b"))
    assert (a.training.epochs, a.training.max_steps, a.training.early_stopping_patience) == (30, None, 4)
    assert (a.training.seed, b.training.seed) == (2, 102)
    assert params.studies["norm"].budget(200) == {"unit": "epochs", "length": 30, "patience": 4}
    assert ablation().studies["norm"].budget(200) == {"unit": "steps", "length": 200, "patience": 0}


@pytest.mark.parametrize("changes, message", [
    ({"seeds": []}, r"ablation.seeds=\[\]: List should have at least 1 item"),
    ({"seeds": [1, 1]}, r"ablation.seeds=\[1, 1\]: .*seeds repeat"),
    ({"studies": {"norm": {**STUDY, "seeds": [1, 1]}}}, r"ablation.studies.norm.seeds=\[1, 1\]: .*seeds repeat"),
    ({"studies": {"norm": {**STUDY, "seeds": [-1]}}}, r"ablation.studies.norm.seeds=\[-1\]: .*every seed must be in"),
    ({"studies": {"norm": {**STUDY, "epochs": 5, "max_steps": 10}}},
     r"ablation.studies.norm.max_steps=10 and epochs=5 are two budgets"),
    ({"studies": {"norm": {**STUDY, "patience": 3}}}, r"ablation.studies.norm.patience=3 counts epochs"),
    ({"studies": {"norm": {**STUDY, "epochs": 3, "patience": 3}}},
     r"ablation.studies.norm.patience=3 is not shorter than the cap \(epochs=3\)"),
    ({"studies": {"norm": {**STUDY, "seed_offsets": {"c": 1}}}},
     r"ablation.studies.norm.seed_offsets=\{'c': 1\} names no variant \(c\); choose from: a, b"),
    ({"budget_points": [0.5, 0.25, 1.0]}, r"ablation.budget_points=\[0.5, 0.25, 1.0\]: .*must rise"),
    ({"budget_points": [0.5]}, r"ablation.budget_points=\[0.5\]: .*to 1 \(the end\)"),
    ({"studies": {"norm": {**STUDY, "variants": {"a": {"training": {"epochs": 3}}, "b": {}}}}},
     r"ablation.studies.norm.variants.a.training.epochs=3 is set by the study"),
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
    assert len(ablation(studies={"norm": STUDY, "other": STUDY}).runs()) == 12


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
def record(variant, value, seed, diverged=False, metric="test_accuracy"):
    return {"study": "norm", "variant": variant, "seed": seed, "diverged": diverged, "chance": 0.1,
            metric: None if diverged else value, "factors": {}, "n_train": 100, "batch_size": 8,
            "passes": 2.0, "steps": 25, "converged": False, "fingerprint": f"{variant}{seed}",
            "along_budget": None if diverged else {p: {metric: value} for p in ("0.125", "0.25", "0.5")}}


def records_of(a, b, **kwargs):
    return ([record("a", v, s, **kwargs) for s, v in enumerate(a)] +
            [record("b", v, s, **kwargs) for s, v in enumerate(b)])


def t_interval(differences, level=0.95):
    """The Student-t interval and two-sided p, from the formulas (not the code under test)."""
    from scipy import stats

    d = np.asarray(differences)
    n, mean, se = len(d), d.mean(), d.std(ddof=1) / np.sqrt(len(d))
    half = stats.t.ppf(0.5 + level / 2, n - 1) * se
    return (mean - half, mean + half), 2 * stats.t.sf(abs(mean / se), n - 1)


@pytest.mark.parametrize("a, b, verdict", [
    ([0.50, 0.52, 0.55], [0.59, 0.62, 0.66], "supported"),      # b better by 0.09 to 0.11 on each seed
    ([0.59, 0.62, 0.66], [0.50, 0.52, 0.55], "contradicted"),
    ([0.50, 0.60, 0.55], [0.52, 0.58, 0.57], "inconclusive"),    # the differences change sign
    ([0.500, 0.510, 0.520], [0.503, 0.5131, 0.5229], "inconclusive"),  # consistent, below min_difference
])
def test_the_paired_rule(a, b, verdict):
    summary = summarise(records_of(a, b), ablation())
    study = summary["studies"]["norm"]
    assert study["verdict"] == verdict, study["reason"]
    d = np.array(b) - np.array(a)
    (low, high), p = t_interval(d)
    assert study["difference"] == pytest.approx(d.mean())
    assert study["interval"] == pytest.approx([low, high]) and study["p"] == pytest.approx(p)
    assert study["p_adjusted"] == pytest.approx(p)  # one claim: Holm changes nothing
    assert [pair["difference"] for pair in study["pairs"]] == pytest.approx(d)
    assert [pair["seed"] for pair in study["pairs"]] == [0, 1, 2]
    assert (summary["seeds"], summary["runs"], summary["alpha"]) == ([0, 1, 2], 6, 0.05)
    assert "Holm-adjusted" in summary["rule"] and "mean >= 0.005" in summary["rule"]
    assert study["variants"]["b"]["test_accuracy"]["mean"] == pytest.approx(np.mean(b))
    assert study["variants"]["b"]["test_accuracy"]["std"] == pytest.approx(np.std(b, ddof=1))


def test_seeds_pair_up_by_number_not_by_position():
    rows = [record("a", 0.5, 0), record("a", 0.7, 1), record("b", 0.72, 1), record("b", 0.52, 0),
            record("b", 0.9, 2)]  # seed 2 has no partner
    study = summarise(rows, ablation())["studies"]["norm"]
    assert [(p["seed"], p["difference"]) for p in study["pairs"]] == [(0, pytest.approx(0.02)),
                                                                    (1, pytest.approx(0.02))]


def test_holm_adjusts_within_the_family_and_keeps_the_untested():
    from simple_cnn.ablation.summary import holm

    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.02, None, 0.5]) == [pytest.approx(0.04), None, pytest.approx(0.5)]
    assert holm([0.6, 0.9]) == pytest.approx([1.0, 1.0])


def test_claims_are_adjusted_together_and_the_control_on_its_own():
    study = {**STUDY, "variants": {"a": {}, "b": {}}}
    params = ablation(studies={"one": study, "two": study, "control": {**study, "control": True}})
    rows = []
    for name, gain in (("one", [0.05, 0.06, 0.07]), ("two", [0.05, 0.051, 0.049]), ("control", [0.05, 0.06, 0.07])):
        rows += [{**r, "study": name} for r in records_of([0.5] * 3, list(0.5 + np.array(gain)))]
    studies = summarise(rows, params)["studies"]
    small, large = sorted(("one", "two"), key=lambda n: studies[n]["p"])
    assert studies[small]["p_adjusted"] == pytest.approx(2 * studies[small]["p"])
    assert studies[large]["p_adjusted"] == pytest.approx(max(2 * studies[small]["p"], studies[large]["p"]))
    assert studies["control"]["p_adjusted"] == pytest.approx(studies["control"]["p"])
    assert summarise(rows, params)["claims_judged_together"] == 2


def test_a_diverged_run_scores_as_a_failure_not_as_missing():
    from simple_cnn.ablation.summary import score

    # dropping the diverged run would leave +0.10 and +0.11: "supported"
    rows = records_of([0.5, 0.5, 0.5], [0.60, 0.61, None])
    rows[-1] = record("b", None, 2, diverged=True)
    study = summarise(rows, ablation())["studies"]["norm"]
    assert [p["difference"] for p in study["pairs"]] == pytest.approx([0.10, 0.11, 0.1 - 0.5])
    assert study["verdict"] == "inconclusive" and study["variants"]["b"]["n_diverged"] == 1
    assert study["variants"]["b"]["test_accuracy"]["n"] == 2  # the variant's own mean: finished runs
    diverged = rows[-1]
    assert (score(diverged, "test_accuracy"), score(diverged, "macro_f1"), score(diverged, "dead_unit_fraction"),
            score(diverged, "diverged"), score(diverged, "gap")) == (0.1, 0.1, 1.0, 1.0, None)
    assert score(rows[0], "diverged") == 0.0


def test_a_better_side_that_diverges_more_often_cannot_be_supported():
    study_spec = {**STUDY, "test": {"metric": "gap", "better": "b", "than": "a"}}
    rows = records_of([0.05, 0.052, 0.051], [0.01, 0.011, None], metric="gap")
    rows[-1] = record("b", None, 2, diverged=True, metric="gap")
    study = summarise(rows, ablation(studies={"norm": study_spec}))["studies"]["norm"]
    assert study["n_pairs"] == 2 and study["left_out"] == 1  # the gap has no failure score
    assert study["p_adjusted"] < 0.05 and study["difference"] > 0.005
    assert study["verdict"] == "inconclusive" and "diverged more often" in study["reason"]


def test_fewer_than_two_pairs_are_inconclusive():
    study = summarise(records_of([0.5], [0.9]), ablation())["studies"]["norm"]
    assert study["verdict"] == "inconclusive" and "fewer than 2 paired seeds (1)" in study["reason"]
    assert study["interval"] is None and study["p"] is None


def test_differences_without_spread_decide_by_their_sign():
    from simple_cnn.ablation.summary import paired_test

    assert paired_test([0.1, 0.1, 0.1], 0.05) == {"n": 3, "mean": pytest.approx(0.1),
                                                  "interval": [pytest.approx(0.1)] * 2, "p": 0.0}
    assert paired_test([0.0, 0.0], 0.05)["p"] == 1.0
    assert summarise(records_of([0.5] * 3, [0.5] * 3), ablation())["studies"]["norm"]["verdict"] == "inconclusive"


def test_the_verdict_along_the_budget_marks_a_claim_that_flips():
    rows = records_of([0.5, 0.52, 0.55], [0.59, 0.62, 0.66])
    for row in rows:  # early in the budget, a is ahead
        row["along_budget"]["0.125"]["test_accuracy"] = 0.7 if row["variant"] == "a" else row["test_accuracy"] - 0.2
    study = summarise(rows, ablation())["studies"]["norm"]
    along = {point["fraction"]: point["verdict"] for point in study["along_budget"]}
    assert along == {0.125: "contradicted", 0.25: "supported", 0.5: "supported"}
    assert study["verdict"] == "supported" and study["budget_dependent"]
    steady = summarise(records_of([0.5, 0.52, 0.55], [0.59, 0.62, 0.66]), ablation())["studies"]["norm"]
    assert not steady["budget_dependent"]


@pytest.mark.parametrize("n", [3, 5])
def test_the_rule_calls_equal_variants_decisive_about_5_percent_of_the_time(n):
    """Simulated studies of two equal variants: each seed shifts both (the pairing), each run
    adds its own noise; the rule's decisive verdicts are its false alarms."""
    from simple_cnn.ablation.summary import decide, paired_test

    rng = np.random.default_rng(n)
    params = ablation(min_difference=0.0)
    draws = 4000
    seed_effect = rng.normal(0.5, 0.02, (draws, n))
    a = seed_effect + rng.normal(0, 0.012, (draws, n))
    b = seed_effect + rng.normal(0, 0.012, (draws, n))
    verdicts = [decide(t := paired_test(list(d), params.alpha), t["p"], params, False)[0] for d in b - a]
    decisive = np.mean([v != "inconclusive" for v in verdicts])
    assert 0.035 < decisive < 0.065  # 0.05 expected; 4000 draws give a standard error of 0.0035


@pytest.mark.parametrize("n, power", [(3, 0.4), (5, 0.8)])  # t-test power: about 0.45 and 0.9
def test_the_rule_finds_a_real_effect(n, power):
    """A real effect of 2 standard deviations of the paired difference."""
    from simple_cnn.ablation.summary import decide, paired_test

    rng = np.random.default_rng(10 + n)
    params = ablation()
    d = rng.normal(0.034, 0.017, (2000, n))
    verdicts = [decide(t := paired_test(list(row), params.alpha), t["p"], params, False)[0] for row in d]
    assert np.mean([v == "supported" for v in verdicts]) > power
    assert "contradicted" not in verdicts


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
    assert len(results) == 30 and summary["runs"] == 30
    assert set(summary["studies"]) == {"aa_control", "activation_lr", "warmup_lr_norm"}
    for verdict in summary["studies"].values():
        assert verdict["verdict"] in ("supported", "contradicted", "inconclusive")
        assert all(v["runs"] == 3 for v in verdict["variants"].values())
        assert [p["fraction"] for p in verdict["along_budget"]] == [0.5]
    finished = [r for r in results if not r["diverged"]]
    stepped = [r for r in finished if r["study"] != "aa_control"]
    assert all(0 <= r["test_accuracy"] <= 1 and r["train_seconds"] > 0 and r["images_per_second"] > 0
               for r in finished)
    assert all(len(r["lr_per_step"]) == r["steps"] == 20 and not r["converged"] for r in stepped)
    for r in finished:  # the end's scores are the last budget point's
        assert set(r["along_budget"]) == {"0.5", "1.0"} and r["along_budget"]["0.5"]["step"] == r["budget"][
            "length"] // 2 * (1 if r["budget"]["unit"] == "steps" else r["steps"] // r["budget"]["length"])
        assert r["along_budget"]["1.0"]["test_accuracy"] == r["test_accuracy"]
    relu = [r for r in finished if r["factors"].get("model.activation") == "relu"]
    assert relu and all({"features.0.act", "features.1.act", "features.2.act"} <= set(r["dead_units"])
                        and 0 <= r["dead_unit_fraction"] <= 1 for r in relu)
    aa = summary["studies"]["aa_control"]
    assert aa["control"] and aa["verdict"] == "inconclusive" and summary["claims_judged_together"] == 2
    assert aa["regime"]["n_train"] == [400] and aa["regime"]["budget"] == {"unit": "epochs", "length": 4, "patience": 2}
    seeds = {(r["variant"], r["seed"]): r["train_seed"] for r in results if r["study"] == "aa_control"}
    assert seeds == {("config_a", s): s for s in (0, 1, 2)} | {("config_b", s): s + 1000 for s in (0, 1, 2)}
    report = sorted((study / "data/08_reporting").glob("ablation_report.html/*/ablation_report.html"))[-1].read_text()
    for verdict in summary["studies"].values():
        assert html.escape(verdict["claim"]) in report
    assert "The rule's check, the A/A control: <b>inconclusive</b>" in report
    assert report.index("Every claim&#x27;s effect") < report.index("<section>")  # the forest plot first
    assert "Preview at a short budget" not in report
    assert "Augmentation preset x training-set size" not in report  # no study of this run shows it
    for figure in ("ablation_accuracy", "ablation_augmentation_heatmap", "ablation_dead_units",
                   "ablation_batch_size", "ablation_warmup_lr", "warmup_wrapper_bug"):
        assert list((study / "data/08_reporting").glob(f"{figure}.png/*/{figure}.png")), figure


@pytest.mark.slow
def test_a_diverged_variant_is_recorded_and_the_study_goes_on(study):
    results = newest(study, "ablation_results")
    diverged = [r for r in results if r["variant"] == "cold_none"]
    assert len(diverged) == 3 and all(r["diverged"] for r in diverged)
    for r in diverged:
        assert r["divergence"]["lr"] > 100 and r["divergence"]["step"] >= 1 and r["divergence"]["layer"]
        assert r["test_accuracy"] is None and r["lr_per_step"][-1] == r["divergence"]["lr"]
    assert newest(study, "ablation_summary")["studies"]["warmup_lr_norm"]["variants"]["cold_none"]["n_diverged"] == 3


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
    assert trained == {f"ablation.activation_lr.gelu_lr_low.seed_{s}.train_and_evaluate_run" for s in (0, 1, 2)}
    assert "split_train_val" not in ran and "build_ablation_report" in ran
    summary = newest(study_copy, "ablation_summary")
    assert summary["runs"] == 33 != first_summary["runs"]
    gelu = summary["studies"]["activation_lr"]["variants"]["gelu_lr_low"]
    assert gelu["runs"] == 3 and gelu["dead_unit_fraction"]["n"] == 0  # GELU is never exactly off


def trained_runs(project) -> set[str]:
    ran = [row["node"] for row in newest(project, "run_profile")["nodes"]]
    return {name.removesuffix(".train_and_evaluate_run") for name in ran if name.endswith(".train_and_evaluate_run")}


@pytest.mark.slow
def test_a_row_made_under_other_parameters_is_trained_again_never_reused(study_copy, caplog):
    rows_before = {r["namespace"]: r for r in newest(study_copy, "ablation_results")}
    with caplog.at_level("INFO"):
        run_study(study_copy, f"{DIVERGE},ablation.studies.warmup_lr_norm.max_steps=24", only_missing_outputs=True)
    stepped = {ns for ns in rows_before if ns.startswith("ablation.warmup_lr_norm.")}
    assert trained_runs(study_copy) == stepped and len(stepped) == 12  # the other studies' rows stay
    assert "12 of 30 saved rows are stale and will be trained again (12 made with other settings: " \
           "cnn.training.max_steps 20 -> 24)" in caplog.text
    after = {r["namespace"]: r for r in newest(study_copy, "ablation_results")}
    assert all(after[ns]["diverged"] or after[ns]["steps"] == 24 for ns in stepped)
    assert all(after[ns] == rows_before[ns] for ns in set(rows_before) - stepped)


@pytest.mark.slow
def test_a_row_made_in_another_env_is_trained_again(study_copy):
    other = study_copy / "conf/smoke_other"
    shutil.copytree(study_copy / "conf/smoke", other)
    text = (other / "parameters_ablation.yml").read_text()
    (other / "parameters_ablation.yml").write_text(text.replace("hidden_units: 32", "hidden_units: 24").replace(
        "studies_to_run: [aa_control, activation_lr, warmup_lr_norm]", "studies_to_run: aa_control"))
    run_study(study_copy, env="smoke_other", only_missing_outputs=True)
    assert len(trained_runs(study_copy)) == 6
    assert {r["made_with"]["cnn"]["model"]["hidden_units"] for r in newest(study_copy, "ablation_results")} == {24}


@pytest.mark.slow
def test_changing_only_the_verdict_settings_rebuilds_the_summary_without_training(study_copy):
    summaries = sorted((study_copy / "data/08_reporting").glob("ablation_summary.json/*"))
    run_study(study_copy, f"{DIVERGE},ablation.alpha=0.2", only_missing_outputs=True)
    ran = [row["node"] for row in newest(study_copy, "run_profile")["nodes"]]
    assert not trained_runs(study_copy) and "summarise_ablation" in ran and "build_ablation_report" in ran
    assert len(sorted((study_copy / "data/08_reporting").glob("ablation_summary.json/*"))) == len(summaries) + 1
    assert newest(study_copy, "ablation_summary")["alpha"] == 0.2
    run_study(study_copy, f"{DIVERGE},ablation.alpha=0.2", only_missing_outputs=True)  # nothing to do
    assert len(sorted((study_copy / "data/08_reporting").glob("ablation_summary.json/*"))) == len(summaries) + 1


@pytest.mark.slow
def test_a_warmup_longer_than_a_run_is_refused_before_any_run_trains(study_copy):
    result = kedro(study_copy, "run", "--env", "smoke", "--pipelines", "ablation", "--only-missing-outputs",
                   "--params", "ablation.studies.aa_control.overrides.training.warmup=60", check=False)
    assert result.returncode == 1
    assert ("Error: ablation.studies.aa_control.variants.config_a (400 training images): "
            "cnn.training.warmup=60.0 steps (60 steps) is not shorter than training (4 epochs x 12 "
            "steps = 48 steps)") in result.stderr
    assert "train_and_evaluate_run" not in "".join(
        line for line in (result.stdout + result.stderr).splitlines() if "Running node" in line)


@pytest.mark.slow
def test_a_studys_repeated_seed_is_refused_at_session_start_naming_the_key(project):
    bootstrap_project(project)
    with KedroSession.create(project_path=project, env="smoke",
                             runtime_params={"ablation": {"studies": {"amp": {"seeds": [1, 1]}}}}) as session, \
            pytest.raises(Exception, match=r"ablation.studies.amp.seeds=\[1, 1\]: .*seeds repeat"):
        session.run(pipeline_names=["ablation"])


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
    shown = figures.report_figures(rows, TrainConfig())
    assert "Augmentation preset x training-set size" in shown
    assert "Accuracy vs batch size per normalisation" not in shown and "Dead units per layer" not in shown
    page = ablation_html(summary, {"max_steps": 200}, shown)
    assert "heavy beats none" in page and "Supported: heavy_1 against none_1 on test accuracy" in page
    assert "50.5% ± 0.7%" in page and "max steps: 200" in page
    assert "<td>0</td><td>0.5000</td><td>0.4000</td><td>+10.00</td>" in page  # seed 0's pair
    assert "100 / 1,000 training images, batch 8, 300 steps: 2.0 passes" in page
    assert "Preview at a short budget" in ablation_html({**summary, "preview": True}, {}, {})
    forest = figures.forest(summary)
    assert forest.axes[0].get_yticklabels()[0].get_text() == "aug (test accuracy)"
    (line,) = [c for c in forest.axes[0].containers]
    assert line.lines[0].get_xdata()[0] == pytest.approx(10.0)  # points, the claimed direction


# ------------------------------------------------------------------ one run's row, no training
def tiny_run():
    """A seeded, untrained tiny CNN with half its head's hidden units dead, 8x8 images, and its
    row's inputs: labels made so that the model is right on the selection images and the
    training part, and wrong on the reported ones."""
    from simple_cnn.ablation.parts import shuffled_part
    from simple_cnn.inference import describe_model, inference, model_config, normaliser
    from simple_cnn.models.simple_cnn import SimpleCNN

    rng = np.random.default_rng(0)
    params = CnnParams.model_validate({
        "model": {"base_width": 4, "num_blocks": 2, "hidden_units": 8, "norm": "none"},
        "training": {"device": "cpu", "amp": "off", "max_steps": 10, "batch_size": 4},
        "evaluation": {"flip_tta": False}})
    names = [f"c{i}" for i in range(4)]
    summary = {"class_names": names, "image_shape": [8, 8, 3], "train_pixel_mean": [0.5] * 3,
               "train_pixel_std": [0.25] * 3, "fingerprint": "splits"}
    torch.manual_seed(0)
    config = model_config(params, summary)
    model = SimpleCNN(config)
    with torch.no_grad():
        model.head[1].bias[:4] = -1e4  # 4 of the head's 8 hidden units never fire
    state = model.state_dict()
    described = {"training": {}, **describe_model(config, names, normaliser(params, summary, config))}
    clean = inference({"state_dict": state, **described}, "cpu")

    def split(n):
        images = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
        return {"images": images, "labels": clean.logits(images, 64).argmax(1).numpy()}

    train, test = split(40), split(30)
    val = split(24)
    order = np.random.default_rng(0).permutation(24)  # the parts' fixed shuffle
    val["labels"][order[10:20]] = (val["labels"][order[10:20]] + 1) % 4  # the reported part: wrong
    ablation_params = AblationParams.model_validate({
        "seeds": [0], "val_images": 10, "report_images": 10, "test_images": 30, "budget_points": [0.5, 1.0],
        "studies": {"norm": {**STUDY, "test": {"metric": "gap", "better": "b", "than": "a"}}}})
    history = {"kept_steps": {0.5: 5, 1.0: 10}, "lr_per_step": [0.1] * 10, "train_seconds": 2.0,
               "best_epoch": 1, "epoch": [1], "stopped_early": False, "skipped_steps": [0],
               "device": "cpu", "amp": "off", "augmentation": "standard"}
    outcome = {"model": {"state_dict": state, **described, "kept": {0.5: state, 1.0: state}},
               "history": history, "divergence": None}
    assert shuffled_part(val, 10)["labels"].tolist() == \
        clean.logits(shuffled_part(val, 10)["images"], 64).argmax(1).tolist()
    return outcome, train, val, test, summary, params, ablation_params, model


def test_a_row_reports_images_that_did_not_pick_the_weights_and_the_gap_as_train_minus_val():
    from simple_cnn.pipelines.ablation.nodes import record_run

    outcome, train, val, test, summary, params, ablation_params, _ = tiny_run()
    row = record_run(outcome, train, val, test, summary, params, ablation_params, run=Run("norm", "b", 0))
    assert row["val_accuracy"] == 0.0  # the reported part; the selection part scores 1.0
    assert row["train_accuracy"] == 1.0 and row["gap"] == 1.0
    assert row["test_accuracy"] == 1.0 and row["chance"] == 0.25 and not row["diverged"]
    assert set(row["along_budget"]["0.5"]) == {"step", "gap", "train_accuracy", "val_accuracy",
                                                "dead_units", "dead_unit_fraction"}  # the claim's metric
    assert row["along_budget"]["0.5"]["step"] == 5 and "test_accuracy" in row["along_budget"]["1.0"]
    assert (row["steps"], row["passes"], row["images_per_second"]) == (10, 1.0, 20.0)
    assert row["budget"] == {"unit": "steps", "length": 300, "patience": 0} and row["n_train"] == 40
    assert row["made_with"]["splits"] == "splits" and row["made_with"]["cnn"]["training"]["max_steps"] == 10
    assert "progress_bar" not in row["made_with"]["cnn"]["training"]


def test_the_dead_unit_fraction_counts_units_not_layers():
    from simple_cnn.pipelines.ablation.nodes import record_run
    from simple_cnn.training.diagnostics import dead_fraction_of_all_units, dead_unit_counts

    outcome, train, val, test, summary, params, ablation_params, model = tiny_run()
    row = record_run(outcome, train, val, test, summary, params, ablation_params, run=Run("norm", "b", 0))
    assert list(row["dead_units"]) == ["features.0.act", "features.1.act", "head.2"]
    assert row["dead_units"]["head.2"] >= 0.5  # the 4 killed, and any the random start killed
    units = 4 + 8 + 8  # two conv layers of 4 and 8 channels, 8 hidden units
    dead = sum(round(f * n) for f, n in zip(row["dead_units"].values(), (4, 8, 8)))
    assert row["dead_unit_fraction"] == pytest.approx(dead / units)
    assert row["dead_unit_fraction"] != pytest.approx(np.mean(list(row["dead_units"].values())))
    assert dead_fraction_of_all_units({"a": (1, 16), "b": (0, 128)}) == pytest.approx(1 / 144)
    assert dead_fraction_of_all_units(None) is None
    counts = dead_unit_counts(nn.Sequential(nn.Flatten(), nn.Linear(3, 2), nn.ReLU()), torch.ones(5, 3))
    assert set(counts) == {"2"} and counts["2"][1] == 2


def test_a_diverged_run_is_a_row_that_says_where():
    from simple_cnn.pipelines.ablation.nodes import record_run

    _, train, val, test, summary, params, ablation_params, _ = tiny_run()
    outcome = {"model": None, "history": None,
               "divergence": {"message": "nan", "step": 7, "lr": 3.0, "layer": "head", "lr_per_step": [1, 2, 3]}}
    row = record_run(outcome, train, val, test, summary, params, ablation_params, run=Run("norm", "a", 0))
    assert row["diverged"] and row["steps"] == 7 and row["lr_per_step"] == [1, 2, 3]
    assert row["divergence"] == {"message": "nan", "step": 7, "lr": 3.0, "layer": "head"}
    assert row["test_accuracy"] is None and row["along_budget"] is None and not row["converged"]


def test_a_row_is_stale_when_anything_that_made_it_changed():
    from simple_cnn.ablation.rows import fingerprint, provenance, stale_reason

    params = CnnParams()
    made = provenance(params, ablation(), {"fingerprint": "abc"})
    row = {"made_with": made, "fingerprint": fingerprint(made)}
    assert stale_reason(row, made) is None and stale_reason(None, made) == "no row"
    longer = provenance(params.model_copy(update={"training": params.training.model_copy(
        update={"max_steps": 30})}), ablation(), {"fingerprint": "abc"})
    assert stale_reason(row, longer) == "made with other settings: cnn.training.max_steps None -> 30"
    other_data = provenance(params, ablation(), {"fingerprint": "xyz"})
    assert stale_reason(row, other_data) == "made with other settings: splits 'abc' -> 'xyz'"
    other_eval = provenance(params, ablation(test_images=100), {"fingerprint": "abc"})
    assert "evaluation.test_images 5000 -> 100" in stale_reason(row, other_eval)
    assert stale_reason({"fingerprint": "x"}, made).startswith("a row of an older format")
    quiet = params.model_copy(update={"training": params.training.model_copy(update={"progress_bar": False})})
    assert stale_reason(row, provenance(quiet, ablation(), {"fingerprint": "abc"})) is None


def test_a_stale_output_keeps_its_dataset_for_tracking():
    from kedro_datasets.json import JSONDataset

    from simple_cnn.hooks import _Stale
    from simple_cnn.tracking.hooks import _unwrapped

    dataset = JSONDataset(filepath="x.json", metadata={"mlflow": "artifact"})
    stale = _Stale(dataset)
    assert not stale.exists() and stale.metadata == {"mlflow": "artifact"} and _unwrapped(stale) is dataset


def test_the_run_length_check_uses_the_training_part_of_the_split():
    from simple_cnn.ablation.studies import check_run_length

    counts = {f"c{i}": 100 for i in range(10)}
    params = CnnParams.model_validate({"training": {"fraction": 0.1, "batch_size": 20, "epochs": 2,
                                                    "warmup": 100, "warmup_unit": "steps"}})
    with pytest.raises(ConfigError, match=r"^here \(100 training images\): cnn.training.warmup=100.0 steps"):
        check_run_length(params, counts, "here")
    check_run_length(params.model_copy(update={"training": params.training.model_copy(update={"warmup": 9})}),
                     counts, "here")
    stepped = CnnParams.model_validate({"training": {"scheduler": "step", "step_size_epochs": 5, "epochs": 4,
                                                     "warmup": 1, "batch_size": 10}})
    with pytest.raises(ConfigError, match=r"step_size_epochs=5 \(500 steps\) is not shorter than the run \(400 steps\)"):
        check_run_length(stepped, counts, "there")


def test_configure_run_checks_the_run_against_the_splits_before_it_trains():
    from simple_cnn.pipelines.ablation.nodes import RunNodes

    summary = {"counts": {"train": {"per_class": {"a": 50, "b": 50}, "total": 100},
                          "val": {"total": 30}, "test": {"total": 40}}}
    params = ablation(val_images=10, report_images=20, test_images=40, max_steps=8,
                      base={"training": {"batch_size": 10, "warmup": 2, "warmup_unit": "steps"}})
    in_epochs = ablation(studies={"norm": {**STUDY, "epochs": 2}},  # 2 x 10 steps: known from the data only
                         base={"training": {"batch_size": 10, "warmup": 25, "warmup_unit": "steps"}})
    nodes = RunNodes(Run("norm", "b", 3))
    run = nodes.configure_run(CnnParams(), params, summary)
    assert run.model.norm == "group" and (run.training.seed, run.training.max_steps) == (3, 8)
    assert nodes.configure_run(CnnParams().model_dump(), params.model_dump(), summary) == run  # plain dicts too
    with pytest.raises(ConfigError, match=r"val_images=10 \+ ablation.report_images=21 = 31 exceed "
                                          r"the validation split \(30 images\)"):
        nodes.configure_run(CnnParams(), params.model_copy(update={"report_images": 21}), summary)
    with pytest.raises(ConfigError, match=r"ablation.test_images=41 exceeds the test split \(40 images\)"):
        nodes.configure_run(CnnParams(), params.model_copy(update={"test_images": 41}), summary)
    with pytest.raises(ConfigError, match=r"^ablation.studies.norm.variants.b \(100 training images\): "
                                          r"cnn.training.warmup=25.0 steps \(25 steps\) is not shorter than "
                                          r"training \(2 epochs x 10 steps = 20 steps\)"):
        nodes.configure_run(CnnParams(), in_epochs, summary)


def tiny_splits(n=48):
    rng = np.random.default_rng(1)
    make = lambda k: {"images": rng.integers(0, 256, (k, 8, 8, 3), dtype=np.uint8),  # noqa: E731
                      "labels": np.arange(k) % 4}
    summary = {"class_names": ["a", "b", "c", "d"], "image_shape": [8, 8, 3],
               "train_pixel_mean": [0.5] * 3, "train_pixel_std": [0.25] * 3}
    return make(n), make(24), summary


def tiny_params(**training):
    return CnnParams.model_validate({
        "model": {"base_width": 4, "num_blocks": 2, "hidden_units": 8},
        "augmentation": {"preset": "none"},
        "training": {"device": "cpu", "amp": "off", "max_steps": 8, "batch_size": 8, "warmup": 0,
                     "progress_bar": False, **training}})


def test_train_run_picks_on_the_selection_images_and_keeps_every_budget_point(tmp_path):
    from simple_cnn.pipelines.ablation.nodes import train_run

    train, val, summary = tiny_splits()
    params = ablation(val_images=10, report_images=10, budget_points=[0.25, 0.5, 1.0])
    outcome = train_run(train, val, summary, tmp_path / "last.pt", tiny_params(), params)
    assert outcome["divergence"] is None and sorted(outcome["model"]["kept"]) == [0.25, 0.5, 1.0]
    assert outcome["history"]["kept_steps"] == {0.25: 2, 0.5: 4, 1.0: 8}
    assert len(outcome["history"]["lr_per_step"]) == 8
    diverged = train_run(train, val, summary, tmp_path / "nan.pt", tiny_params(lr=1e12), params)
    assert diverged["model"] is None and diverged["divergence"]["step"] >= 1
    assert "Loss became" in diverged["divergence"]["message"]


def test_the_summary_node_states_the_budget_and_the_figure_nodes_draw():
    from matplotlib.figure import Figure

    from simple_cnn.pipelines.ablation import nodes

    rows = records_of([0.5, 0.52, 0.55], [0.59, 0.62, 0.66])
    for row in rows:
        row.update(device="cpu", amp="off", train_seconds=1.5, dead_units=None, lr_per_step=[0.1])
    results, summary = nodes.summarise_ablation(ablation(test_images=300, preview=True), *rows)
    assert results == rows and summary["preview"] is True
    assert summary["budget"] == {"seeds": [0, 1, 2], "selection images": 500, "reported images": 1000,
                                 "test images": 300, "budget points": [0.125, 0.25, 0.5, 1.0],
                                 "device": ["cpu"], "amp": ["off"], "train seconds total": 9.0}
    for draw in (nodes.plot_ablation_augmentation_heatmap, nodes.plot_ablation_dead_units,
                 nodes.plot_ablation_batch_size, nodes.plot_ablation_warmup_lr):
        assert isinstance(draw(rows), Figure)
    assert isinstance(nodes.plot_ablation_accuracy(summary), Figure)
    page = nodes.build_ablation_report(summary, rows, CnnParams())
    assert "Preview at a short budget" in page and "A hand-rolled warmup wrapper" in page


def test_a_row_carries_what_identifies_it_and_a_diverged_row_the_same_keys():
    from simple_cnn.pipelines.ablation.nodes import record_run

    outcome, train, val, test, summary, params, ablation_params, _ = tiny_run()
    run = Run("norm", "b", 0)
    row = record_run(outcome, train, val, test, summary, params, ablation_params, run=run)
    assert (row["study"], row["variant"], row["seed"], row["train_seed"]) == ("norm", "b", 0, 0)
    assert row["namespace"] == "ablation.norm.b.seed_0" and row["factors"] == {"model.norm": "group"}
    assert (row["best_epoch"], row["epochs"], row["converged"], row["train_seconds"]) == (1, 1, False, 2.0)
    assert (row["skipped_steps"], row["device"], row["amp"], row["augmentation"]) == (0, "cpu", "off", "standard")
    assert row["lr_per_step"] == [0.1] * 10 and row["batch_size"] == 4 and row["divergence"] is None
    diverged = record_run({"model": None, "history": None, "divergence": {"message": "nan", "step": 3}},
                          train, val, test, summary, params, ablation_params, run=run)
    assert set(diverged) == set(row)  # every score is there, None
    assert all(diverged[k] is None for k in ("test_accuracy", "macro_f1", "train_accuracy", "val_accuracy",
                                              "gap", "best_epoch", "epochs", "passes", "train_seconds",
                                              "images_per_second", "skipped_steps", "device", "amp",
                                              "augmentation", "dead_units", "dead_unit_fraction"))


def test_the_evaluation_parts_are_disjoint_sized_and_every_one_shuffled_the_same_way():
    from simple_cnn.ablation.parts import evaluation_parts, shuffled_part

    split = lambda n: {"images": np.arange(n)[:, None], "labels": np.arange(n)}  # noqa: E731
    params = ablation(val_images=5, report_images=7, test_images=9)
    parts = evaluation_parts(split(30), split(20), split(40), params)
    assert {k: len(v["labels"]) for k, v in parts.items()} == {"selection": 5, "report": 7, "train": 7, "test": 9}
    assert not set(parts["selection"]["labels"]) & set(parts["report"]["labels"])
    order = np.random.default_rng(0).permutation(20)
    assert parts["selection"]["labels"].tolist() == order[:5].tolist()
    assert parts["report"]["labels"].tolist() == order[5:12].tolist()
    assert parts["train"]["labels"].tolist() == np.random.default_rng(0).permutation(30)[:7].tolist()
    assert parts["test"]["labels"].tolist() == shuffled_part(split(40), 9)["labels"].tolist()
    assert (parts["test"]["images"][:, 0] == parts["test"]["labels"]).all()  # images follow their labels


def test_train_and_evaluate_run_is_one_run_s_row(tmp_path):
    from simple_cnn.pipelines.ablation.nodes import RunNodes

    train, val, summary = tiny_splits()
    test = {"images": train["images"][:20], "labels": train["labels"][:20]}
    summary = {**summary, "fingerprint": "f"}
    params = ablation(val_images=10, report_images=10, test_images=20, budget_points=[0.5, 1.0])
    row = RunNodes(Run("norm", "a", 0)).train_and_evaluate_run(
        train, val, test, summary, tmp_path / "last.pt", tiny_params(), params.model_dump())
    assert row["namespace"] == "ablation.norm.a.seed_0" and not row["diverged"] and row["steps"] == 8
    assert set(row["along_budget"]) == {"0.5", "1.0"} and 0 <= row["test_accuracy"] <= 1


def test_why_a_row_is_stale_lists_at_most_three_changes():
    from simple_cnn.ablation.rows import stale_reason

    made = {"format": 2, "a": 1, "b": {"c": 2, "d": 3}, "e": 4, "f": 5}
    row = {"made_with": made, "fingerprint": "old"}
    changed = {"format": 2, "a": 9, "b": {"c": 8, "d": 7}, "e": 6, "f": 5}
    assert stale_reason(row, changed) == "made with other settings: a 1 -> 9, b.c 2 -> 8, b.d 3 -> 7 and 1 more"
    assert stale_reason({"made_with": {"format": 1}, "fingerprint": "x"}, made).startswith("a row of an older")


# ------------------------------------------- what the second mutation round found unguarded
def test_stale_reasons_name_new_keys_changed_types_and_an_unexplained_fingerprint():
    from simple_cnn.ablation.rows import fingerprint, stale_reason

    made = {"format": 2, "a": {"x": 1}, "b": 1, "c": 1}
    three = {"format": 2, "a": 5, "b": 2}  # a dict became a number, c went
    row = {"made_with": made, "fingerprint": fingerprint(made)}
    assert stale_reason(row, three) == ("made with other settings: a {'x': 1} -> 5, b 1 -> 2, "
                                        "c 1 -> None")  # three changes: no "and 0 more"
    assert stale_reason(row, {**made, "d": 1}) == "made with other settings: d None -> 1"
    tampered = {"made_with": made, "fingerprint": "not its hash"}
    assert stale_reason(tampered, made) == "made with other settings: ?"


def test_a_step_decay_as_long_as_the_run_is_refused():
    counts = {f"c{i}": 100 for i in range(10)}
    exact = CnnParams.model_validate({"training": {"scheduler": "step", "step_size_epochs": 4,
                                                   "epochs": 4, "warmup": 1, "batch_size": 10}})
    with pytest.raises(ConfigError, match=r"\(400 steps\) is not shorter than the run \(400 steps\), "
                                          r"so the step decay never happens; shorten it or use "
                                          r"another scheduler\.$"):
        check_run_length(exact, counts, "here")


def test_a_run_keeps_the_cnn_parameters_that_no_study_sets():
    base = CnnParams.model_validate({"model": {"base_width": 24}, "training": {"lr": 0.07}})
    run = run_parameters(base.model_dump(), ablation(), Run("norm", "b", 1))
    assert (run.model.base_width, run.training.lr, run.model.norm) == (24, 0.07, "group")


def test_typed_keeps_a_model_and_validates_a_dict():
    from simple_cnn.pipelines.ablation.nodes import _typed

    params = ablation()
    assert _typed(params, AblationParams) is params
    assert _typed(params.model_dump(), AblationParams) == params


def test_the_parts_check_says_how_to_fix_it():
    from simple_cnn.pipelines.ablation.nodes import _check_parts

    counts = {"val": {"total": 30}, "test": {"total": 40}}
    with pytest.raises(ConfigError) as error:
        _check_parts(ablation(val_images=20, report_images=20, test_images=10), counts)
    assert str(error.value) == (
        "ablation.val_images=20 + ablation.report_images=20 = 40 exceed the validation split (30 "
        "images): the images that pick each run's best epoch and those reported must not overlap; "
        "lower them or raise ingestion.val_size.")
    _check_parts(ablation(val_images=10, report_images=20, test_images=40), counts)  # exactly fits


def test_train_run_selects_the_first_val_images_and_returns_a_divergence(tmp_path, monkeypatch, caplog):
    from simple_cnn.ablation.parts import shuffled_part
    from simple_cnn.errors import NonFiniteLossError
    from simple_cnn.pipelines.ablation import nodes

    train, val, summary = tiny_splits()
    seen = {}

    def fake_train(train_split, selection, *args, **kwargs):
        seen["selection"], seen["keep_at"] = selection, kwargs["keep_at"]
        raise NonFiniteLossError("Loss became nan at step 3", step=3, lr=0.5)

    monkeypatch.setattr(nodes, "train_cnn", fake_train)
    params = ablation(val_images=7, report_images=10, budget_points=[0.5, 1.0])
    with caplog.at_level("WARNING"):
        outcome = nodes.train_run(train, val, summary, tmp_path / "x.pt", tiny_params(), params)
    assert outcome == {"model": None, "history": None,
                       "divergence": {"message": "Loss became nan at step 3", "step": 3, "lr": 0.5}}
    assert seen["selection"]["labels"].tolist() == shuffled_part(val, 7)["labels"].tolist()
    assert len(seen["selection"]["images"]) == 7 and seen["keep_at"] == (0.5, 1.0)
    assert "Diverged: Loss became nan at step 3" in caplog.messages


def test_a_rows_gap_is_train_minus_a_nonzero_val_and_macro_f1_is_recorded():
    from simple_cnn.pipelines.ablation.nodes import _scores

    outcome, train, val, test, summary, params, ablation_params, _ = tiny_run()
    from simple_cnn.ablation.parts import evaluation_parts
    from simple_cnn.training.run import training_part

    parts = evaluation_parts(training_part(train, params.training), val, test, ablation_params)
    half = len(parts["report"]["labels"]) // 2
    parts["report"]["labels"][:half] = (parts["report"]["labels"][:half] - 1) % 4  # back to right
    model = outcome["model"]
    scores = _scores(model, parts, summary, params)
    assert scores["val_accuracy"] == 0.5 and scores["gap"] == 0.5
    assert scores["macro_f1"] == 1.0 and scores["test_accuracy"] == 1.0
    only = _scores(model, parts, summary, params, {"train_seconds"})  # a metric that needs no part
    assert only == {}


def test_a_model_without_relus_has_no_dead_units():
    from simple_cnn.ablation.parts import evaluation_parts
    from simple_cnn.inference import describe_model, model_config, normaliser
    from simple_cnn.models.simple_cnn import SimpleCNN
    from simple_cnn.pipelines.ablation.nodes import _scores

    _, train, val, test, summary, params, ablation_params, _ = tiny_run()
    gelu = params.model_copy(update={"model": params.model.model_copy(update={"activation": "gelu"})})
    config = model_config(gelu, summary)
    model = {"state_dict": SimpleCNN(config).state_dict(), "training": {},
             **describe_model(config, summary["class_names"], normaliser(gelu, summary, config))}
    parts = evaluation_parts(train, val, test, ablation_params)
    scores = _scores(model, parts, summary, gelu, {"dead_unit_fraction"})
    assert scores["dead_units"] is None and scores["dead_unit_fraction"] is None


def test_the_summary_node_rounds_the_seconds_and_logs_each_verdict(caplog):
    from simple_cnn.pipelines.ablation import nodes

    rows = records_of([0.5, 0.52, 0.55], [0.59, 0.62, 0.66])
    for row, seconds in zip(rows, (1.234, 2.345, 1.0, 1.0, 1.0, 1.0)):
        row.update(device="cpu", amp="off", train_seconds=seconds, dead_units=None, lr_per_step=[0.1])
    with caplog.at_level("INFO"):
        _, summary = nodes.summarise_ablation(ablation(), *rows)
    assert summary["budget"]["train seconds total"] == 7.6  # 7.579, to 0.1 s
    study = summary["studies"]["norm"]
    assert f"Study norm: {study['verdict']} ({study['reason']})" in caplog.messages


def test_describe_and_score_at_the_edges():
    from simple_cnn.ablation.summary import describe, score, verdict_rule

    assert describe([]) == {"mean": None, "std": None, "n": 0}
    assert describe([0.25]) == {"mean": 0.25, "std": 0.0, "n": 1}
    assert describe([1.0, 2.0]) == {"mean": 1.5, "std": pytest.approx(0.7071, abs=1e-4), "n": 2}
    row = {"diverged": False, "test_accuracy": 0.6, "along_budget": {"0.5": {"test_accuracy": 0.4}}}
    assert score(row, "diverged", "0.5") == 0.0 and score(row, "test_accuracy", "0.5") == 0.4
    assert "with a 95% Student-t interval" in verdict_rule(ablation())
    assert "with a 90% Student-t interval" in verdict_rule(ablation(alpha=0.1))


def test_fingerprints_ignore_key_order_and_see_every_row_and_setting():
    from simple_cnn.ablation.rows import fingerprint
    from simple_cnn.ablation.summary import summary_inputs

    assert fingerprint({"a": 1, "b": {"c": 2, "d": 3}}) == fingerprint({"b": {"d": 3, "c": 2}, "a": 1})
    assert len(fingerprint({"a": 1})) == 16 and fingerprint({"a": 1}) != fingerprint({"a": 2})
    rows = [{"fingerprint": "x1"}, {"fingerprint": "x2"}]
    base = summary_inputs(ablation(), rows)
    assert len(base) == 16 and base == summary_inputs(ablation(), rows[::-1])  # order of rows: no
    assert base != summary_inputs(ablation(), [{"fingerprint": "x1"}, {"fingerprint": "x3"}])
    assert base != summary_inputs(ablation(alpha=0.1), rows)
    assert summary_inputs(ablation(), [{}]) == summary_inputs(ablation(), [{"fingerprint": ""}])
    assert summary_inputs(ablation(), [{}]) != summary_inputs(ablation(), [{"fingerprint": "x"}])
    import hashlib

    made_of = {"ablation": ablation().model_dump(mode="json"), "rows": ["x1", "x2"]}
    assert base == hashlib.sha256(json.dumps(made_of, sort_keys=True).encode()).hexdigest()[:16]


def test_provenance_names_the_evaluation_settings():
    from simple_cnn.ablation.rows import provenance

    made = provenance(CnnParams(), ablation(val_images=10, report_images=20, test_images=30,
                                            budget_points=[0.5, 1.0]), {"fingerprint": "s"})
    assert made["evaluation"] == {"val_images": 10, "report_images": 20, "test_images": 30,
                                  "budget_points": [0.5, 1.0]}
    assert made["format"] == 2 and made["splits"] == "s"
    assert json.loads(json.dumps(made)) == made  # plain JSON values: what a saved row reads back


def test_paired_differences_sign_missing_seeds_left_out_pairs_and_the_point():
    from simple_cnn.ablation.summary import paired_differences

    def row(seed, value, at_half, diverged=False):
        return {"seed": seed, "diverged": diverged, "chance": 0.1, "dead_unit_fraction": value,
                "test_accuracy": value, "along_budget": {"0.5": {"test_accuracy": at_half}}}

    better = [row(0, 0.1, 0.0), row(1, 0.2, 0.0), row(2, 0.3, 0.0), row(3, None, 0.0)]
    than = [row(1, 0.5, 0.4), row(2, 0.25, 0.2), row(3, 0.6, 0.6)]  # no seed 0
    pairs, left_out = paired_differences(better, than, "dead_unit_fraction")  # lower is better
    assert [(p["seed"], round(p["difference"], 6)) for p in pairs] == [(1, 0.3), (2, -0.05)]
    assert left_out == 1
    two_missing = [*better, row(4, None, 0.0)]
    assert paired_differences(two_missing, [*than, row(4, 0.1, 0.1)], "dead_unit_fraction")[1] == 2
    at_half, _ = paired_differences(better, than, "test_accuracy", "0.5")
    assert [(p["better"], p["than"]) for p in at_half] == [(0.0, 0.4), (0.0, 0.2), (0.0, 0.6)]


def test_paired_test_of_one_or_no_difference_and_the_rule_at_its_boundaries():
    from simple_cnn.ablation.summary import decide, paired_test

    assert paired_test([0.3], 0.05) == {"n": 1, "mean": 0.3, "interval": None, "p": None}
    assert paired_test([], 0.05) == {"n": 0, "mean": None, "interval": None, "p": None}
    rule = ablation(alpha=0.05, min_difference=0.01)
    test = {"n": 3, "mean": 0.01, "interval": [0.005, 0.015]}
    assert decide(test, 0.05, rule, False)[0] == "inconclusive"  # p must be below alpha
    verdict, reason = decide(test, 0.01, rule, False)
    assert verdict == "supported"  # the mean at the minimum difference is enough
    assert reason == ("mean difference +0.01 in the claimed direction, interval [+0.005, +0.015], "
                      "adjusted p 0.01")
    assert decide({"n": 3, "mean": 0.0, "interval": [0.0, 0.0]}, 0.01, rule, False)[0] != "contradicted"


def test_the_summary_states_its_settings_and_each_regime():
    rows = records_of([0.5, 0.52, 0.55], [0.59, 0.62, 0.66])
    rows[0].update(converged=True, passes=4.0, steps=50)
    rows.append(record("a", None, 3, diverged=True))
    summary = summarise(rows, ablation(min_difference=0.02, budget_points=[0.5, 1.0]))
    assert (summary["min_difference"], summary["budget_points"]) == (0.02, [0.5, 1.0])
    from simple_cnn.ablation.summary import summary_inputs

    assert summary["inputs"] == summary_inputs(ablation(min_difference=0.02, budget_points=[0.5, 1.0]), rows)
    study = summary["studies"]["norm"]
    assert study["regime"] == {"budget": {"unit": "steps", "length": 300, "patience": 0},
                               "n_train": [100], "batch_size": [8], "passes": pytest.approx(2 + 2 / 6),
                               "steps": pytest.approx(25 + 25 / 6), "converged": 1, "finished": 6,
                               "runs": 7}
    assert all("pairs" not in point for point in study["along_budget"])
    assert study["variants"]["a"]["diverged"]["mean"] == 0.25  # the diverged run counts here
    assert study["variants"]["a"]["test_accuracy"]["n"] == 3  # and not here


def test_a_seed_at_the_top_of_the_range_is_allowed_and_the_message_names_the_range():
    from simple_cnn.ablation.studies import _check_seeds
    from simple_cnn.training.config import SEED_RANGE

    assert _check_seeds([SEED_RANGE[0], SEED_RANGE[1]]) == [SEED_RANGE[0], SEED_RANGE[1]]
    with pytest.raises(ValueError, match=rf"^every seed must be in {SEED_RANGE[0]}\.\.{SEED_RANGE[1]}$"):
        _check_seeds([SEED_RANGE[1] + 1])
