"""The ablation study's pipeline: one run's row, the nodes, the summary, report and figures,
and the smoke study through a Kedro session (rounds that stop where a claim is decided,
resume, stale rows, divergence) and the CLI's refusals."""

import html
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from torch import nn

from simple_cnn.ablation.runs import check_run_length
from simple_cnn.ablation.sequential import MissingMetric, score
from simple_cnn.ablation.studies import AblationParams, Run
from simple_cnn.ablation.summary import summarise
from simple_cnn.ablation.warmup_pitfall import lr_traces
from simple_cnn.data.raw import stratified_subset
from simple_cnn.errors import ConfigError
from simple_cnn.parameters import CnnParams
from simple_cnn.params import merged
from simple_cnn.training.config import TrainConfig
from simple_cnn.training.diagnostics import dead_units
from tests.conftest import DIVERGE, kedro, nested, newest, run_study
from tests.test_ablation_design import rows_of

STUDY = {"claim": "b beats a", "test": {"metric": "test_accuracy", "better": "b", "than": "a"},
         "variants": {"a": {"model": {"norm": "batch"}}, "b": {"model": {"norm": "group"}}}}


def ablation(**changes) -> AblationParams:
    return AblationParams.model_validate({"studies": {"norm": STUDY}, "seeds": [0, 1, 2], "looks": [3], **changes})


def norm_rows(d_points, **extra):
    rows = [{**r, "study": "norm", "namespace": r["namespace"].replace(".one.", ".norm."),
             "chance": 0.1, **extra} for r in rows_of("one", d_points)]
    return rows


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




# ------------------------------------------------------------------ one run's row, no training
def tiny_run():
    """A seeded, untrained tiny CNN with half its head's hidden units dead, 8x8 images, and its
    row's inputs: labels made so that the model is right on the selection images and the
    training part, and wrong on the reported ones."""
    from simple_cnn.ablation.parts import shuffled_part
    from simple_cnn.inference import inference
    from simple_cnn.model_format import describe_model, model_config, normaliser
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
        "seeds": [0, 1], "looks": [2], "val_images": 10, "report_images": 10, "test_images": 30,
        "budget_points": [0.5, 1.0],
        "studies": {"norm": {**STUDY, "test": {"metric": "gap", "better": "b", "than": "a"}}}})
    history = {"kept_steps": {0.5: 5, 1.0: 10}, "lr_per_step": [0.1] * 10, "train_seconds": 2.0,
               "best_epoch": 1, "epoch": [1], "stopped_early": False, "skipped_steps": [0],
               "device": "cpu", "amp": "off", "augmentation": "standard"}
    outcome = {"model": {"state_dict": state, **described, "kept": {0.5: state, 1.0: state}},
               "history": history, "divergence": None}
    assert shuffled_part(val, 10)["labels"].tolist() == \
        clean.logits(shuffled_part(val, 10)["images"], 64).argmax(1).tolist()
    return outcome, train, val, test, summary, params, ablation_params, model




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




def test_a_stale_output_keeps_its_dataset_for_tracking():
    from kedro_datasets.json import JSONDataset

    from simple_cnn.hooks.stale import _Stale
    from simple_cnn.tracking.hooks import _unwrapped

    dataset = JSONDataset(filepath="x.json", metadata={"mlflow": "artifact"})
    stale = _Stale(dataset)
    assert not stale.exists() and stale.metadata == {"mlflow": "artifact"} and _unwrapped(stale) is dataset


def test_the_run_length_check_uses_the_training_part_of_the_split():
    from simple_cnn.ablation.runs import check_run_length

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




