"""ablation: one namespaced copy of the run nodes per variant x seed, then the summary.

The runs come from ``parameters_ablation.yml`` of the session's environment:
``AblationStudiesHooks`` hands them over when the session's context is created, before Kedro
asks for the pipelines. If the studies are not valid, the pipeline holds only the summary
node, whose typed ``params:ablation`` input makes Kedro refuse the run at session start with
the problem named.
"""

from __future__ import annotations

import warnings

from kedro.pipeline import Pipeline, node, pipeline

from simple_cnn.ablation.studies import NAMESPACE, AblationParams, Run
from simple_cnn.errors import ConfigError
from simple_cnn.pipelines import study_parameters
from simple_cnn.pipelines.ablation import nodes

SHARED = {"train_split", "val_split", "test_split", "dataset_summary"}
PARAMETERS = {"params:cnn": "params:cnn", "params:ablation": "params:ablation"}

def _runs() -> list[Run]:
    try:
        return AblationParams.model_validate(study_parameters.raw() or {}).runs()
    except ConfigError:
        return []  # Kedro's validation of params:ablation names the problem at session start


def run_pipeline(run: Run) -> Pipeline:
    """Configure, then train and evaluate one variant x seed, in the namespace ``run.namespace``.
    Training and evaluation are one node so that each run's row is saved as soon as it is done
    (an interrupted study resumes with ``--only-missing-outputs``)."""
    bound = nodes.RunNodes(run)
    return pipeline(
        [
            node(bound.configure_run, ["params:cnn", "params:ablation", "dataset_summary"],
                 "run_params", name="configure_run"),
            node(bound.train_and_evaluate_run,
                 ["train_split", "val_split", "test_split", "dataset_summary", "cnn_checkpoint",
                  "run_params", "params:ablation"], "ablation_run", name="train_and_evaluate_run",
                 tags=["training", "evaluation"]),
        ],
        namespace=run.namespace, inputs=SHARED, parameters=PARAMETERS, tags=[NAMESPACE],
    )


def _summary_node(records: list[str]):
    with warnings.catch_warnings():  # the records are namespaced outputs: their dots are Kedro's
        warnings.filterwarnings("ignore", message="One or more dataset names contain")
        return node(nodes.summarise_ablation, ["params:ablation", *records],
                    ["ablation_results", "ablation_summary"], name="summarise_ablation")


def create_pipeline(**kwargs) -> Pipeline:
    runs = _runs()
    summary = pipeline([
        _summary_node([f"{run.namespace}.ablation_run" for run in runs]),
        node(nodes.plot_ablation_accuracy, "ablation_summary", "ablation_accuracy_plot",
             name="plot_ablation_accuracy", tags=["plots"]),
        node(nodes.plot_ablation_augmentation_heatmap, "ablation_results",
             "ablation_augmentation_heatmap_plot", name="plot_ablation_augmentation_heatmap",
             tags=["plots"]),
        node(nodes.plot_ablation_dead_units, "ablation_results", "ablation_dead_units_plot",
             name="plot_ablation_dead_units", tags=["plots"]),
        node(nodes.plot_ablation_batch_size, "ablation_results", "ablation_batch_size_plot",
             name="plot_ablation_batch_size", tags=["plots"]),
        node(nodes.plot_ablation_warmup_lr, "ablation_results", "ablation_warmup_lr_plot",
             name="plot_ablation_warmup_lr", tags=["plots"]),
        node(nodes.plot_warmup_wrapper_bug, "params:cnn", "warmup_wrapper_bug_plot",
             name="plot_warmup_wrapper_bug", tags=["plots"]),
        node(nodes.build_ablation_report, ["ablation_summary", "ablation_results", "params:cnn",
                                           "newest_first_lesson_verdicts"],
             "ablation_report", name="build_ablation_report"),
    ], tags=[NAMESPACE])
    return Pipeline([*(run_pipeline(run) for run in runs), summary])  # one merge, not one per run
