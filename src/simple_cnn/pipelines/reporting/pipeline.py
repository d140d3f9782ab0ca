"""reporting: the two models' metrics -> comparison figures and an HTML report."""

from kedro.pipeline import Pipeline, node, pipeline

from simple_cnn.pipelines.reporting import nodes

METRICS = ["svm_test_metrics", "cnn_test_metrics"]


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(nodes.plot_model_comparison, [*METRICS, "class_names"], "model_comparison_plot",
                 name="plot_model_comparison", tags=["plots"]),
            node(nodes.plot_confusion_matrices, [*METRICS, "class_names"],
                 "confusion_matrices_plot", name="plot_confusion_matrices", tags=["plots"]),
            node(nodes.build_comparison_report,
                 [*METRICS, "cnn_training_history", "class_names", "robustness_metrics",
                  "svm_cost_scaling", "first_lesson_verdicts", "ablation_report_link"],
                 "comparison_report",
                 name="build_comparison_report", tags=["evaluation"]),
        ],
        tags="reporting",
    )
