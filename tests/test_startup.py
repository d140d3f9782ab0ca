"""Commands that start in a blink: building the pipelines and checking every parameter imports
no heavy library, every node's type hints resolve (Kedro skips the validation of a node whose
hints do not), and a run builds only the pipelines it asks for.

The rule that keeps it so (docs/development.md): the parameter models and the pipelines'
``nodes.py`` (and ``training/run.py``, whose functions are nodes) import heavy libraries inside
the functions that use them, and name heavy types in annotations under ``TYPE_CHECKING``."""

from __future__ import annotations

import json
import subprocess
import sys

from simple_cnn.pipeline_registry import COMPOSED, LazyPipelines
from tests.conftest import PROJECT_ROOT

HEAVY = ("torch", "torchvision", "kornia", "sklearn", "scipy", "skimage", "matplotlib", "pandas",
         "mlflow", "statsmodels")
"""What the pipelines' registration and the parameter checks never import."""

CHECK = r"""
import importlib.abc, json, logging, sys

class Absent(importlib.abc.MetaPathFinder):  # as without the mlflow extra, whose import is its own
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("mlflow", "kedro_mlflow"):
            raise ModuleNotFoundError(name)

sys.meta_path.insert(0, Absent())
from kedro.config import OmegaConfigLoader
from kedro.framework.project import pipelines, settings
from kedro.framework.startup import bootstrap_project
from kedro.validation.parameter_validator import ParameterValidator
from kedro.validation.type_extractor import TypeExtractor

bootstrap_project(sys.argv[1])
requested = sys.argv[2:]
warned = []
handler = logging.Handler()
handler.emit = lambda record: warned.append(record.getMessage())
logging.getLogger("kedro.validation").addHandler(handler)
pipelines.set_requested(requested or None)
chosen = {name: pipelines[name] for name in (requested or list(pipelines))}
raw = OmegaConfigLoader(sys.argv[1] + "/conf", **settings.CONFIG_LOADER_ARGS)["parameters"]
typed = TypeExtractor(chosen).extract_types_from_pipelines()
validated = ParameterValidator(chosen).validate_raw_params(raw)
from simple_cnn.parameters import GROUPS, check_across_groups
assert {g.key for g in GROUPS} <= set(validated), sorted(validated)
typed_groups = {k: g.model_validate(validated[g.key]) if isinstance(validated[g.key], dict) else validated[g.key]
                for g in GROUPS for k in [g.key]}
assert all(isinstance(typed_groups[g.key], g) for g in GROUPS)
check_across_groups(typed_groups, set(typed_groups))
print(json.dumps({"modules": sorted(sys.modules), "typed": sorted(typed), "warned": warned}))
"""


def _check(*requested: str) -> dict:
    result = subprocess.run([sys.executable, "-c", CHECK, str(PROJECT_ROOT), *requested],
                            capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _heavy(modules: list[str]) -> list[str]:
    return sorted({name.split(".")[0] for name in modules} & set(HEAVY))


def test_every_pipeline_is_built_and_every_parameter_checked_without_a_heavy_library():
    seen = _check()
    assert _heavy(seen["modules"]) == []
    assert seen["warned"] == []  # "Could not extract type hints": that node's params unchecked
    assert set(seen["typed"]) >= {"ingestion", "hog_svm", "cnn", "first_lesson", "predict",
                                  "ablation"}
    assert "simple_cnn.inference" not in seen["modules"]  # a node's core module: when it runs


def test_a_run_builds_only_the_pipelines_it_names():
    seen = _check("ingestion")
    assert "simple_cnn.pipelines.ingestion.nodes" in seen["modules"]
    for other in ("ablation", "cnn", "hog_svm", "first_lesson", "predict", "reporting"):
        assert f"simple_cnn.pipelines.{other}.nodes" not in seen["modules"]
    assert seen["typed"] == ["ingestion"]


def test_the_registry_builds_each_part_once_and_lists_without_building():
    built = []

    def part(name):
        from kedro.pipeline import Pipeline, node

        built.append(name)
        return Pipeline([node(lambda x: x, f"{name}_in", f"{name}_out", name=f"{name}_node")])

    registry = LazyPipelines(part)
    assert list(registry) == list(COMPOSED) and len(registry) == len(COMPOSED) and built == []
    assert {n.name for n in registry["cnn"].nodes} == {"ingestion_node", "cnn_node"}
    assert {n.name for n in registry["hog_svm"].nodes} == {"ingestion_node", "hog_svm_node"}
    assert built == ["ingestion", "cnn", "hog_svm"]  # ingestion built once, shared
    assert registry["cnn"] is registry["cnn"]


def test_an_unknown_pipeline_name_is_refused_with_the_closest_names(project):
    from tests.conftest import project_command

    result = project_command(project, "run", "--pipeline", "cnnn")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "There is no pipeline 'cnnn': did you mean cnn?" in result.output
    assert "ingestion, hog_svm, cnn" in result.output
    result = project_command(project, "run", "--pipelines", "ingestion,xyz")
    assert result.exit_code == 1 and "There is no pipeline 'xyz': the pipelines are" in result.output
    assert not [p for p in (project / "data").rglob("*") if p.is_file()]  # nothing ran
