"""One CNN training run from the splits and the ``cnn`` parameters, and its evaluation.

Plain Python (no Kedro): the ``cnn`` pipeline uses these as its nodes ``train_cnn`` and
``evaluate_cnn``, and the ``ablation`` nodes train and evaluate every study run with them. As
node functions they import torch (and the model's format) inside, when they run, not when a
pipeline names them.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from simple_cnn.data.raw import stratified_subset
from simple_cnn.parameters import CnnParams
from simple_cnn.training.config import TrainConfig

logger = logging.getLogger(__name__)

Split = dict[str, np.ndarray]


def train_cnn(
    train_split: Split,
    val_split: Split,
    dataset_summary: dict[str, Any],
    cnn_checkpoint: Path | None,
    params: CnnParams,
    keep_at: tuple[float, ...] = (),
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train SimpleCNN; return the model (the best validation epoch's weights, with what its
    evaluation reports of the run) and the training history.

    ``keep_at`` (fractions of the run's steps; not a node input) adds ``kept``: fraction -> the
    best weights when the run had trained that part of its budget, and the history's
    ``kept_steps``: fraction -> that number of steps.
    A checkpoint is written to ``cnn_checkpoint`` every epoch (``resume: true`` continues it;
    None: none is kept, as in a study's runs, which are redone whole).
    With ``training.fraction`` below 1 it trains on a seeded, stratified part of the split.
    ``training.distributed`` (or torchrun) trains on several processes; rank 0's result."""
    import torch

    from simple_cnn import model_format
    from simple_cnn.models import simple_cnn as models
    from simple_cnn.training import launch

    config = model_format.model_config(params, dataset_summary)
    train_config = params.training
    train_split = training_part(train_split, train_config)
    augment = model_format.batch_augment(params, dataset_summary, config, len(train_split["labels"]))
    torch.manual_seed(train_config.seed)  # the same seed gives the same initial weights
    model = models.SimpleCNN(config)
    total = train_config.total_steps(train_config.steps_per_epoch(len(train_split["labels"])))
    steps = {fraction: max(1, round(fraction * total)) for fraction in keep_at}
    result = launch.fit_on_processes(
        model,
        model_format.model_images(train_split["images"], config), train_split["labels"],
        model_format.model_images(val_split["images"], config), val_split["labels"],
        augment, train_config, checkpoint_path=cnn_checkpoint, model_config=config.model_dump(),
        keep_at=tuple(sorted(set(steps.values()))),
    )
    history = {**result.history, "device": result.device, "amp": result.amp,
               "augmentation": augment.preset}
    if history["best_val_accuracy"] is None:
        logger.info("No validation split: kept the last epoch (%d); %.1f s of training.",
                    history["best_epoch"], history["train_seconds"])
    else:
        logger.info("Best val accuracy %.4f at epoch %d; %.1f s of training.",
                    history["best_val_accuracy"], history["best_epoch"], history["train_seconds"])
    model_dict = {"state_dict": result.best_state, "training": _run_details(history),
                  **model_format.describe_model(config, dataset_summary["class_names"],
                                             model_format.normaliser(params, dataset_summary, config),
                                             flip_tta=params.evaluation.flip_tta)}
    if keep_at:
        model_dict["kept"] = {fraction: result.kept[step] for fraction, step in steps.items()}
        history["kept_steps"] = steps
    return model_dict, history


def training_part(split: Split, training: TrainConfig) -> Split:
    """The part of the training split a run trains on: all of it, or ``training.fraction`` of it
    (seeded by ``training.seed``, stratified)."""
    keep = stratified_subset(split["labels"], training.fraction, training.seed)
    if len(keep) < len(split["labels"]):
        logger.info("Training on %d of %d training images (fraction %g, stratified).",
                    len(keep), len(split["labels"]), training.fraction)
    return {key: value[keep] for key, value in split.items()}


def _run_details(history: dict[str, Any]) -> dict[str, Any]:
    """What a model's evaluation reports of the run that trained it; kept with the weights so
    that an older model (``--load-versions cnn_model:...``) is reported as it was trained."""
    return {
        "epochs": len(history["epoch"]), "best_epoch": history["best_epoch"],
        "best_val_accuracy": history["best_val_accuracy"],
        "train_seconds": history["train_seconds"], "device": history["device"],
        "amp": history["amp"], "augmentation": history["augmentation"],
        "skipped_steps": int(sum(history["skipped_steps"])),  # fp16 inf/NaN gradients
        "world_size": history["world_size"], "global_batch_size": history["global_batch_size"],
        "images_per_second": float(np.mean(history["images_per_second"])),  # summed over ranks
    }


def evaluate_cnn(
    cnn_model: dict[str, Any], test_split: Split, params: CnnParams,
) -> tuple[Split, dict[str, Any]]:
    """Test predictions (optionally averaged with the mirrored image) and metrics, of the model
    as it was saved (its own configuration, whatever ``cnn.model`` says today), at the
    precision every later prediction of it uses (full precision: ``model_format.EVALUATION_AMP``),
    whatever the training's ``amp``."""
    import torch

    from simple_cnn import inference, model_format
    from simple_cnn import metrics as scores

    flip_tta, batch_size = params.evaluation.flip_tta, params.evaluation.batch_size
    run = inference.inference(cnn_model, params.training.device)
    started = time.perf_counter()
    logits = run.logits(test_split["images"], batch_size, flip_tta=flip_tta)
    probabilities = torch.softmax(logits, dim=1).cpu().numpy()
    predict_seconds = time.perf_counter() - started
    predictions = probabilities.argmax(1)
    metrics = scores.classification_metrics(test_split["labels"], predictions, run.class_names)
    metrics.update(
        model="SimpleCNN",
        **cnn_model["training"],
        predict_seconds=predict_seconds,
        flip_tta=flip_tta,
        evaluation_amp=model_format.evaluated_with(cnn_model)["amp"],
        n_parameters=sum(p.numel() for p in run.model.parameters()),
    )
    logger.info("CNN test accuracy %.4f, macro-F1 %.4f.", metrics["accuracy"], metrics["macro_f1"])
    return {"predictions": predictions, "probabilities": probabilities.astype(np.float32)}, metrics
