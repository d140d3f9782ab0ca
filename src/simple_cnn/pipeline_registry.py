"""Project pipelines."""

from kedro.pipeline import Pipeline

from simple_cnn.pipelines import ingestion


def register_pipelines() -> dict[str, Pipeline]:
    """``cnn`` and ``hog_svm`` each include ingestion, so each runs on its own."""
    ingest = ingestion.create_pipeline()
    return {
        "ingestion": ingest,
        "__default__": ingest,
    }
