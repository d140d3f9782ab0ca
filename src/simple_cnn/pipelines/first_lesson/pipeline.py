"""first_lesson: the saved HOG + SVM and CNN under rotation, lighting and shifts; the SVM's cost
as data grows; the three claims of the course's first lesson, with verdicts."""

from kedro.pipeline import Pipeline, node, pipeline

from simple_cnn.pipelines.first_lesson import nodes

PREDICTIONS = ["svm_transformed_predictions", "cnn_transformed_predictions"]


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(nodes.predict_svm_under_transforms,
                 ["svm_model", "feature_scaler", "svm_feature_report", "test_split",
                  "params:first_lesson"],
                 "svm_transformed_predictions", name="predict_svm_under_transforms"),
            node(nodes.predict_cnn_under_transforms,
                 ["cnn_model", "test_split", "params:cnn", "params:first_lesson"],
                 "cnn_transformed_predictions", name="predict_cnn_under_transforms"),
            node(nodes.measure_robustness, [*PREDICTIONS, "test_split", "params:first_lesson"],
                 "robustness_metrics", name="measure_robustness", tags=["evaluation"]),
            node(nodes.measure_svm_cost_scaling,
                 ["svm_train_features", "feature_scaler", "params:hog_svm", "params:first_lesson"],
                 "svm_cost_scaling", name="measure_svm_cost_scaling", tags=["evaluation"]),
            node(nodes.judge_first_lesson,
                 [*PREDICTIONS, "test_split", "svm_cost_scaling", "params:first_lesson"],
                 "first_lesson_verdicts", name="judge_first_lesson", tags=["evaluation"]),
            node(nodes.plot_robustness, "robustness_metrics", "robustness_plot",
                 name="plot_robustness", tags=["plots"]),
            node(nodes.plot_svm_cost, "svm_cost_scaling", "svm_cost_plot",
                 name="plot_svm_cost", tags=["plots"]),
        ],
        tags="first_lesson",
    )
