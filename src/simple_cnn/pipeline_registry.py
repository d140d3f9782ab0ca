"""Project pipelines."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping

from kedro.pipeline import Pipeline

COMPOSED: dict[str, tuple[str, ...]] = {
    "ingestion": ("ingestion",),
    "hog_svm": ("ingestion", "hog_svm"),
    "cnn": ("ingestion", "cnn"),
    "first_lesson": ("first_lesson",),
    "reporting": ("reporting",),
    "predict": ("predict",),
    "ablation": ("ingestion", "ablation"),
    "__default__": ("ingestion", "hog_svm", "cnn", "first_lesson", "reporting"),
}
"""Each registered pipeline as the modular pipelines (``simple_cnn/pipelines/<part>``) it joins."""


class LazyPipelines(Mapping):
    """The registered pipelines, each built (and its modules imported) when first asked for:
    ``kedro run --pipeline ingestion`` builds ingestion alone, not the study's 138 nodes.
    Listing the names builds nothing; Kedro's own listing (``kedro registry list``) builds all."""

    def __init__(self, create: Callable[[str], Pipeline]) -> None:
        self._create = create  # a modular pipeline's name -> that pipeline
        self._parts: dict[str, Pipeline] = {}
        self._built: dict[str, Pipeline] = {}

    def part(self, name: str) -> Pipeline:
        if name not in self._parts:
            self._parts[name] = self._create(name)
        return self._parts[name]

    def __getitem__(self, name: str) -> Pipeline:
        if name not in self._built:
            self._built[name] = Pipeline([self.part(part) for part in COMPOSED[name]])
        return self._built[name]

    def __iter__(self) -> Iterator[str]:
        return iter(COMPOSED)

    def __len__(self) -> int:
        return len(COMPOSED)


def _create(part: str) -> Pipeline:
    return importlib.import_module(f"simple_cnn.pipelines.{part}").create_pipeline()


def register_pipelines() -> Mapping[str, Pipeline]:
    """``cnn`` and ``hog_svm`` each include ingestion, so each runs on its own; ``reporting``
    compares their saved results and the first lesson's; ``first_lesson`` measures both saved
    models under transforms and the SVM's cost; ``ablation`` (the study: many trainings) includes
    ingestion; ``predict`` classifies your own images with a saved model; ``__default__`` is
    everything but the study and ``predict``."""
    return LazyPipelines(_create)
