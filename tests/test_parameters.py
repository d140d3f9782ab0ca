"""Typed parameters: one source of defaults, schemas in sync, and bad values refused at session
start (before any node runs) with a message that names the full key."""

import json

import pytest
import yaml
from kedro.framework.hooks import hook_impl
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from kedro.validation import ParameterValidationError

from simple_cnn.errors import ConfigError
from simple_cnn.parameters import GROUPS, CnnParams, HogSvmParams, IngestionParams, schema
from tests.conftest import PROJECT_ROOT, kedro, project_command, raw_params, run_command

DECLARED = {"ablation": ("studies", "base")}  # the study itself: declared in YAML, no default


@pytest.mark.parametrize("group", GROUPS, ids=lambda g: g.key)
def test_conf_base_equals_the_models_defaults(group):
    """The YAML and the model cannot disagree silently: conf/base *is* the default."""
    raw = raw_params(group.key, env=None)
    declared = {key: raw[key] for key in DECLARED.get(group.key, ())}
    assert group.model_validate(raw) == group.model_validate(declared)


def test_smoke_env_holds_only_changes_and_merges_softly(project):
    bootstrap_project(project)
    with KedroSession.create(project_path=project, env="smoke") as session:
        params = session.load_context().params
    cnn, ingestion = params["cnn"], params["ingestion"]
    assert isinstance(cnn, CnnParams) and isinstance(ingestion, IngestionParams)
    assert cnn.training.epochs == 3 and cnn.training.momentum == CnnParams().training.momentum
    assert ingestion.source == "synthetic" and ingestion.seed == IngestionParams().seed
    assert isinstance(params["hog_svm"], HogSvmParams)
    for group in GROUPS:  # nothing in smoke repeats base
        smoke = yaml.safe_load((PROJECT_ROOT / f"conf/smoke/parameters_{group.key}.yml").read_text())
        base = raw_params(group.key, env=None)

        def repeats(changes, defaults, path=""):
            for key, value in changes.items():
                if isinstance(value, dict):
                    yield from repeats(value, defaults.get(key, {}), f"{path}{key}.")
                elif key in defaults and value == defaults[key]:
                    yield f"{path}{key}"
        assert list(repeats(smoke[group.key], base)) == []


@pytest.mark.parametrize("group", GROUPS, ids=lambda g: g.key)
def test_json_schemas_are_in_sync_and_referenced_by_the_yaml(group):
    path = PROJECT_ROOT / f"docs/schemas/parameters_{group.key}.json"
    assert json.loads(path.read_text()) == schema(group), "run: python -m simple_cnn.parameters"
    for env in ("base", "smoke"):
        first = (PROJECT_ROOT / f"conf/{env}/parameters_{group.key}.yml").read_text().splitlines()[0]
        assert first == f"# yaml-language-server: $schema=../../docs/schemas/parameters_{group.key}.json"
    assert schema(group)["properties"][group.key]["additionalProperties"] is False


class NodeSpy:
    def __init__(self):
        self.ran = []

    @hook_impl
    def before_node_run(self, node):
        self.ran.append(node.name)


def written_versions(project):
    return [p for p in (project / "data").rglob("*") if p.is_file()]


