"""The study definitions: typed YAML, its runs and rounds, and the claims' parts, each
refused with the full key when it is not what the design needs."""

import json

import pytest

from simple_cnn.ablation.runs import check_run_length, run_parameters
from simple_cnn.ablation.studies import AblationParams, Run
from simple_cnn.errors import ConfigError
from simple_cnn.parameters import CnnParams
from tests.conftest import raw_params

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
            offset = params.studies[run.study].order_seed_offsets.get(run.variant)
            run_params = run_parameters(cnn, params, run)
            assert run_params.training.seed == run.seed  # paired: the same init and training part
            assert run_params.training.order_seed == (None if offset is None else run.seed + offset)
            check_run_length(run_params, per_class, run.namespace)  # every budget fits its data
    gpu = AblationParams.model_validate(raw_params("ablation", "gpu"))  # conf/gpu changes only the study
    base = AblationParams.model_validate(raw_params("ablation", None))
    assert gpu.max_steps > 1000 and len(gpu.seeds) >= 20 and len(gpu.runs()) > len(base.runs())
    assert all(len(gpu.seeds_of(name)) >= 20 for name in gpu.studies)  # 20 or more seeds per claim
    cnn = CnnParams.model_validate(raw_params("cnn", None)).model_dump()
    assert all(run_parameters(cnn, gpu, run).training.device == "auto" for run in gpu.runs())
    assert {"aa_control", "norm_batch_size", "activation_lr", "augmentation_data", "warmup_lr_norm",
            "amp", "dropout_l2", "width"} == set(base.studies) and len(base.claims()) == 7
    assert [name for name, study in base.studies.items() if study.control] == ["aa_control"]
    for name in ("augmentation_data", "dropout_l2", "width"):  # regularisation: to convergence
        assert base.studies[name].epochs and base.studies[name].patience, name
    # the interactions the claims state: a contrast of four variants
    assert set(base.studies["norm_batch_size"].test[0].weights) == {"group_bs8", "batch_bs8", "group_bs128",
                                                                     "batch_bs128"}
    assert set(base.studies["augmentation_data"].test[0].weights) == {"heavy_small", "standard_small"}
    assert set(gpu.studies["augmentation_data"].test[0].weights) == {  # the interaction, where it is affordable
        "heavy_small", "standard_small", "heavy_large", "standard_large"}
    assert [(p.metric, p.expect) for p in base.studies["amp"].test] == [("gap", "better"),
                                                                         ("test_accuracy", "not_worse")]
    quick = AblationParams.model_validate(raw_params("ablation", "quick"))
    assert quick.preview and not base.preview and max(len(quick.seeds_of(s)) for s in quick.studies) == 4


def test_a_run_merges_cnn_base_study_and_variant_then_seed_and_budget():
    params = ablation(base={"training": {"lr": 0.3, "batch_size": 16}}, max_steps=40,
                      studies={"norm": {**STUDY, "overrides": {"training": {"lr": 0.2}}}})
    run = Run("norm", "b", 5)
    cnn = run_parameters(CnnParams().model_dump(), params, run)
    assert cnn.model.norm == "group" and cnn.training.lr == 0.2 and cnn.training.batch_size == 16
    assert (cnn.training.seed, cnn.training.max_steps, cnn.training.resume) == (5, 40, False)
    assert cnn.training.early_stopping_patience == 0
    assert run.name == "ablation.norm.b.seed_5" and run.namespace == "ablation.norm.round_1.b.seed_5"


def test_a_budget_in_epochs_with_patience_and_an_order_seed_offset():
    params = ablation(studies={"norm": {**STUDY, "epochs": 30, "patience": 4, "order_seed_offsets": {"b": 100}}})
    a, b = (run_parameters(CnnParams().model_dump(), params, Run("norm", v, 2)) for v in ("a", "b"))
    assert (a.training.epochs, a.training.max_steps, a.training.early_stopping_patience) == (30, None, 4)
    assert (a.training.seed, b.training.seed) == (2, 2)  # the same init and training part
    assert (a.training.shuffle_seed, b.training.shuffle_seed) == (2, 102)  # another order
    assert params.studies["norm"].budget(200) == {"unit": "epochs", "length": 30, "patience": 4}
    assert ablation().studies["norm"].budget(200) == {"unit": "steps", "length": 200, "patience": 0}


