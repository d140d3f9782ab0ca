"""cnn: train SimpleCNN on the splits, evaluate it on test, and plot what it learned."""

from kedro.pipeline import Pipeline, node, pipeline

from simple_cnn.pipelines.cnn import nodes
from simple_cnn.training import run


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline([
        node(nodes.summarise_cnn, ["dataset_summary", "params:cnn"], "cnn_model_summary",
             name="summarise_cnn", tags=["training"]),
        node(nodes.preview_augmentation, ["train_split", "dataset_summary", "params:cnn"],
             "augmentation_preview_plot", name="preview_augmentation", tags=["plots"]),
        node(run.train_cnn,
             ["train_split", "val_split", "dataset_summary", "cnn_checkpoint", "params:cnn"],
             ["cnn_model", "cnn_training_history"], name="train_cnn", tags=["training"]),
        node(nodes.record_cnn_activation_stats, ["cnn_model", "val_split"],
             "cnn_activation_stats", name="record_cnn_activation_stats", tags=["evaluation"]),
        node(run.evaluate_cnn, ["cnn_model", "test_split", "params:cnn"],
             ["cnn_test_predictions", "cnn_test_metrics"], name="evaluate_cnn",
             tags=["evaluation"]),
        node(nodes.plot_cnn_training_curves, "cnn_training_history", "cnn_training_curves_plot",
             name="plot_cnn_training_curves", tags=["plots"]),
        node(nodes.plot_cnn_lr_schedule, "cnn_training_history", "cnn_lr_schedule_plot",
             name="plot_cnn_lr_schedule", tags=["plots"]),
        node(nodes.plot_cnn_confusion_matrix, ["cnn_test_metrics", "class_names"],
             "cnn_confusion_matrix_plot", name="plot_cnn_confusion_matrix", tags=["plots"]),
        node(nodes.plot_cnn_feature_maps, ["cnn_model", "test_split", "params:cnn"],
             "cnn_feature_maps_plot", name="plot_cnn_feature_maps", tags=["plots"]),
        node(nodes.plot_cnn_misclassified, ["test_split", "cnn_test_predictions", "class_names"],
             "cnn_misclassified_plot", name="plot_cnn_misclassified", tags=["plots"]),
        node(nodes.plot_activation_functions, "params:cnn", "activation_functions_plot",
             name="plot_activation_functions", tags=["plots"]),
    ])
