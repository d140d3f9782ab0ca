"""Nodes of the ablation pipeline. Training and evaluation are the cnn pipeline's own node
functions; these set up each run, record it (a diverged run is a result), and sum up. The
figure nodes return matplotlib figures; torch and matplotlib are imported when a node runs
(``simple_cnn.lazy``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simple_cnn.ablation.parts import NEEDS, PARTS, evaluation_parts, shuffled_part
from simple_cnn.ablation.rows import fingerprint, provenance
from simple_cnn.ablation.studies import AblationParams, Run, check_run_length, factors, run_parameters
from simple_cnn.ablation.summary import summarise
from simple_cnn.errors import ConfigError, NonFiniteLossError
from simple_cnn.lazy import deferred
from simple_cnn.parameters import CnnParams
from simple_cnn.training.run import evaluate_cnn, train_cnn, training_part

figures = deferred("simple_cnn.ablation.figures")
report = deferred("simple_cnn.ablation.report")
inference = deferred("simple_cnn.inference")
diagnostics = deferred("simple_cnn.training.diagnostics")

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

    def configure_run(self, cnn: CnnParams, ablation: AblationParams,
                      dataset_summary: dict[str, Any]) -> CnnParams:
        """The ``cnn`` parameters of this run, checked against the run's real length and the
        validation split (every run's ``configure_run`` runs before the first one trains)."""
        ablation = _typed(ablation, AblationParams)
        params = run_parameters(_typed(cnn, CnnParams).model_dump(), ablation, self.run)
        where = f"ablation.studies.{self.run.study}.variants.{self.run.variant}"
        check_run_length(params, dataset_summary["counts"]["train"]["per_class"], where)
        _check_parts(ablation, dataset_summary["counts"])
        return params

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


def _check_parts(ablation: AblationParams, counts: dict[str, Any]) -> None:
    needed, n_val = ablation.val_images + ablation.report_images, counts["val"]["total"]
    if needed > n_val:
        raise ConfigError(
            f"ablation.val_images={ablation.val_images} + ablation.report_images="
            f"{ablation.report_images} = {needed} exceed the validation split ({n_val} images): "
            "the images that pick each run's best epoch and those reported must not overlap; "
            "lower them or raise ingestion.val_size.")
    if ablation.test_images > counts["test"]["total"]:
        raise ConfigError(f"ablation.test_images={ablation.test_images} exceeds the test split "
                          f"({counts['test']['total']} images); lower it.")


def train_run(
    train_split: Split, val_split: Split, dataset_summary: dict[str, Any], cnn_checkpoint: Path,
    run_params: CnnParams, ablation: AblationParams,
) -> dict[str, Any]:
    """``train_cnn`` on the run's parameters, picking its best epoch on the selection images and
    keeping the best weights at each budget point; a diverged run returns its divergence
    instead of raising, so that the study goes on."""
    selection = shuffled_part(val_split, ablation.val_images)
    try:
        model, history = train_cnn(train_split, selection, dataset_summary, cnn_checkpoint,
                                   run_params, keep_at=tuple(ablation.budget_points))
    except NonFiniteLossError as error:
        logger.warning("Diverged: %s", error)
        return {"model": None, "history": None, "divergence": {"message": str(error), **error.details}}
    return {"model": model, "history": history, "divergence": None}


def record_run(
    training_outcome: dict[str, Any], train_split: Split, val_split: Split, test_split: Split,
    dataset_summary: dict[str, Any], run_params: CnnParams, ablation: AblationParams, *, run: Run,
) -> dict[str, Any]:
    """One row of ``ablation_results``: what made it (and its fingerprint), what the run scored
    at the end (every metric) and at each earlier budget point (the claim's metric), cost and
    left dead, or where it diverged."""
    training = run_params.training
    trained_on = training_part(train_split, training)
    made_with = provenance(run_params, ablation, dataset_summary)
    row = {"study": run.study, "variant": run.variant, "seed": run.seed,
           "train_seed": training.seed, "namespace": run.namespace, "factors": factors(ablation, run),
           "fingerprint": fingerprint(made_with), "made_with": made_with,
           "n_train": len(trained_on["labels"]), "batch_size": training.batch_size,
           "budget": ablation.studies[run.study].budget(ablation.max_steps),
           "chance": 1 / len(dataset_summary["class_names"])}
    divergence = training_outcome["divergence"]
    if divergence is not None:
        return {**row, **_no_scores(), "diverged": True,
                "steps": divergence.get("step"), "converged": False,
                "divergence": {k: v for k, v in divergence.items() if k != "lr_per_step"},
                "lr_per_step": divergence.get("lr_per_step", [])}
    model, history = training_outcome["model"], training_outcome["history"]
    parts = evaluation_parts(trained_on, val_split, test_split, ablation)
    claimed = {ablation.studies[run.study].test.metric}
    scores = {str(fraction): {"step": history["kept_steps"][fraction],
                              **_scores({**model, "state_dict": state}, parts, dataset_summary,
                                        run_params, None if fraction == 1 else claimed)}
              for fraction, state in model["kept"].items()}
    final = scores[str(ablation.budget_points[-1])]
    steps, seconds = len(history["lr_per_step"]), history["train_seconds"]
    return {
        **row, "diverged": False, "divergence": None, **{k: v for k, v in final.items() if k != "step"},
        "along_budget": scores, "best_epoch": history["best_epoch"], "epochs": len(history["epoch"]),
        "steps": steps, "passes": steps * training.batch_size / len(trained_on["labels"]),
        "converged": history["stopped_early"], "train_seconds": seconds,
        "images_per_second": steps * training.batch_size / seconds,
        "skipped_steps": int(sum(history["skipped_steps"])), "device": history["device"],
        "amp": history["amp"], "augmentation": history["augmentation"],
        "lr_per_step": history["lr_per_step"],
    }


def _scores(model: dict[str, Any], parts: dict[str, Split], dataset_summary: dict[str, Any],
            params: CnnParams, metrics: set[str] | None = None) -> dict[str, Any]:
    """Of one set of weights, ``metrics`` (all when None) and only what they need: test
    accuracy and macro-F1 (the test part), the reported val accuracy, the train-val gap on it,
    and the dead units (per layer, and the fraction of all units, on the reported images)."""
    needed = set().union(*(NEEDS.get(m, ()) for m in metrics)) if metrics else set(PARTS)
    out: dict[str, Any] = {}
    clean = inference.inference(model, params.training.device)  # at the model's evaluation precision
    if "test" in needed:
        _, test = evaluate_cnn(model, parts["test"], params)
        out.update(test_accuracy=test["accuracy"], macro_f1=test["macro_f1"])
    if "report" in needed:
        out["val_accuracy"] = _accuracy(clean, parts["report"], params)
        counts = diagnostics.dead_unit_counts(clean.model, clean.prepared(parts["report"]["images"]).float())
        out.update(dead_units=None if counts is None else {k: d / n for k, (d, n) in counts.items()},
                   dead_unit_fraction=diagnostics.dead_fraction_of_all_units(counts))
    if "train" in needed:
        out["train_accuracy"] = _accuracy(clean, parts["train"], params)
        out["gap"] = out["train_accuracy"] - out["val_accuracy"]
    return out


def _no_scores() -> dict[str, Any]:
    keys = ("test_accuracy", "macro_f1", "train_accuracy", "val_accuracy", "gap", "best_epoch",
            "epochs", "passes", "train_seconds", "images_per_second", "skipped_steps", "device",
            "amp", "augmentation", "dead_units", "dead_unit_fraction", "along_budget")
    return dict.fromkeys(keys)


def _accuracy(clean, split: Split, params: CnnParams) -> float:
    logits = clean.logits(split["images"], params.evaluation.batch_size)
    return float((logits.argmax(1).cpu().numpy() == split["labels"]).mean())


def summarise_ablation(ablation: AblationParams, *runs: dict[str, Any]) -> tuple[list, dict]:
    """Every run's row (``ablation_results``) and, per study, its regime, mean/std/n per
    variant, the paired test at the end and along the budget, and the claim's verdict
    (``ablation_summary``)."""
    records = list(runs)
    summary = summarise(records, ablation)
    finished = [r for r in records if not r["diverged"]]
    summary["budget"] = {
        "seeds": ablation.seeds, "selection images": ablation.val_images,
        "reported images": ablation.report_images, "test images": ablation.test_images,
        "budget points": ablation.budget_points,
        "device": sorted({r["device"] for r in finished}), "amp": sorted({r["amp"] for r in finished}),
        "train seconds total": round(sum(r["train_seconds"] for r in finished), 1),
    }
    summary["preview"] = ablation.preview
    for name, study in summary["studies"].items():
        logger.info("Study %s: %s (%s)", name, study["verdict"], study["reason"])
    return records, summary


def plot_ablation_accuracy(ablation_summary: dict[str, Any]):
    return figures.study_accuracy(ablation_summary)


def plot_ablation_augmentation_heatmap(ablation_results: list[dict[str, Any]]):
    return figures.augmentation_heatmap(ablation_results)


def plot_ablation_dead_units(ablation_results: list[dict[str, Any]]):
    return figures.dead_units_by_layer(ablation_results)


def plot_ablation_batch_size(ablation_results: list[dict[str, Any]]):
    return figures.accuracy_vs_batch_size(ablation_results)


def plot_ablation_warmup_lr(ablation_results: list[dict[str, Any]]):
    return figures.warmup_lr_traces(ablation_results)


def plot_warmup_wrapper_bug(cnn: CnnParams):
    """The hand-rolled warmup wrapper's LR beside the project's schedule, for cnn.training."""
    return figures.warmup_wrapper_bug(cnn.training)


def build_ablation_report(
    ablation_summary: dict[str, Any], ablation_results: list[dict[str, Any]], cnn: CnnParams,
    newest_first_lesson_verdicts: dict[str, Any] | None = None,
) -> str:
    """The self-contained HTML report: the forest plot, a section per claim, the first
    lesson's claims beside them (the newest verdicts of ``kedro run``, if any), then the
    figures that have something to show."""
    return report.ablation_html(ablation_summary, ablation_summary["budget"],
                         figures.report_figures(ablation_results, cnn.training),
                         newest_first_lesson_verdicts)
