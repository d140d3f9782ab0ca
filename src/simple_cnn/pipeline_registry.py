"""Project pipelines."""

from kedro.pipeline import Pipeline

from simple_cnn.pipelines import ablation, cnn, first_lesson, hog_svm, ingestion, predict, reporting


def register_pipelines() -> dict[str, Pipeline]:
    """``cnn`` and ``hog_svm`` each include ingestion, so each runs on its own; ``reporting``
    compares their saved results and the first lesson's; ``first_lesson`` measures both saved
    models under transforms and the SVM's cost; ``ablation`` (the study: many trainings) includes ingestion;
    ``predict`` classifies your own images with a saved model; ``__default__`` is everything
    but the study and ``predict``."""
    ingest = ingestion.create_pipeline()
    baseline = hog_svm.create_pipeline()
    train_cnn = cnn.create_pipeline()
    report = reporting.create_pipeline()
    lesson = first_lesson.create_pipeline()
    return {
        "ingestion": ingest,
        "hog_svm": ingest + baseline,
        "cnn": ingest + train_cnn,
        "first_lesson": lesson,
        "reporting": report,
        "predict": predict.create_pipeline(),
        "ablation": ingest + ablation.create_pipeline(),
        "__default__": ingest + baseline + train_cnn + lesson + report,
    }