def test_why_a_row_is_stale_lists_at_most_three_changes():
    from simple_cnn.ablation.rows import stale_reason

    made = {"format": 3, "a": 1, "b": {"c": 2, "d": 3}, "e": 4, "f": 5}
    row = {"made_with": made, "fingerprint": "old"}
    changed = {"format": 3, "a": 9, "b": {"c": 8, "d": 7}, "e": 6, "f": 5}
    assert stale_reason(row, changed) == "made with other settings: a 1 -> 9, b.c 2 -> 8, b.d 3 -> 7 and 1 more"
    assert stale_reason({"made_with": {"format": 1}, "fingerprint": "x"}, made).startswith("a row of an older")


# ------------------------------------------- what the second mutation round found unguarded
def test_stale_reasons_name_new_keys_changed_types_and_an_unexplained_fingerprint():
    from simple_cnn.ablation.rows import fingerprint, stale_reason

    made = {"format": 3, "a": {"x": 1}, "b": 1, "c": 1}
    three = {"format": 3, "a": 5, "b": 2}  # a dict became a number, c went
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




# ------------------------------------------------------------------ the summary, from rows
def test_a_diverged_run_scores_as_a_failure_not_as_missing():
    rows = norm_rows([10.0, 11.0, 12.0])
    rows[-1].update(diverged=True, test_accuracy=None, along_budget=None)  # b, seed 2
    study = summarise(rows, ablation())["studies"]["norm"]
    assert [p["difference"] for p in study["parts"][0]["pairs"]] == pytest.approx([10.0, 11.0, (0.1 - 0.52) * 100])
    assert study["variants"]["b"]["n_diverged"] == 1 and study["variants"]["b"]["test_accuracy"]["n"] == 2
    diverged = rows[-1]
    assert (score(diverged, "test_accuracy"), score(diverged, "macro_f1"), score(diverged, "dead_unit_fraction"),
            score(diverged, "diverged"), score(diverged, "gap")) == (0.1, 0.1, 1.0, 1.0, None)
    assert score(rows[0], "diverged") == 0.0


def test_a_metric_without_a_failure_score_leaves_the_seed_out_and_says_so():
    gap = {**STUDY, "test": {"metric": "gap", "better": "b", "than": "a"}}
    rows = [{**r, "gap": 0.1 if r["variant"] == "a" else 0.05} for r in norm_rows([0.0] * 3)]
    for row in rows:
        row["along_budget"] = {p: {"gap": row["gap"]} for p in ("0.125", "0.25", "0.5", "1.0")}
    rows[-1].update(diverged=True, gap=None)
    part = summarise(rows, ablation(studies={"norm": gap}))["studies"]["norm"]["parts"][0]
    assert part["left_out"] == 1 and len(part["pairs"]) == 2
    assert part["pairs"][0]["difference"] == pytest.approx(5.0)  # lower is better: +5 points


def test_a_row_that_lacks_the_claims_metric_is_refused_naming_it():
    gap = {**STUDY, "test": {"metric": "gap", "better": "b", "than": "a"}}
    with pytest.raises(MissingMetric, match=r"ablation.norm.b.seed_0 has no 'gap': it was recorded for "
                                            r"another claim; train it again"):
        summarise(norm_rows([1.0, 2.0, 3.0]), ablation(studies={"norm": gap}))


def test_fewer_than_two_pairs_are_inconclusive():
    study = summarise(norm_rows([5.0]), ablation(seeds=[0, 1], looks=[2]))["studies"]["norm"]
    assert study["verdict"] == "inconclusive" and "no look yet" in study["reason"]


