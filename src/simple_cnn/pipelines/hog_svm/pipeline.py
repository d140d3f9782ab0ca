"""hog_svm: features -> scaler -> classifier -> test metrics and plots."""

from kedro.pipeline import Pipeline, node, pipeline

from simple_cnn.pipelines.hog_svm import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline([
        node(nodes.extract_svm_features,
             ["train_split", "val_split", "test_split", "params:hog_svm"],
             ["svm_train_features", "svm_val_features", "svm_test_features",
              "svm_feature_report"],
             name="extract_svm_features", tags=["features"]),
        node(nodes.fit_feature_scaler, "svm_train_features", "feature_scaler",
             name="fit_feature_scaler", tags=["features"]),
        node(nodes.train_svm,
             ["svm_train_features", "svm_val_features", "feature_scaler", "params:hog_svm"],
             ["svm_model", "svm_training_report"], name="train_svm", tags=["training"]),
        node(nodes.evaluate_svm,
             ["svm_model", "feature_scaler", "svm_test_features", "svm_feature_report",
              "svm_training_report", "class_names"],
             ["svm_test_predictions", "svm_test_metrics"], name="evaluate_svm",
             tags=["evaluation"]),
        node(nodes.plot_svm_confusion_matrix, ["svm_test_metrics", "class_names"],
             "svm_confusion_matrix_plot", name="plot_svm_confusion_matrix", tags=["plots"]),
        node(nodes.plot_svm_per_class, ["svm_test_metrics", "class_names"],
             "svm_per_class_plot", name="plot_svm_per_class", tags=["plots"]),
    ])
