"""Project pipelines."""

from kedro.pipeline import Pipeline

from simple_cnn.pipelines import cnn, ingestion


def register_pipelines() -> dict[str, Pipeline]:
    """``cnn`` includes ingestion, so ``kedro run --pipeline cnn`` runs on its own."""
    ingest = ingestion.create_pipeline()
    train_cnn = cnn.create_pipeline()
    return {
        "ingestion": ingest,
        "cnn": ingest + train_cnn,
        "__default__": ingest + train_cnn,
    }