# Every bad parameter of the README's bad-input summary, and an unknown key in each group.
BAD = [
    ("ingestion", {"ingestion": {"source": "mnist"}}, "ingestion.source='mnist' is not allowed"),
    ("ingestion", {"ingestion": {"val_size": 0}}, "ingestion.val_size=0 leaves no validation split"),
    ("ingestion", {"ingestion": {"val_size": 2500}}, "ingestion.val_size=2500 must be smaller"),
    ("ingestion", {"ingestion": {"seed": -1}}, "ingestion.seed=-1"),
    ("ingestion", {"ingestion": {"image_size": 4}}, "ingestion.image_size=4"),
    ("ingestion", {"ingestion": {"sorce": "synthetic"}}, "ingestion.sorce is not a known key"),
    ("cnn", {"cnn": {"model": {"norm": "instance"}}}, "cnn.model.norm='instance' is not allowed"),
    ("cnn", {"cnn": {"model": {"activation": "tanh"}}}, "cnn.model.activation='tanh'"),
    ("cnn", {"cnn": {"model": {"kernel_size": 4}}}, "cnn.model.kernel_size=4: must be odd"),
    ("cnn", {"cnn": {"model": {"norm": "group", "num_groups": 3}}}, "cnn.model.num_groups=3 does not divide"),
    ("cnn", {"cnn": {"augmentation": {"preset": "strong"}}}, "cnn.augmentation.preset='strong'"),
    ("cnn", {"cnn": {"training": {"optimizer": "adam"}}}, "cnn.training.optimizer='adam'"),
    ("cnn", {"cnn": {"training": {"scheduler": "onecycle"}}}, "cnn.training.scheduler='onecycle'"),
    ("cnn", {"cnn": {"training": {"lr": 0}}}, "cnn.training.lr=0: must be greater than 0"),
    ("cnn", {"cnn": {"training": {"warmup": 3, "warmup_unit": "epochs"}}}, "cnn.training.warmup=3.0 epochs"),
    ("cnn", {"cnn": {"training": {"amp": "fp16"}}}, "cnn.training.amp='fp16': fp16 needs a CUDA GPU"),
    ("cnn", {"cnn": {"training": {"amp": "fast"}}}, "cnn.training.amp='fast' is not allowed"),
    ("cnn", {"cnn": {"evaluation": {"batch_size": 0}}}, "cnn.evaluation.batch_size=0"),
    ("cnn", {"cnn": {"plots": {"feature_map_layer": "conv9"}}}, "cnn.plots.feature_map_layer='conv9' is not a layer"),
    ("cnn", {"cnn": {"plots": {"n_feature_map_images": 0}}}, "cnn.plots.n_feature_map_images=0"),
    ("cnn", {"cnn": {"training": {"lr_max": 1}}}, "cnn.training.lr_max is not a known key"),
    ("cnn", {"cnn": {"training": {"distributed": {"nproc_per_node": 0}}}},
     "cnn.training.distributed.nproc_per_node=0: must be greater than or equal to 1"),
    ("cnn", {"cnn": {"training": {"distributed": {"backend": "nccl"}}}},
     r"cnn.training.distributed.backend='nccl': nccl needs CUDA GPUs \(none is available\)"),
    ("cnn", {"cnn": {"training": {"distributed": {"nproc_per_node": 3}}}},
     r"cnn.training.batch_size=64 \(the global batch\) does not split evenly over "
     "distributed.nproc_per_node=3"),
    ("cnn", {"cnn": {"modle": {}}}, "cnn.modle is not a known key"),
    ("hog_svm", {"hog_svm": {"features": "sift"}}, "hog_svm.features='sift'"),
    ("hog_svm", {"hog_svm": {"classifier": "knn"}}, "hog_svm.classifier='knn'"),
    ("hog_svm", {"hog_svm": {"hog": {"orientations": 0}}}, "hog_svm.hog.orientations=0"),
    ("hog_svm", {"hog_svm": {"hog": {"pixels_per_cell": [64, 64]}}},
     r"hog_svm.hog.pixels_per_cell=\[64, 64\] is larger than the 32x32 images"),
    ("hog_svm", {"hog_svm": {"hog": {"cells_per_block": [5, 5]}}},
     r"hog_svm.hog.cells_per_block=\[5, 5\] is larger than the grid of 4x4 cells"),
    ("hog_svm", {"hog_svm": {"kernel_approx": {"gamma": -1}}}, "hog_svm.kernel_approx.gamma=-1"),
    ("hog_svm", {"hog_svm": {"kernel_aprox": {}}}, "hog_svm.kernel_aprox is not a known key"),
]


@pytest.mark.parametrize("pipeline, runtime, message", BAD, ids=[m.split("=")[0].split(" ")[0] for *_, m in BAD])
def test_bad_parameters_stop_the_run_before_any_node(project, pipeline, runtime, message):
    bootstrap_project(project)
    spy = NodeSpy()
    with pytest.raises((ConfigError, ParameterValidationError), match=message):
        with KedroSession.create(project_path=project, env="smoke", runtime_params=runtime) as session:
            session._hook_manager.register(spy)
            session.run(pipeline_name=pipeline)
    assert spy.ran == [] and written_versions(project) == []


def test_a_typo_in_one_pipeline_does_not_stop_another(project):
    bootstrap_project(project)
    runtime = {"cnn": {"plots": {"feature_map_layer": "conv9"}}}
    with KedroSession.create(project_path=project, env="smoke", runtime_params=runtime) as session:
        session.run(pipeline_name="ingestion")
    assert written_versions(project)


def test_amp_off_in_a_yaml_file(project):
    (project / "conf/local").mkdir(parents=True, exist_ok=True)
    (project / "conf/local/parameters_cnn.yml").write_text("cnn:\n  training:\n    amp: off\n")
    bootstrap_project(project)
    with KedroSession.create(project_path=project) as session:
        assert session.load_context().params["cnn"].training.amp == "off"


def test_cli_amp_off_trains_with_full_precision(project):
    run_command(project, "run", "--env", "smoke", "--pipeline", "cnn", "--params",
                "cnn.training.amp=off,cnn.training.epochs=1,cnn.training.warmup=0")
    metrics = next((project / "data/08_reporting/cnn_test_metrics.json").rglob("*.json"))
    assert json.loads(metrics.read_text())["amp"] == "off"


def test_cli_shows_a_parameter_error_in_two_lines_without_traceback(project):
    result = kedro(project, "run", "--env", "smoke", "--pipeline", "cnn", "--params",
                   "cnn.plots.feature_map_layer=conv9", check=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    error = [line for line in result.stderr.splitlines() if line.strip()]
    assert error[0].startswith("Error: cnn.plots.feature_map_layer='conv9' is not a layer")
    assert "--traceback" in error[1] and len(error) == 2
    assert written_versions(project) == []
    full = project_command(project, "run", "--env", "smoke", "--pipeline", "cnn", "--traceback",
                           "--params", "cnn.plots.feature_map_layer=conv9")  # raises, in full
    assert full.exit_code == 1 and type(full.exception).__name__ == "ParameterValidationError"
