"""The typed parameter groups: one pydantic model per ``conf/base/parameters_<group>.yml``.

Node functions annotate their ``params:<group>`` input with these models, so Kedro validates
and instantiates them when the session starts, before any node runs. The defaults here equal
``conf/base`` (a test holds them together); a group's sub-models live beside the code they
configure (``ModelParams`` with the model, ``TrainConfig`` with the loop, ``HogParams`` with
the features, the classifier settings with the classifiers).

``python -m simple_cnn.parameters`` writes the JSON Schemas that the YAML files reference for
editor completion (``docs/schemas/``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from simple_cnn.ablation.studies import AblationParams
from simple_cnn.classifier_params import (
    ClassifierName,
    ClassifierParams,
    KernelApproxParams,
    LinearSvcParams,
    RbfSvcParams,
    SgdParams,
)
from simple_cnn.data.cifar10 import RECORDS_PER_BATCH, TRAIN_MEMBERS
from simple_cnn.data.raw import val_size_problem
from simple_cnn.errors import ConfigError
from simple_cnn.features.extract import FeatureConfig, HogParams
from simple_cnn.first_lesson.robustness import RobustnessParams
from simple_cnn.first_lesson.svm_cost import SvmCostParams
from simple_cnn.models.config import ModelParams
from simple_cnn.params import Int, Model, ParameterGroup, invalid
from simple_cnn.presets import Preset
from simple_cnn.training.config import SEED_RANGE, TrainConfig


# ---------------------------------------------------------------------------------- ingestion
class SyntheticParams(Model):
    n_train: Int = Field(3000, ge=20)
    n_test: Int = Field(1000, ge=10)


class IngestionParams(ParameterGroup):
    key = "ingestion"

    source: Literal["cifar10", "image_folder", "synthetic"] = "cifar10"
    val_size: Int = 5000
    seed: Int = Field(42, ge=SEED_RANGE[0], le=SEED_RANGE[1])
    image_size: Int = Field(32, ge=8, le=512)
    synthetic: SyntheticParams = SyntheticParams()

    @model_validator(mode="after")
    def _val_size_fits(self) -> IngestionParams:
        """Where the training-set size is known before reading (CIFAR-10, synthetic), the
        split's size is checked now; for an image folder, when the folder is read."""
        known = {"cifar10": RECORDS_PER_BATCH * len(TRAIN_MEMBERS), "synthetic": self.synthetic.n_train}
        problem = val_size_problem(self.val_size, known.get(self.source))
        if problem:
            raise invalid("val_size", self.val_size, problem)
        return self


# ------------------------------------------------------------------------------------ hog_svm
class HogSvmParams(ParameterGroup):
    key = "hog_svm"

    features: Literal["hog", "pixels", "hog+color"] = "hog+color"
    hog: HogParams = HogParams()
    color_histogram_bins: Int = Field(8, ge=1, le=256)
    train_on_flips: bool = True
    seed: Int = Field(0, ge=SEED_RANGE[0], le=SEED_RANGE[1])
    classifier: ClassifierName = "kernel_approx"
    linear_svc: LinearSvcParams = LinearSvcParams()
    rbf_svc: RbfSvcParams = RbfSvcParams()
    kernel_approx: KernelApproxParams = KernelApproxParams()
    sgd: SgdParams = SgdParams()

    @property
    def classifier_params(self) -> ClassifierParams:
        """The settings of the chosen classifier."""
        return getattr(self, self.classifier)

    def feature_config(self, image_shape: tuple[int, int]) -> FeatureConfig:
        """The feature settings, checked against the image size (first known from the data)."""
        config = FeatureConfig(self.features, self.hog, self.color_histogram_bins)
        try:
            return config.check(image_shape)
        except ConfigError as error:
            raise ConfigError(f"{self.key}.hog.{error}") from None


# ---------------------------------------------------------------------------------------- cnn
class AugmentationParams(Model):
    preset: Preset = "standard"


class EvaluationParams(Model):
    flip_tta: bool = True
    batch_size: Int = Field(1024, ge=1)


class PlotParams(Model):
    feature_map_layer: str = "features.0.act"
    n_feature_map_images: Int = Field(4, ge=1, le=16)


def feature_map_layers(model: ModelParams) -> list[str]:
    """Names of the conv blocks' layers (``features.<block>.<conv|norm|act|pool>``)."""
    parts = ("conv", "norm", "act", "pool") if model.pool else ("conv", "norm", "act")
    return [f"features.{block}.{part}" for block in range(model.num_blocks) for part in parts]


class CnnParams(ParameterGroup):
    key = "cnn"

    model: ModelParams = ModelParams()
    augmentation: AugmentationParams = AugmentationParams()
    training: TrainConfig = TrainConfig()
    evaluation: EvaluationParams = EvaluationParams()
    plots: PlotParams = PlotParams()

    @model_validator(mode="after")
    def _layer_exists(self) -> CnnParams:
        layers = feature_map_layers(self.model)
        if self.plots.feature_map_layer not in layers:
            raise invalid("plots.feature_map_layer", self.plots.feature_map_layer,
                          f"is not a layer of the model; choose one of: {', '.join(layers)}")
        return self