def test_the_summary_states_its_settings_each_regime_and_the_seeds_it_used():
    rows = norm_rows([10.0, 11.0, 12.0])
    rows[0].update(converged=True, passes=4.0, steps=50)
    summary = summarise(rows, ablation(budget_points=[0.5, 1.0]))
    from simple_cnn.ablation.summary import summary_inputs

    assert summary["inputs"] == summary_inputs(ablation(budget_points=[0.5, 1.0]), rows)
    assert summary["family"] == ["norm"] and summary["thresholds"]["test_accuracy"] == {"min_effect": 1.0,
                                                                                       "margin": 1.0}
    assert summary["units"]["train_seconds"] == "s" and summary["runs"] == 6 and summary["runs_saved"] == 0
    study = summary["studies"]["norm"]
    assert study["regime"] == {"budget": {"unit": "steps", "length": 300, "patience": 0},
                               "n_train": [100], "batch_size": [8], "passes": pytest.approx(1.5),
                               "steps": pytest.approx(10 + 40 / 6), "converged": 1, "finished": 6,
                               "runs": 6}
    assert (study["seeds_used"], study["cap"], study["looks_planned"]) == (3, 3, [3])
    assert study["regime_met"] == {"to_convergence": False, "met": True}
    assert study["parts"][0]["unit"] == "points" and study["parts"][0]["raw_interval"]["mean"] == pytest.approx(11.0)


def test_a_study_to_convergence_says_when_too_few_of_its_runs_stopped_by_themselves():
    epochs = {**STUDY, "epochs": 10, "patience": 2}
    rows = norm_rows([10.0, 11.0, 12.0])
    for row in rows[:4]:
        row["converged"] = True  # 4 of 6: 67 %, below 80 %
    study = summarise(rows, ablation(studies={"norm": epochs}))["studies"]["norm"]
    assert study["regime_met"] == {"to_convergence": True, "share": pytest.approx(4 / 6), "met": False}
    from simple_cnn.ablation.report import regime_text

    assert "Fewer than 80 % of the runs converged" in regime_text(study["regime"], study["regime_met"])


def test_figures_and_report_show_the_measured_numbers_in_each_metrics_unit():
    from simple_cnn.ablation import figures
    from simple_cnn.ablation.report import ablation_html

    def row(preset, fraction, seed, accuracy):
        return {**norm_rows([0.0])[0], "variant": f"{preset}_{int(fraction * 10)}", "seed": seed, "study": "aug",
                "test_accuracy": accuracy, "n_train": int(fraction * 1000),
                "namespace": f"ablation.aug.{preset}_{int(fraction * 10)}.seed_{seed}",
                "factors": {"augmentation.preset": preset, "training.fraction": fraction},
                "along_budget": {p: {"test_accuracy": accuracy} for p in ("0.125", "0.25", "0.5", "1.0")}}

    rows = [row(p, f, s, 0.4 + 0.1 * i + 0.01 * s + 0.002 * i * s) for i, (p, f) in enumerate(
        [("none", 0.1), ("heavy", 0.1), ("none", 1.0), ("heavy", 1.0)]) for s in (0, 1, 2)]
    texts = [t.get_text() for t in figures.augmentation_heatmap(rows).axes[0].texts]
    assert sorted(texts) == ["41.0%", "51.2% *", "61.4%", "71.6% *"]
    absent = figures.accuracy_vs_batch_size(rows).axes[0].texts[0].get_text()
    assert absent.startswith("No study in this run varies model.norm and training.batch_size")
    params = AblationParams.model_validate({"seeds": [0, 1, 2], "looks": [3], "alpha": 0.3, "studies": {"aug": {
        "claim": "heavy beats none", "test": {"better": "heavy_1", "than": "none_1"},
        "variants": {"none_1": {}, "heavy_1": {}}}}})
    summary = summarise(rows, params)
    assert summary["studies"]["aug"]["verdict"] == "supported"
    shown = figures.report_figures(rows, TrainConfig())
    assert "Augmentation preset x training-set size" in shown
    page = ablation_html(summary, {"max_steps": 200}, shown)
    assert "heavy beats none" in page and "Supported: decided after 3 seeds (look 1)" in page
    assert "+10.20 [" in page and "test_accuracy (points)" in page and "max steps: 200" in page
    assert "<td>0</td><td>0.5000</td><td>0.4000</td><td>+10.00</td>" in page  # seed 0's pair
    assert "Preview</b>" in ablation_html({**summary, "preview": True}, {}, {})
    forest = figures.forest(summary)
    assert forest.axes[0].get_yticklabels()[0].get_text() == "aug: test accuracy"
    assert "(points)" in forest.axes[0].get_xlabel()
    thick = [line for line in forest.axes[0].lines if line.get_linewidth() == 3]
    assert thick[0].get_xdata() == pytest.approx([summary["studies"]["aug"]["parts"][0]["interval"][k]
                                                  for k in ("low", "high")])


