"""Nodes of the predict pipeline."""

from __future__ import annotations

import logging
from typing import Any

from simple_cnn.data.image_folder import ImageFiles
from simple_cnn.errors import ConfigError
from simple_cnn.parameters import PredictParams

logger = logging.getLogger(__name__)


def classify_images(cnn_model: dict[str, Any], predict_images: ImageFiles,
                    params: PredictParams) -> tuple[Any, list[dict[str, str]], Any]:
    """Every image's top-k classes and probabilities, with the model's version (a pandas table a
    spreadsheet opens); the files not classified, with why; a contact sheet of the first
    images with their predicted class."""
    import pandas as pd

    from simple_cnn import inference, plots

    run = inference.inference(cnn_model)
    if params.top_k > len(run.class_names):
        raise ConfigError(f"predict.top_k={params.top_k} is more than the model's "
                          f"{len(run.class_names)} classes; choose 1 to {len(run.class_names)}.")
    names, images, skipped = predict_images.read(run.config.image_size)
    if skipped:
        shown = "; ".join(f"{name} ({why})" for name, why in skipped[:10])
        logger.warning("%d file(s) not classified: %s%s", len(skipped), shown,
                       " ..." if len(skipped) > 10 else "")
    top = run.predict(images, params.top_k, params.batch_size, params.flip_tta)
    version = cnn_model.get("version")
    rows = inference.prediction_rows(names, top, version)
    logger.info("Classified %d image(s) from %s with cnn_model %s.", len(rows), params.source,
                version or "(unversioned)")
    on_sheet = params.contact_sheet_images
    sheet = plots.contact_sheet(
        images[:on_sheet], [f"{n.rsplit('/', 1)[-1][:18]}\n{p[0][0]} {p[0][1]:.0%}"
                            for n, p in zip(names[:on_sheet], top[:on_sheet])],
        f"{len(rows)} image(s) classified by cnn_model {version or ''}".strip())
    unread = [{"file": name, "why": why} for name, why in skipped]
    return pd.DataFrame(rows), unread, sheet
