"""ablation: one group per study; in it, a group per round of seeds, in that a group per variant
and per seed (its run nodes), and the study's rows collected for the summary.

A study's seeds come in rounds (``ablation.looks``): a run of a later round first reads the
rows of the rounds before it and decides whether its claim is still open (its
``decide_whether_to_run`` node); it trains only if it is (a run whose claim is decided saves a
row that says so, in milliseconds). The runs come from
``parameters_ablation.yml`` of the session's environment: ``AblationStudiesHooks`` hands them
over when the session's context is created, before Kedro asks for the pipelines. If the
studies are not valid, the pipeline holds only the summary node, whose typed
``params:ablation`` input makes Kedro refuse the run at session start with the problem named.
"""

from __future__ import annotations

import warnings

from kedro.pipeline import Node, Pipeline, node, pipeline

from simple_cnn.ablation.studies import NAMESPACE, AblationParams, Run
from simple_cnn.errors import ConfigError
from simple_cnn.pipelines import study_parameters
from simple_cnn.pipelines.ablation import nodes

SHARED = {"train_split", "val_split", "test_split", "dataset_summary"}
PARAMETERS = {"params:cnn": "params:cnn", "params:ablation": "params:ablation"}
ROW = "ablation_run"


def _studies() -> AblationParams | None:
    try:
        return AblationParams.model_validate(study_parameters.raw() or {})
    except ConfigError:
        return None  # Kedro's validation of params:ablation names the problem at session start


def row_name(run: Run) -> str:
    return f"{run.name}.{ROW}"


def rows_name(study: str) -> str:
    return f"{NAMESPACE}.{study}.study_rows"


def run_pipeline(run: Run, earlier: list[str]) -> Pipeline:
    """Configure, then train and evaluate one variant x seed, in the namespace ``run.namespace``;
    its row is ``<run.name>.ablation_run``.
    Training and evaluation are one node so that each run's row is saved as soon as it is done
    (an interrupted study resumes with ``--only-missing-outputs``). A run of a later round
    first decides from ``earlier`` (the study's rows of the rounds before it) whether its claim
    is still open; a decided claim's run saves a row that says so."""
    bound = nodes.RunNodes(run)
    later = run.round > 1
    decide = [node(bound.decide_whether_to_run, ["params:ablation", *earlier], "round_decision",
                   name="decide_whether_to_run")] if later else []
    inputs = ["train_split", "val_split", "test_split", "dataset_summary", "run_params",
              "params:ablation", *(["round_decision"] if later else [])]
    return pipeline(
        [
            *decide,
            node(bound.configure_run, ["params:cnn", "params:ablation", "dataset_summary"],
                 "run_params", name="configure_run"),
            node(bound.train_and_evaluate_run, inputs, ROW, name="train_and_evaluate_run",
                 tags=["training", "evaluation"]),
        ],
        namespace=run.namespace, parameters=PARAMETERS, tags=[NAMESPACE],
        inputs={name: name for name in [*SHARED, *earlier]}, outputs={ROW: row_name(run)},
    )


def study_nodes(study: str, runs: list[Run]) -> list[Node]:
    """The study's rows collected, in its group, for the summary."""
    return [node(nodes.StudyNodes(study).collect_study_rows, [row_name(r) for r in runs],
                 rows_name(study), name="collect_study_rows", namespace=f"{NAMESPACE}.{study}",
                 tags=[NAMESPACE])]


def _summary_node(studies: list[str]) -> Node:
    with warnings.catch_warnings():  # the rows are namespaced outputs: their dots are Kedro's
        warnings.filterwarnings("ignore", message="One or more dataset names contain")
        return node(nodes.summarise_ablation, ["params:ablation", *(rows_name(s) for s in studies)],
                    ["ablation_results", "ablation_summary"], name="summarise_ablation",
                    namespace=NAMESPACE)


def create_pipeline(**kwargs) -> Pipeline:
    ablation = _studies()
    runs = ablation.runs() if ablation else []
    studies = list(ablation.selected()) if ablation else []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="One or more dataset names contain")
        per_study = [n for s in studies for n in study_nodes(s, [r for r in runs if r.study == s])]
        per_run = [run_pipeline(run, [row_name(r) for r in runs if r.study == run.study and r.round < run.round])
                   for run in runs]
    summary = pipeline([
        _summary_node(studies),
        node(nodes.plot_ablation_accuracy, "ablation_summary", "ablation_accuracy_plot",
             name="plot_ablation_accuracy", namespace=NAMESPACE,
             tags=["plots"]),
        node(nodes.plot_ablation_augmentation_heatmap, "ablation_results",
             "ablation_augmentation_heatmap_plot", name="plot_ablation_augmentation_heatmap",
             namespace=NAMESPACE, tags=["plots"]),
        node(nodes.plot_ablation_dead_units, "ablation_results", "ablation_dead_units_plot",
             name="plot_ablation_dead_units", namespace=NAMESPACE,
             tags=["plots"]),
        node(nodes.plot_ablation_batch_size, "ablation_results", "ablation_batch_size_plot",
             name="plot_ablation_batch_size", namespace=NAMESPACE,
             tags=["plots"]),
        node(nodes.plot_ablation_warmup_lr, "ablation_results", "ablation_warmup_lr_plot",
             name="plot_ablation_warmup_lr", namespace=NAMESPACE,
             tags=["plots"]),
        node(nodes.plot_warmup_wrapper_bug, "params:cnn", "warmup_wrapper_bug_plot",
             name="plot_warmup_wrapper_bug", namespace=NAMESPACE,
             tags=["plots"]),
        node(nodes.build_ablation_report, ["ablation_summary", "ablation_results", "params:cnn",
                                           "newest_first_lesson_verdicts"],
             "ablation_report", name="build_ablation_report", namespace=NAMESPACE),
    ], tags=[NAMESPACE])
    return Pipeline([*per_run, *per_study, summary])  # one merge, not one per run