# ------------------------------------------------------------------ the nodes of one run
def test_a_row_reports_images_that_did_not_pick_the_weights_and_the_gap_as_train_minus_val():
    from simple_cnn.ablation.sequential import unpack
    from simple_cnn.pipelines.ablation.nodes import record_run

    outcome, train, val, test, summary, params, ablation_params, _ = tiny_run()
    row = record_run(outcome, train, val, test, summary, params, ablation_params, run=Run("norm", "b", 0))
    assert row["val_accuracy"] == 0.0  # the reported part; the selection part scores 1.0
    assert row["train_accuracy"] == 1.0 and row["gap"] == 1.0
    assert row["test_accuracy"] == 1.0 and row["chance"] == 0.25 and not row["diverged"]
    assert set(row["along_budget"]["0.5"]) == {"step", "gap", "train_accuracy", "val_accuracy",
                                                "dead_units", "dead_unit_fraction"}  # the claim's metric
    assert row["along_budget"]["0.5"]["step"] == 5 and "test_accuracy" in row["along_budget"]["1.0"]
    assert unpack(row["per_image"]["test"]).tolist() == [1.0] * 30  # which test images it got right
    assert unpack(row["per_image"]["report"]).tolist() == [0.0] * 10
    assert (row["steps"], row["passes"], row["images_per_second"]) == (10, 1.0, 20.0)
    assert row["budget"] == {"unit": "steps", "length": 300, "patience": 0} and row["n_train"] == 40
    assert row["made_with"]["splits"] == "splits" and row["made_with"]["cnn"]["training"]["max_steps"] == 10
    assert row["made_with"]["recorded"] == ["gap"] and "progress_bar" not in row["made_with"]["cnn"]["training"]


def test_a_run_whose_claim_is_decided_saves_a_row_that_says_so_and_trains_nothing(monkeypatch):
    from simple_cnn.pipelines.ablation import nodes

    monkeypatch.setattr(nodes, "train_run", lambda *a, **k: pytest.fail("a decided claim's run trained"))
    decided = {"open": False, "after_look": 1, "verdict": "supported", "decided_after_seeds": 4,
               "made_from": ["x", "y"]}
    train, val, summary = tiny_splits()
    params = ablation(val_images=10, report_images=10, test_images=20)
    row = nodes.RunNodes(Run("norm", "a", 5, round=2)).train_and_evaluate_run(
        train, val, val, {**summary, "fingerprint": "f"}, tiny_params(), params, decided)
    assert row["skipped"] == {"after_look": 1, "verdict": "supported", "decided_after_seeds": 4}
    assert row["made_with"]["skipped"]["made_from"] == ["x", "y"] and row["namespace"] == "ablation.norm.round_2.a.seed_5"


def test_train_and_evaluate_run_is_one_run_s_row():
    from simple_cnn.pipelines.ablation.nodes import RunNodes

    train, val, summary = tiny_splits()
    test = {"images": train["images"][:20], "labels": train["labels"][:20]}
    summary = {**summary, "fingerprint": "f"}
    params = ablation(val_images=10, report_images=10, test_images=20, budget_points=[0.5, 1.0])
    row = RunNodes(Run("norm", "a", 0)).train_and_evaluate_run(
        train, val, test, summary, tiny_params(), params.model_dump(), {"open": True})
    assert row["namespace"] == "ablation.norm.round_1.a.seed_0" and not row["diverged"] and row["steps"] == 8
    assert set(row["along_budget"]) == {"0.5", "1.0"} and 0 <= row["test_accuracy"] <= 1
    assert not list(Path(".").glob("**/ablation.norm.a.seed_0.pt"))  # a study's run keeps no checkpoint


