"""The trained CNN as an MLflow model that answers over HTTP (``mlflow models serve``).

A tracked run that saves ``cnn_model`` logs it with MLflow's pyfunc flavour, as ``simple-cnn``
in the run and registered under the model name ``simple-cnn`` (so ``models:/simple-cnn/latest``
is the newest). It answers what the ``predict`` pipeline writes, row for row, for image files
sent base64-encoded::

    POST /invocations
    {"dataframe_split": {"columns": ["file", "image"],
                         "data": [["cat.png", "<base64 of the file's bytes>"]]},
     "params": {"top_k": 3}}
    -> {"predictions": [{"file": "cat.png", "predicted_class": "cat", "probability": 0.91,
                         "top1_class": "cat", "top1_probability": 0.91, ..., "model_version": ...}]}

``file`` is optional (rows are then named ``0``, ``1``, ...). The image formats and limits are
the pipeline's (``simple_cnn.data.decode``), and so is the resize (the centre square, to the
model's size); a row that is not such an image, or one past the limits, is refused with its
name (HTTP 400), never answered with a guess. ``top_k`` is 1 to the number of classes;
``flip_tta`` (mirror averaging) is what the model was evaluated with unless a request sets it,
as in the ``predict`` pipeline. A request of no rows gets an answer of no rows.

Needs the ``mlflow`` extra; serve with this project installed: ``--env-manager local``.
"""

from __future__ import annotations

import base64
import binascii
import io
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc.model import PythonModel
from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema
from PIL import Image

from simple_cnn.data.decode import FORMATS, Limits
from simple_cnn.data.image_folder import decode_image
from simple_cnn.errors import DataError
from simple_cnn.inference import Inference, load, prediction_rows

NAME = "simple-cnn"
"""The logged model's name in its run, and the registered model's name."""
TOP_K = 3
REQUIREMENTS = ("torch", "torchvision", "kornia", "pillow", "pandas", "pydantic", "mlflow")


class ServedCnn(PythonModel):
    """The pyfunc model: the saved ``cnn_model`` file is its one artifact."""

    def load_context(self, context) -> None:
        self._run: Inference = load(context.artifacts["cnn_model"], "cpu")
        self._version = context.model_config.get("model_version")

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None
                ) -> pd.DataFrame:
        """The ``predict`` pipeline's table for the base64-encoded image files of ``image``."""
        top_k, flip_tta = _settings(params or {}, len(self._run.class_names), self._run.flip_tta)
        names = _names(model_input)
        if not names:
            return pd.DataFrame(columns=_columns(top_k))
        images = np.stack([_image(name, data, self._run.config.image_size)
                           for name, data in zip(names, model_input["image"])])
        top = self._run.predict(images, k=top_k, flip_tta=flip_tta)
        return pd.DataFrame(prediction_rows(names, top, self._version))


def _settings(params: dict[str, Any], n_classes: int, evaluated_tta: bool) -> tuple[int, bool]:
    """The request's ``top_k`` (1 to the number of classes) and ``flip_tta`` (the model's own
    unless set); a value outside them is refused naming the parameter."""
    top_k, flip_tta = params.get("top_k", TOP_K), params.get("flip_tta")
    if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer) or not 1 <= top_k <= n_classes:
        raise _refusal(f"params.top_k={top_k!r}: must be a whole number from 1 to {n_classes} "
                       f"(the model's classes).")
    if flip_tta is not None and not isinstance(flip_tta, bool | np.bool_):
        raise _refusal(f"params.flip_tta={flip_tta!r}: must be true or false (or left out: as "
                       f"the model was evaluated, {str(evaluated_tta).lower()}).")
    return int(top_k), evaluated_tta if flip_tta is None else bool(flip_tta)


def _columns(top_k: int) -> list[str]:
    ranks = [f"top{r}_{what}" for r in range(1, top_k + 1) for what in ("class", "probability")]
    return ["file", "predicted_class", "probability", *ranks, "model_version"]


def _names(model_input: pd.DataFrame) -> list[str]:
    if "image" not in model_input:
        raise _refusal(f"the request has columns {list(model_input.columns)}; send one row per "
                       "image file in a column named 'image' (its bytes, base64-encoded) and "
                       "optionally 'file' (its name).")
    if "file" in model_input and model_input["file"].notna().all():
        return [str(name) for name in model_input["file"]]
    return [str(i) for i in range(len(model_input))]


def _image(name: str, data: str, image_size: int) -> np.ndarray:
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise _refusal(f"row {name!r}: 'image' is not base64-encoded file bytes.") from None
    try:
        pixels = decode_image(name, raw, image_size, Limits())
    except DataError as error:
        raise _refusal(f"row {name!r}: {error}") from None
    if pixels is None:
        raise _refusal(f"row {name!r}: the bytes are not an image of the formats read "
                       f"({', '.join(FORMATS)}).")
    return pixels


def _refusal(message: str) -> MlflowException:
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


def _evaluated_tta(model_file: str | Path) -> bool:
    """The mirror averaging the saved model records (its weights are small: read in a blink)."""
    import torch

    from simple_cnn.model_format import evaluated_with

    return bool(evaluated_with(torch.load(model_file, map_location="cpu", weights_only=True))["flip_tta"])


def encode_file(path: str | Path) -> str:
    """A file's bytes as the request's ``image`` value."""
    return base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _example_input() -> pd.DataFrame:
    """One gray PNG: any size will do, the model resizes what it is sent."""
    buffer = io.BytesIO()
    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(buffer, "PNG")
    return pd.DataFrame({"file": ["gray.png"], "image": [base64.b64encode(buffer.getvalue()).decode()]})


def signature(flip_tta: bool, top_k: int = TOP_K) -> ModelSignature:
    """Columns in and out, and the ``top_k`` and ``flip_tta`` parameters a request may set
    (``flip_tta``'s default: as the model was evaluated)."""
    ranks = [ColSpec(kind, f"top{r}_{what}") for r in range(1, top_k + 1)
             for kind, what in (("string", "class"), ("double", "probability"))]
    return ModelSignature(
        inputs=Schema([ColSpec("string", "file", required=False), ColSpec("string", "image")]),
        outputs=Schema([ColSpec("string", "file"), ColSpec("string", "predicted_class"),
                        ColSpec("double", "probability"), *ranks,
                        ColSpec("string", "model_version", required=False)]),
        params=ParamSchema([ParamSpec("top_k", "long", top_k),
                            ParamSpec("flip_tta", "boolean", flip_tta)]))


def log_model(model_file: str | Path, model_version: str | None):
    """Log a saved ``cnn_model`` file to the active MLflow run as the served model ``simple-cnn``,
    registered under that name; MLflow's model info."""
    return mlflow.pyfunc.log_model(
        name=NAME, python_model=ServedCnn(), artifacts={"cnn_model": str(model_file)},
        model_config={"model_version": model_version}, signature=signature(_evaluated_tta(model_file)),
        input_example=_example_input(),
        pip_requirements=[f"{name}=={installed_version(name)}" for name in REQUIREMENTS],
        registered_model_name=NAME)