# ------------------------------------------------------------------------------ first_lesson
class FirstLessonParams(ParameterGroup):
    """``first_lesson``: HOG + SVM against the CNN under transforms, the SVM's cost as data
    grows, and the settings of the three claims' verdicts (the ablation study's rule)."""

    key = "first_lesson"

    robustness: RobustnessParams = RobustnessParams()
    svm_cost: SvmCostParams = SvmCostParams()
    small_shift: Int = Field(4, ge=1)
    quadratic_slope: float = Field(2.0, gt=0)  # "at least quadratically": the exact SVM's slope above it
    linear_slope_band: tuple[float, float] = (0.8, 1.3)  # "about linearly": a slope inside it
    alpha: float = Field(0.05, gt=0, lt=0.5)
    min_effect: float = Field(1.0, ge=0)  # points of accuracy or consistency that count
    margin: float = Field(1.0, ge=0)  # within +-margin points: no meaningful difference
    bootstrap_resamples: Int = Field(2000, ge=100)

    @model_validator(mode="after")
    def _small_shifts_listed(self) -> FirstLessonParams:
        if min(self.robustness.shift) > self.small_shift:
            raise invalid("small_shift", self.small_shift,
                          f"is below every listed shift ({self.robustness.shift}); the "
                          "consistency claim needs at least one shift of at most this many pixels")
        low, high = self.linear_slope_band
        if not 0 < low < 1 < high:
            raise invalid("linear_slope_band", list(self.linear_slope_band), "must be a band "
                          "[low, high] around 1 (low < 1 < high): what 'about linearly' allows")
        if self.margin > self.min_effect:
            raise invalid("margin", self.margin, f"is above min_effect={self.min_effect:g}; keep "
                          "margin <= min_effect")
        return self


# ------------------------------------------------------------------------------------ predict
class PredictParams(ParameterGroup):
    """``predict``: where the images to classify are, and what to report of each."""

    key = "predict"

    source: str = Field("data/01_raw/predict", min_length=1)
    top_k: Int = Field(3, ge=1, le=10)
    batch_size: Int = Field(256, ge=1)
    flip_tta: bool | None = None  # None: as the model was evaluated (what the served model does)
    contact_sheet_images: Int = Field(48, ge=1, le=400)


def image_side(ingestion: IngestionParams) -> int:
    """The side of the square images that ``ingestion`` will produce."""
    return 32 if ingestion.source == "cifar10" else ingestion.image_size


def _side(ingestion: IngestionParams) -> int:
    return image_side(ingestion)


def _check_first_lesson(lesson: FirstLessonParams, ingestion, hog_svm) -> None:
    """The first lesson's shifts fit the images; its SVM sizes fit the kernel map's PCA."""
    if ingestion is not None and max(lesson.robustness.shift) >= _side(ingestion) / 2:
        raise ConfigError(f"first_lesson.robustness.shift={lesson.robustness.shift}: a shift "
                          f"must be below half the image side ({_side(ingestion)} pixels).")
    pca = hog_svm.kernel_approx.pca_components if hog_svm is not None else 0
    if "kernel_approx" in lesson.svm_cost.classifiers and pca and min(lesson.svm_cost.sizes) < pca:
        raise ConfigError(
            f"first_lesson.svm_cost.sizes={lesson.svm_cost.sizes}: kernel_approx fits a PCA of "
            f"hog_svm.kernel_approx.pca_components={pca} components, which needs at least "
            f"{pca} training rows; start the sizes at {pca} or more.")


READS = {"hog_svm": {"ingestion"}, "first_lesson": {"ingestion", "hog_svm"}, "ablation": {"cnn"}}
"""The other groups each group's cross-group rules read."""


def typed_groups(params: dict, used: set[str]) -> dict:
    """The groups a run uses (and those their rules read), each as its model: Kedro hands over
    the groups its nodes declare as models, the others as the raw dicts of the YAML. A group no
    rule of the run reads is not validated: a typo in ``cnn`` must not stop an ingestion run."""
    models = {group.key: group for group in GROUPS}
    needed = used.union(*(READS.get(key, set()) for key in used))
    return {key: models[key].model_validate(value) if key in models and isinstance(value, dict) else value
            for key, value in params.items() if key in needed}


def check_across_groups(params: dict, used: set[str]) -> None:
    """Rules between groups, for the groups a run uses (``used``: ``{"cnn", ...}``): HOG cells
    and blocks fit the images that ``ingestion`` makes; the first lesson's shifts and SVM sizes
    fit the images and the kernel map. Raw groups are validated first. Raises
    :class:`ConfigError`. Imports no heavy library (see :func:`simple_cnn.device_checks.check_devices`)."""
    params = typed_groups(params, used)
    ingestion, hog_svm = params.get("ingestion"), params.get("hog_svm")
    if {"ingestion", "hog_svm"} <= used and hog_svm is not None:
        side = _side(ingestion) if ingestion is not None else 32
        hog_svm.feature_config((side, side))
    lesson = params.get("first_lesson")
    if "first_lesson" in used and lesson is not None:
        _check_first_lesson(lesson, ingestion, hog_svm)


GROUPS: tuple[type[ParameterGroup], ...] = (IngestionParams, HogSvmParams, CnnParams, AblationParams,
                                            FirstLessonParams, PredictParams)
SCHEMA_FOLDER = Path("docs/schemas")


def schema(group: type[ParameterGroup]) -> dict:
    """JSON Schema of a ``parameters_<group>.yml`` file: one top-level key, the group."""
    inner = group.model_json_schema()
    defs = inner.pop("$defs", {})
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"parameters_{group.key}.yml",
        "type": "object",
        "properties": {group.key: inner},
        "additionalProperties": False,
        "$defs": defs,
    }


def write_schemas(folder: Path = SCHEMA_FOLDER) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for group in GROUPS:
        path = folder / f"parameters_{group.key}.json"
        path.write_text(json.dumps(schema(group), indent=2) + "\n")
        written.append(path)
    return written


if __name__ == "__main__":  # python -m simple_cnn.parameters [folder]
    for path in write_schemas(Path(sys.argv[1]) if len(sys.argv) > 1 else SCHEMA_FOLDER):
        print(f"wrote {path}")