def test_train_run_picks_on_the_selection_images_and_keeps_every_budget_point():
    from simple_cnn.pipelines.ablation.nodes import train_run

    train, val, summary = tiny_splits()
    params = ablation(val_images=10, report_images=10, budget_points=[0.25, 0.5, 1.0])
    outcome = train_run(train, val, summary, tiny_params(), params)
    assert outcome["divergence"] is None and sorted(outcome["model"]["kept"]) == [0.25, 0.5, 1.0]
    assert outcome["history"]["kept_steps"] == {0.25: 2, 0.5: 4, 1.0: 8}
    diverged = train_run(train, val, summary, tiny_params(lr=1e12), params)
    assert diverged["model"] is None and diverged["divergence"]["step"] >= 1
    assert "Loss became" in diverged["divergence"]["message"]


def test_a_row_is_stale_when_anything_that_made_it_changed_its_metric_included():
    from simple_cnn.ablation.rows import fingerprint, provenance, stale_reason

    params = CnnParams()
    made = provenance(params, ablation(), {"fingerprint": "abc"}, ["test_accuracy"])
    row = {"made_with": made, "fingerprint": fingerprint(made)}
    assert stale_reason(row, made) is None and stale_reason(None, made) == "no row"
    longer = provenance(params.model_copy(update={"training": params.training.model_copy(
        update={"max_steps": 30})}), ablation(), {"fingerprint": "abc"}, ["test_accuracy"])
    assert stale_reason(row, longer) == "made with other settings: cnn.training.max_steps None -> 30"
    other_data = provenance(params, ablation(), {"fingerprint": "xyz"}, ["test_accuracy"])
    assert stale_reason(row, other_data) == "made with other settings: splits 'abc' -> 'xyz'"
    other_metric = provenance(params, ablation(), {"fingerprint": "abc"}, ["gap"])
    assert stale_reason(row, other_metric) == "made with other settings: recorded ['test_accuracy'] -> ['gap']"
    other_eval = provenance(params, ablation(test_images=100), {"fingerprint": "abc"}, ["test_accuracy"])
    assert "evaluation.test_images 5000 -> 100" in stale_reason(row, other_eval)
    assert stale_reason({"fingerprint": "x"}, made).startswith("a row of an older format")
    assert made["format"] == 3 and json.loads(json.dumps(made)) == made


def test_the_summary_node_reads_every_studys_rows_and_the_figure_nodes_draw(caplog):
    from matplotlib.figure import Figure

    from simple_cnn.pipelines.ablation import nodes

    rows = norm_rows([10.0, 11.0, 12.0], device="cpu", amp="off", train_seconds=1.234,
                     dead_units=None, lr_per_step=[0.1])
    with caplog.at_level("INFO"):
        results, summary = nodes.summarise_ablation(ablation(test_images=300, preview=True), rows)
    assert results == rows and summary["preview"] is True
    assert summary["budget"]["train seconds total"] == 7.4 and summary["budget"]["looks"] == [3]
    assert "Ablation: 1 of 1 claims decided; 6 runs trained, 0 not needed." in caplog.messages
    for draw in (nodes.plot_ablation_augmentation_heatmap, nodes.plot_ablation_dead_units,
                 nodes.plot_ablation_batch_size, nodes.plot_ablation_warmup_lr):
        assert isinstance(draw(rows), Figure)
    assert isinstance(nodes.plot_ablation_accuracy(summary), Figure)
    page = nodes.build_ablation_report(summary, rows, CnnParams())
    assert "Preview</b>" in page and "A hand-rolled warmup wrapper" in page


# ------------------------------------------------- the smoke study in a session and the CLI
def versions(project, namespace):
    return sorted((project / "data/07_model_output/ablation").glob(f"{namespace}.json/*"))