@pytest.mark.parametrize("changes, message", [
    ({"seeds": [0]}, r"ablation.seeds=\[0\]: List should have at least 2 items"),
    ({"looks": [1, 8], "seeds": list(range(8))}, r"ablation.looks=\[1, 8\]: the looks must rise from 2"),
    ({"looks": [6, 4], "seeds": list(range(8))}, r"ablation.looks=\[6, 4, 8\]: the looks must rise"),
    ({"metrics": {"gap": {"min_effect": 0.5, "margin": 1.0}}}, r"ablation.metrics.gap.margin=1.0 is above "
                                                                r"min_effect=0.5"),
    ({"studies": {"norm": {**STUDY, "variants": {**STUDY["variants"], "c": {}}}}},
     r"ablation.studies.norm.variants=\['c'\] are trained but no part of the test compares them"),
    ({"studies": {"norm": {**STUDY, "test": {"contrast": {"a": 1, "b": 1}}}}},
     r"ablation.studies.norm.test.0.contrast=.* weights sum to 0"),
    ({"studies": {"norm": {**STUDY, "test": {"better": "a", "than": "b", "contrast": {"a": 1, "b": -1}}}}},
     r"give either better and than, or a contrast"),
    ({"studies": {"norm": {**STUDY, "control": True}}}, r"ablation.studies=\['norm'\] holds only A/A controls"),
    ({"seeds": [1, 1]}, r"ablation.seeds=\[1, 1\]: .*seeds repeat"),
    ({"studies": {"norm": {**STUDY, "seeds": [1, 1]}}}, r"ablation.studies.norm.seeds=\[1, 1\]: .*seeds repeat"),
    ({"studies": {"norm": {**STUDY, "seeds": [-1, 0]}}}, r"ablation.studies.norm.seeds=\[-1, 0\]: .*every seed must be in"),
    ({"studies": {"norm": {**STUDY, "epochs": 5, "max_steps": 10}}},
     r"ablation.studies.norm.max_steps=10 and epochs=5 are two budgets"),
    ({"studies": {"norm": {**STUDY, "patience": 3}}}, r"ablation.studies.norm.patience=3 counts epochs"),
    ({"studies": {"norm": {**STUDY, "epochs": 3, "patience": 3}}},
     r"ablation.studies.norm.patience=3 is not shorter than the cap \(epochs=3\)"),
    ({"studies": {"norm": {**STUDY, "order_seed_offsets": {"c": 1}}}},
     r"ablation.studies.norm.order_seed_offsets=\{'c': 1\} names no variant \(c\); choose from: a, b"),
    ({"budget_points": [0.5, 0.25, 1.0]}, r"ablation.budget_points=\[0.5, 0.25, 1.0\]: .*must rise"),
    ({"budget_points": [0.5]}, r"ablation.budget_points=\[0.5\]: .*to 1 \(the end\)"),
    ({"studies": {"norm": {**STUDY, "variants": {"a": {"training": {"epochs": 3}}, "b": {}}}}},
     r"ablation.studies.norm.variants.a.training.epochs=3 is set by the study"),
    ({"studies": {"norm": {**STUDY, "variants": {}}}}, r"ablation.studies.norm.variants=\{\}: .*at least 1 item"),
    ({"studies": {"norm": {**STUDY, "test": {"better": "c", "than": "a"}}}},
     r"ablation.studies.norm.test.better='c' is not a variant of this study; choose from: a, b"),
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


def test_a_study_can_be_picked_by_name_and_its_seeds_come_in_rounds():
    assert ablation(studies_to_run="norm").runs() == ablation().runs()
    two = ablation(studies={"norm": STUDY, "other": STUDY}, studies_to_run=["other"], seeds=[3, 5, 7],
                   looks=[2, 3])
    assert [(r.study, r.variant, r.seed, r.round) for r in two.runs()] == [
        ("other", "a", 3, 1), ("other", "a", 5, 1), ("other", "a", 7, 2),
        ("other", "b", 3, 1), ("other", "b", 5, 1), ("other", "b", 7, 2)]
    assert two.rounds_of("other") == [[3, 5], [7]] and two.claims() == ["norm", "other"]
    shorter = ablation(seeds=list(range(12)), looks=[4, 8, 12],
                       studies={"norm": {**STUDY, "seeds": list(range(8))}})
    assert shorter.looks_of("norm") == [4, 8]  # the looks below the study's cap, then the cap
    assert len(ablation(studies={"norm": STUDY, "other": STUDY}).runs()) == 2 * 2 * 12


def test_a_run_leaves_the_base_parameters_as_they_were_and_names_its_factors():
    from simple_cnn.ablation.runs import factors

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


def test_a_claim_of_two_parts_and_an_interaction_contrast():
    amp = ablation(studies={"amp": {"claim": "smaller gap, not worse", "variants": {"b": {}, "f": {}},
                                    "test": [{"metric": "gap", "better": "b", "than": "f"},
                                             {"metric": "test_accuracy", "better": "b", "than": "f",
                                              "expect": "not_worse"}]}})
    parts = amp.studies["amp"].test
    assert [p.weights for p in parts] == [{"b": 1.0, "f": -1.0}] * 2 and amp.studies["amp"].metrics == [
        "gap", "test_accuracy"]
    inter = ablation(studies={"n": {"claim": "x", "variants": {"g8": {}, "b8": {}, "g128": {}, "b128": {}},
                                    "test": {"contrast": {"g8": 1, "b8": -1, "g128": -1, "b128": 1}}}})
    assert inter.studies["n"].test[0].describe() == "1 x g8 - 1 x b8 - 1 x g128 + 1 x b128"
    assert ablation().threshold("test_accuracy").model_dump() == {"min_effect": 1.0, "margin": 1.0}
    assert ablation().threshold("train_seconds").min_effect == 1.0  # seconds, in seconds


def test_a_seed_at_the_top_of_the_range_is_allowed_and_the_message_names_the_range():
    from simple_cnn.ablation.studies import _check_seeds
    from simple_cnn.training.config import SEED_RANGE

    assert _check_seeds([SEED_RANGE[0], SEED_RANGE[1]]) == [SEED_RANGE[0], SEED_RANGE[1]]
    with pytest.raises(ValueError, match=rf"^every seed must be in {SEED_RANGE[0]}\.\.{SEED_RANGE[1]}$"):
        _check_seeds([SEED_RANGE[1] + 1])
