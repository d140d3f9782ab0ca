"""Ingestion: ``cifar10_archive`` / ``image_folder`` / synthetic -> versioned splits. Its nodes
form the ``ingestion`` group (kedro-viz shows them as one box until it is opened; their names
are ``ingestion.<node>``); the datasets keep their names, which every other pipeline reads."""

from kedro.pipeline import Pipeline, node, pipeline

from simple_cnn.pipelines.ingestion.nodes import (
    load_raw_images,
    plot_sample_images,
    split_train_val,
    summarise_splits,
)


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                load_raw_images,
                inputs=["cifar10_archive", "image_folder", "params:ingestion"],
                outputs="raw_images",
                name="load_raw_images",
                namespace="ingestion",
            ),
            node(
                split_train_val,
                inputs=["raw_images", "params:ingestion"],
                outputs=["train_split", "val_split", "test_split", "class_names"],
                name="split_train_val",
                namespace="ingestion",
            ),
            node(
                summarise_splits,
                inputs=["train_split", "val_split", "test_split", "class_names"],
                outputs="dataset_summary",
                name="summarise_splits",
                namespace="ingestion",
            ),
            node(
                plot_sample_images,
                inputs=["train_split", "class_names"],
                outputs="sample_images_plot",
                name="plot_sample_images",
                namespace="ingestion",
                tags=["plots"],
            ),
        ],
        tags="ingestion",
    )