def run_name(namespace: str) -> str:
    """``ablation.<study>.<variant>.seed_<n>`` (its row's name) of a run's node namespace."""
    return re.sub(r"\.round_\d+\.", ".", namespace)


def trained_runs(project) -> set[str]:
    """The names of the runs whose training node ran in the project's latest run."""
    ran = [row["node"] for row in newest(project, "run_profile")["nodes"]]
    return {run_name(name.removesuffix(".train_and_evaluate_run")) for name in ran
            if name.endswith(".train_and_evaluate_run")}


@pytest.mark.slow
def test_a_decided_claim_stops_getting_seeds_and_an_open_one_gets_more(study):
    """The smoke study: after 4 seeds the activation claim is decided, and its last 2 seeds'
    runs save rows that say so; the A/A control and the warmup claim are still open and train
    2 more seeds each."""
    results, summary = newest(study, "ablation_results"), newest(study, "ablation_summary")
    assert len(results) == 36 and summary["runs"] == 32 and summary["runs_saved"] == 4
    studies = summary["studies"]
    assert studies["activation_lr"]["seeds_used"] == 4 and studies["activation_lr"]["verdict"] == "supported"
    assert [look["seeds"] for look in studies["activation_lr"]["looks"]] == [4]
    skipped = {(r["variant"], r["seed"]) for r in results if r.get("skipped")}
    assert skipped == {(v, s) for v in ("relu", "leaky") for s in (4, 5)}
    for open_claim in ("aa_control", "warmup_lr_norm"):
        assert studies[open_claim]["seeds_used"] == 6, open_claim
        assert [look["seeds"] for look in studies[open_claim]["looks"]] == [4, 6]
    assert "about" in studies["warmup_lr_norm"]["reason"] and "seeds would decide it" in studies["warmup_lr_norm"]["reason"]
    assert summary["claims_judged_together"] == 7  # the family: every claim the YAML declares


@pytest.mark.slow
def test_the_smoke_study_records_every_run_with_a_verdict_and_a_report(study):
    results, summary = newest(study, "ablation_results"), newest(study, "ablation_summary")
    assert set(summary["studies"]) == {"aa_control", "activation_lr", "warmup_lr_norm"}
    for verdict in summary["studies"].values():
        assert verdict["verdict"] in ("supported", "contradicted", "equivalent", "inconclusive")
        assert [p["fraction"] for p in verdict["budget"]["along"]] == [0.5, 1.0]
    finished = [r for r in results if not r.get("skipped") and not r["diverged"]]
    stepped = [r for r in finished if r["study"] != "aa_control"]
    assert all(0 <= r["test_accuracy"] <= 1 and r["train_seconds"] > 0 and r["images_per_second"] > 0
               for r in finished)
    assert all(len(r["lr_per_step"]) == r["steps"] == 20 and not r["converged"] for r in stepped)
    for r in finished:  # the end's scores are the last budget point's
        assert set(r["along_budget"]) == {"0.5", "1.0"}
        assert r["along_budget"]["1.0"]["test_accuracy"] == r["test_accuracy"]
        assert set(r["per_image"]) == {"test", "report"}
    relu = [r for r in finished if r["factors"].get("model.activation") == "relu"]
    assert relu and all({"features.0.act", "features.1.act", "features.2.act"} <= set(r["dead_units"])
                        and 0 <= r["dead_unit_fraction"] <= 1 for r in relu)
    aa = summary["studies"]["aa_control"]
    assert aa["control"] and aa["verdict"] in ("inconclusive", "equivalent")
    assert aa["regime"]["n_train"] == [400] and aa["regime"]["budget"] == {"unit": "epochs", "length": 4, "patience": 2}
    seeds = {(r["variant"], r["seed"]): (r["made_with"]["cnn"]["training"]["seed"],
                                         r["made_with"]["cnn"]["training"]["order_seed"])
             for r in results if r["study"] == "aa_control"}
    assert seeds == {("config_a", s): (s, None) for s in range(6)} | {("config_b", s): (s, s + 1000) for s in range(6)}
    report = sorted((study / "data/08_reporting").glob("ablation_report.html/*/ablation_report.html"))[-1].read_text()
    for verdict in summary["studies"].values():
        assert html.escape(verdict["claim"]) in report
    assert f"The procedure's check, the A/A control: <b>{aa['verdict']}</b>" in report
    assert report.index("Every claim&#x27;s effect") < report.index("<section>")  # the forest plot first
    assert "32 runs trained, 4 not needed" in report and "Preview</b>" in report
    for figure in ("ablation_accuracy", "ablation_augmentation_heatmap", "ablation_dead_units",
                   "ablation_batch_size", "ablation_warmup_lr", "warmup_wrapper_bug"):
        assert list((study / "data/08_reporting").glob(f"{figure}.png/*/{figure}.png")), figure


