"""Nodes of the ablation pipeline. Training and evaluation are the cnn pipeline's own node
functions; these set up each run, record it (a diverged run is a result), and sum up."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from simple_cnn.ablation import figures
from simple_cnn.ablation.report import ablation_html
from simple_cnn.ablation.studies import AblationParams, Run, factors, run_parameters
from simple_cnn.ablation.summary import summarise
from simple_cnn.errors import NonFiniteLossError
from simple_cnn.parameters import CnnParams
from simple_cnn.pipelines.cnn.nodes import evaluate_cnn, inference, train_cnn, training_part
from simple_cnn.training.diagnostics import dead_units

logger = logging.getLogger(__name__)

Split = dict[str, np.ndarray]


def _typed(value: Any, model: type) -> Any:
    """Kedro hands a ``params:`` input over as its model when a node of the run declares it."""
    return value if isinstance(value, model) else model.model_validate(value)


@dataclass(frozen=True)
class RunNodes:
    """The node functions of one variant x seed, bound to it (bound methods keep their type
    hints for Kedro's parameter validation, and pickle for ParallelRunner)."""

    run: Run

    def configure_run(self, cnn: CnnParams, ablation: AblationParams) -> CnnParams:
        """The ``cnn`` parameters of this run."""
        return run_parameters(_typed(cnn, CnnParams).model_dump(), _typed(ablation, AblationParams),
                              self.run)

    def train_and_evaluate_run(
        self, train_split: Split, val_split: Split, test_split: Split,
        dataset_summary: dict[str, Any], cnn_checkpoint: Path, run_params: CnnParams,
        ablation: AblationParams,
    ) -> dict[str, Any]:
        """Train with ``train_cnn`` and return the run's row of results. A diverged run is a
        result too: its row says where it diverged."""
        ablation = _typed(ablation, AblationParams)
        outcome = train_run(train_split, val_split, dataset_summary, cnn_checkpoint, run_params,
                            ablation)
        return record_run(outcome, train_split, val_split, test_split, dataset_summary,
                          run_params, ablation, run=self.run)


def train_run(
    train_split: Split, val_split: Split, dataset_summary: dict[str, Any], cnn_checkpoint: Path,
    run_params: CnnParams, ablation: AblationParams,
) -> dict[str, Any]:
    """``train_cnn`` on the run's parameters; a diverged run returns its divergence instead of
    raising, so that the study goes on."""
    val = _head(val_split, ablation.val_images)
    try:
        model, history = train_cnn(train_split, val, dataset_summary, cnn_checkpoint, run_params)
    except NonFiniteLossError as error:
        logger.warning("Diverged: %s", error)
        return {"model": None, "history": None, "divergence": {"message": str(error), **error.details}}
    return {"model": model, "history": history, "divergence": None}


def record_run(
    training_outcome: dict[str, Any], train_split: Split, val_split: Split, test_split: Split,
    dataset_summary: dict[str, Any], run_params: CnnParams, ablation: AblationParams, *, run: Run,
) -> dict[str, Any]:
    """One row of ``ablation_results``: what the run scored, cost and left dead, or where it
    diverged."""
    training = run_params.training
    trained_on = training_part(train_split, training)
    row = {"study": run.study, "variant": run.variant, "seed": run.seed,
           "namespace": run.namespace, "factors": factors(ablation, run),
           "n_train": len(trained_on["labels"]),
           "steps": training.max_steps, "batch_size": training.batch_size}
    divergence = training_outcome["divergence"]
    if divergence is not None:
        return {**row, **_no_scores(), "diverged": True,
                "divergence": {k: v for k, v in divergence.items() if k != "lr_per_step"},
                "lr_per_step": divergence.get("lr_per_step", [])}
    model, history = training_outcome["model"], training_outcome["history"]
    _, metrics = evaluate_cnn(model, test_split, dataset_summary, run_params)
    clean = inference(model, dataset_summary, run_params)
    train_seen = _head(trained_on, ablation.val_images)
    val = _head(val_split, ablation.val_images)
    train_accuracy, val_accuracy = (_accuracy(clean, split, run_params) for split in (train_seen, val))
    dead = dead_units(clean.model, clean.prepared(val["images"]).float())
    seconds = history["train_seconds"]
    return {
        **row, "diverged": False, "divergence": None,
        "test_accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"],
        "train_accuracy": train_accuracy, "val_accuracy": val_accuracy,
        "gap": train_accuracy - val_accuracy, "best_epoch": history["best_epoch"],
        "epochs": len(history["epoch"]), "train_seconds": seconds,
        "images_per_second": history["total_steps"] * training.batch_size / seconds,
        "skipped_steps": int(sum(history["skipped_steps"])), "device": history["device"],
        "amp": history["amp"], "augmentation": history["augmentation"],
        "dead_units": dead, "dead_unit_fraction": None if dead is None else float(np.mean(list(dead.values()))),
        "lr_per_step": history["lr_per_step"],
    }


