"""Project pipelines."""

from kedro.pipeline import Pipeline

from simple_cnn.pipelines import cnn, hog_svm, ingestion, reporting


def register_pipelines() -> dict[str, Pipeline]:
    """``cnn`` and ``hog_svm`` each include ingestion, so each runs on its own; ``reporting``
    compares their saved results; ``__default__`` is everything."""
    ingest = ingestion.create_pipeline()
    baseline = hog_svm.create_pipeline()
    train_cnn = cnn.create_pipeline()
    report = reporting.create_pipeline()
    return {
        "ingestion": ingest,
        "hog_svm": ingest + baseline,
        "cnn": ingest + train_cnn,
        "reporting": report,
        "__default__": ingest + baseline + train_cnn + report,
    }