@pytest.mark.slow
def test_a_diverged_variant_is_recorded_and_the_study_goes_on(study):
    results = newest(study, "ablation_results")
    diverged = [r for r in results if r["variant"] == "cold_batch"]
    assert len(diverged) == 6 and all(r["diverged"] for r in diverged)
    for r in diverged:
        assert r["divergence"]["lr"] > 100 and r["divergence"]["step"] >= 1 and r["divergence"]["layer"]
        assert r["test_accuracy"] is None and r["lr_per_step"][-1] == r["divergence"]["lr"]
    assert newest(study, "ablation_summary")["studies"]["warmup_lr_norm"]["variants"]["cold_batch"]["n_diverged"] == 6


@pytest.fixture
def study_copy(study, tmp_path):
    root = tmp_path / "project"
    shutil.copytree(study, root)
    return root


@pytest.mark.slow
def test_namespaces_reruns_one_variant_only(study_copy):
    one, row = "ablation.activation_lr.round_1.relu.seed_1", "ablation.activation_lr.relu.seed_1"
    before = {ns.name: len(versions(study_copy, ns.name.removesuffix(".json")))
              for ns in (study_copy / "data/07_model_output/ablation").iterdir()}
    run_study(study_copy, namespaces=[one])
    after = {ns.name: len(versions(study_copy, ns.name.removesuffix(".json")))
             for ns in (study_copy / "data/07_model_output/ablation").iterdir()}
    assert {k for k in after if after[k] != before[k]} == {f"{row}.json"}


@pytest.mark.slow
def test_a_larger_cap_trains_only_new_runs_and_keeps_every_trained_row(study_copy):
    """Two more seeds per claim (a cap of 8, looks at 4, 6 and 8): a new design, so the first
    round's decisions are read again under its levels; rows already trained are kept (no seed of
    the first round trains again), and the open claims get their new seeds."""
    before = {run_name(r["namespace"]): r for r in newest(study_copy, "ablation_results")}
    more = merged(nested(DIVERGE), {"ablation": {"seeds": list(range(8)), "looks": [4, 6, 8]}})
    run_study(study_copy, more, only_missing_outputs=True)
    trained = trained_runs(study_copy)
    assert all(int(ns.rsplit("_", 1)[1]) >= 4 for ns in trained)  # the first round is reused
    for claim, variants in (("aa_control", ("config_a", "config_b")), ("warmup_lr_norm", ("cold_batch", "warm_batch"))):
        assert {f"ablation.{claim}.{v}.seed_{n}" for v in variants for n in (6, 7)} <= trained
    ran = [row["node"] for row in newest(study_copy, "run_profile")["nodes"]]
    assert "ingestion.split_train_val" not in ran and "ablation.build_ablation_report" in ran
    after = {run_name(r["namespace"]): r for r in newest(study_copy, "ablation_results")}
    assert all(after[ns] == row for ns, row in before.items() if ns.rsplit("_", 1)[1] < "4")
    summary = newest(study_copy, "ablation_summary")
    assert summary["runs"] + summary["runs_saved"] == 48 and summary["looks"] == [4, 6, 8]