def _no_scores() -> dict[str, Any]:
    keys = ("test_accuracy", "macro_f1", "train_accuracy", "val_accuracy", "gap", "best_epoch",
            "epochs", "train_seconds", "images_per_second", "skipped_steps", "device", "amp",
            "augmentation", "dead_units", "dead_unit_fraction")
    return dict.fromkeys(keys)


def _accuracy(clean, split: Split, params: CnnParams) -> float:
    logits = clean.logits(split["images"], params.evaluation.batch_size)
    return float((logits.argmax(1).cpu().numpy() == split["labels"]).mean())


def _head(split: Split, n: int) -> Split:
    return {key: value[:n] for key, value in split.items()}


def summarise_ablation(ablation: AblationParams, *runs: dict[str, Any]) -> tuple[list, dict]:
    """Every run's row (``ablation_results``) and, per study, mean/std/n per variant and the
    claim's verdict (``ablation_summary``)."""
    records = list(runs)
    summary = summarise(records, ablation)
    finished = [r for r in records if not r["diverged"]]
    summary["budget"] = {
        "max_steps": ablation.max_steps, "seeds": ablation.seeds, "val_images": ablation.val_images,
        "device": sorted({r["device"] for r in finished}), "amp": sorted({r["amp"] for r in finished}),
        "train_seconds_total": round(sum(r["train_seconds"] for r in finished), 1),
    }
    for name, study in summary["studies"].items():
        logger.info("Study %s: %s (%s)", name, study["verdict"], study["reason"])
    return records, summary


def plot_ablation_accuracy(ablation_summary: dict[str, Any]) -> Figure:
    return figures.study_accuracy(ablation_summary)


def plot_ablation_augmentation_heatmap(ablation_results: list[dict[str, Any]]) -> Figure:
    return figures.augmentation_heatmap(ablation_results)


def plot_ablation_dead_units(ablation_results: list[dict[str, Any]]) -> Figure:
    return figures.dead_units_by_layer(ablation_results)


def plot_ablation_batch_size(ablation_results: list[dict[str, Any]]) -> Figure:
    return figures.accuracy_vs_batch_size(ablation_results)


def plot_ablation_warmup_lr(ablation_results: list[dict[str, Any]]) -> Figure:
    return figures.warmup_lr_traces(ablation_results)


def plot_warmup_wrapper_bug(cnn: CnnParams) -> Figure:
    """The hand-rolled warmup wrapper's LR beside the project's schedule, for cnn.training."""
    return figures.warmup_wrapper_bug(cnn.training)


def build_ablation_report(
    ablation_summary: dict[str, Any], ablation_results: list[dict[str, Any]], cnn: CnnParams,
) -> str:
    """The self-contained HTML report: a section per claim, then every figure."""
    return ablation_html(ablation_summary, ablation_summary["budget"], {
        "Augmentation preset x training-set size": figures.augmentation_heatmap(ablation_results),
        "Dead units per layer": figures.dead_units_by_layer(ablation_results),
        "Accuracy vs batch size per normalisation": figures.accuracy_vs_batch_size(ablation_results),
        "Warmup variants' learning rate": figures.warmup_lr_traces(ablation_results),
        "A hand-rolled warmup wrapper vs LinearLR + SequentialLR":
            figures.warmup_wrapper_bug(cnn.training),
    })
