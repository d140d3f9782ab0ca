"""predict: every image under ``predict.source`` classified by the newest ``cnn_model`` (or the
one ``--load-versions cnn_model:<version>`` names)."""

from kedro.pipeline import Pipeline, node, pipeline

from simple_cnn.pipelines.predict import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(nodes.classify_images, ["cnn_model", "predict_images", "params:predict"],
                 ["predictions", "unread_images", "predictions_plot"], name="classify_images"),
        ],
        tags="predict",
    )