@pytest.mark.slow
def test_a_row_made_under_other_parameters_is_trained_again_never_reused(study_copy, caplog):
    rows_before = {run_name(r["namespace"]): r for r in newest(study_copy, "ablation_results")}
    with caplog.at_level("INFO"):
        run_study(study_copy, f"{DIVERGE},ablation.studies.warmup_lr_norm.max_steps=24", only_missing_outputs=True)
    stepped = {ns for ns in rows_before if ns.startswith("ablation.warmup_lr_norm.")}
    assert trained_runs(study_copy) == stepped and len(stepped) == 12  # the other studies' rows stay
    assert "12 of 36 saved rows are stale and will be made again (12 made with other settings: " \
           "cnn.training.max_steps 20 -> 24)" in caplog.text
    after = {run_name(r["namespace"]): r for r in newest(study_copy, "ablation_results")}
    assert all(after[ns]["diverged"] or after[ns]["steps"] == 24 for ns in stepped)
    assert all(after[ns] == rows_before[ns] for ns in set(rows_before) - stepped)


@pytest.mark.slow
def test_a_change_of_a_claims_metric_trains_its_runs_again(study_copy, caplog):
    """The metric a row records along the budget is part of what made it: judge the warmup
    claim on the gap, and its rows are trained again rather than read as missing values."""
    with caplog.at_level("INFO"):
        run_study(study_copy, f"{DIVERGE},ablation.studies.warmup_lr_norm.test.metric=gap",
                  only_missing_outputs=True)
    assert {ns.split(".")[1] for ns in trained_runs(study_copy)} == {"warmup_lr_norm"}
    assert "recorded ['test_accuracy'] -> ['gap']" in caplog.text
    warmup = newest(study_copy, "ablation_summary")["studies"]["warmup_lr_norm"]
    assert warmup["parts"][0]["metric"] == "gap" and warmup["parts"][0]["unit"] == "points"


@pytest.mark.slow
def test_a_row_made_in_another_env_is_trained_again(study_copy):
    other = study_copy / "conf/smoke_other"
    shutil.copytree(study_copy / "conf/smoke", other)
    text = (other / "parameters_ablation.yml").read_text()
    (other / "parameters_ablation.yml").write_text(text.replace("hidden_units: 32", "hidden_units: 24").replace(
        "studies_to_run: [aa_control, activation_lr, warmup_lr_norm]", "studies_to_run: aa_control"))
    run_study(study_copy, env="smoke_other", only_missing_outputs=True)
    assert len(trained_runs(study_copy)) >= 8  # the A/A control's first round at least
    assert {r["made_with"]["cnn"]["model"]["hidden_units"] for r in newest(study_copy, "ablation_results")} == {24}


@pytest.mark.slow
def test_changing_only_a_claims_wording_rebuilds_the_summary_without_training(study_copy):
    summaries = sorted((study_copy / "data/08_reporting").glob("ablation_summary.json/*"))
    reworded = f"{DIVERGE},ablation.studies.aa_control.claim=Two names one model"
    run_study(study_copy, reworded, only_missing_outputs=True)
    ran = [row["node"] for row in newest(study_copy, "run_profile")["nodes"]]
    assert not trained_runs(study_copy) and "ablation.summarise_ablation" in ran and "ablation.build_ablation_report" in ran
    assert len(sorted((study_copy / "data/08_reporting").glob("ablation_summary.json/*"))) == len(summaries) + 1
    assert newest(study_copy, "ablation_summary")["studies"]["aa_control"]["claim"] == "Two names one model"
    run_study(study_copy, reworded, only_missing_outputs=True)  # nothing to do
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
                   "ablation.studies.warmup_lr_norm.variants.warm_batch.training.lrr=1", check=False)
    assert result.returncode == 1
    assert ("Error: ablation.studies.warmup_lr_norm.variants.warm_batch.training.lrr is not a known "
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
