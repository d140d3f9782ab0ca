"""Nodes of the ablation pipeline. Training and evaluation are the cnn pipeline's own node
functions (the core's ``training/run.py``); these set up each run, record it (a diverged run is
a result, a run its claim no longer needs says so), decide after each round, and sum up. The
figure nodes return matplotlib figures; torch and matplotlib are imported inside the node
functions, when they run."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel

from simple_cnn.ablation.parts import NEEDS, PARTS, evaluation_parts, shuffled_part
from simple_cnn.ablation.rows import fingerprint, provenance, skipped_provenance
from simple_cnn.ablation.runs import check_run_length, factors, run_parameters
from simple_cnn.ablation.sequential import decision, pack
from simple_cnn.ablation.studies import AblationParams, Run
from simple_cnn.ablation.summary import summarise
from simple_cnn.errors import ConfigError, NonFiniteLossError
from simple_cnn.parameters import CnnParams
from simple_cnn.training.run import evaluate_cnn, train_cnn, training_part

logger = logging.getLogger(__name__)

Split = dict[str, np.ndarray]


def _typed(value: Any, model: type[BaseModel]) -> Any:
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

    def decide_whether_to_run(self, ablation: AblationParams, *earlier: dict[str, Any]) -> dict[str, Any]:
        """Is this run's claim still open after the look before its round? Read from the rows
        of the study's earlier rounds (``sequential.decision``)."""
        ablation = _typed(ablation, AblationParams)
        return decision(self.run.study, list(earlier), ablation, self.run.round - 1)

    def train_and_evaluate_run(
        self, train_split: Split, val_split: Split, test_split: Split,
        dataset_summary: dict[str, Any], run_params: CnnParams, ablation: AblationParams,
        round_decision: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Train with ``train_cnn`` and return the run's row of results. A diverged run is a
        result too: its row says where it diverged. A run of a later round whose claim was
        decided at the look before (``round_decision``) trains nothing: its row says so."""
        ablation = _typed(ablation, AblationParams)
        made_with = provenance(run_params, ablation, dataset_summary,
                               ablation.studies[self.run.study].metrics)
        if round_decision is not None and not round_decision["open"]:
            logger.info("%s: its claim was decided (%s) after %d seeds; this run is not needed.",
                        self.run.namespace, round_decision["verdict"], round_decision["decided_after_seeds"])
            return skipped_row(self.run, ablation, made_with, round_decision)
        outcome = train_run(train_split, val_split, dataset_summary, run_params, ablation)
        return record_run(outcome, train_split, val_split, test_split, dataset_summary,
                          run_params, ablation, run=self.run, made_with=made_with)


@dataclass(frozen=True)
class StudyNodes:
    """The node functions of one study: its rows collected for the summary."""

    study: str

    def collect_study_rows(self, *rows: dict[str, Any]) -> list[dict[str, Any]]:
        """The study's rows, for the summary."""
        return list(rows)


def skipped_row(run: Run, ablation: AblationParams, made_with: dict[str, Any],
                decided: dict[str, Any]) -> dict[str, Any]:
    """The row of a run its claim no longer needed: the decision that made it so."""
    made_with = skipped_provenance(made_with, decided)
    return {"study": run.study, "variant": run.variant, "seed": run.seed,
            "namespace": run.namespace, "factors": factors(ablation, run),
            "fingerprint": fingerprint(made_with), "made_with": made_with, "diverged": False,
            "skipped": {"after_look": decided["after_look"], "verdict": decided["verdict"],
                        "decided_after_seeds": decided["decided_after_seeds"]}}


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
    train_split: Split, val_split: Split, dataset_summary: dict[str, Any], run_params: CnnParams,
    ablation: AblationParams,
) -> dict[str, Any]:
    """``train_cnn`` on the run's parameters, picking its best epoch on the selection images and
    keeping the best weights at each budget point; a diverged run returns its divergence
    instead of raising, so that the study goes on."""
    selection = shuffled_part(val_split, ablation.val_images)
    try:
        model, history = train_cnn(train_split, selection, dataset_summary, None, run_params,
                                   keep_at=tuple(ablation.budget_points))
    except NonFiniteLossError as error:
        logger.warning("Diverged: %s", error)
        return {"model": None, "history": None, "divergence": {"message": str(error), **error.details}}
    return {"model": model, "history": history, "divergence": None}


def record_run(
    training_outcome: dict[str, Any], train_split: Split, val_split: Split, test_split: Split,
    dataset_summary: dict[str, Any], run_params: CnnParams, ablation: AblationParams, *, run: Run,
    made_with: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One row of ``ablation_results``: what made it (and its fingerprint), what the run scored
    at the end (every metric, and which test and reported images it got right) and at each
    earlier budget point (its claim's metrics), cost and units left dead, or where it diverged."""
    training, spec = run_params.training, ablation.studies[run.study]
    trained_on = training_part(train_split, training)
    made_with = made_with or provenance(run_params, ablation, dataset_summary, spec.metrics)
    row = {"study": run.study, "variant": run.variant, "seed": run.seed,
           "train_seed": training.seed, "namespace": run.namespace, "factors": factors(ablation, run),
           "fingerprint": fingerprint(made_with), "made_with": made_with,
           "n_train": len(trained_on["labels"]), "batch_size": training.batch_size,
           "budget": spec.budget(ablation.max_steps),
           "chance": 1 / len(dataset_summary["class_names"])}
    divergence = training_outcome["divergence"]
    if divergence is not None:
        return {**row, **_no_scores(), "diverged": True,
                "steps": divergence.get("step"), "converged": False,
                "divergence": {k: v for k, v in divergence.items() if k != "lr_per_step"},
                "lr_per_step": divergence.get("lr_per_step", [])}
    model, history = training_outcome["model"], training_outcome["history"]
    parts = evaluation_parts(trained_on, val_split, test_split, ablation)
    scores = {str(fraction): {"step": history["kept_steps"][fraction],
                              **_scores({**model, "state_dict": state}, parts, run_params,
                                        None if fraction == 1 else set(spec.metrics))}
              for fraction, state in model["kept"].items()}
    final = scores[str(ablation.budget_points[-1])]
    per_image = final.pop("per_image")
    for point in scores.values():
        point.pop("per_image", None)
    steps, seconds = len(history["lr_per_step"]), history["train_seconds"]
    return {
        **row, "diverged": False, "divergence": None, **{k: v for k, v in final.items() if k != "step"},
        "per_image": per_image,
        "along_budget": scores, "best_epoch": history["best_epoch"], "epochs": len(history["epoch"]),
        "steps": steps, "passes": steps * training.batch_size / len(trained_on["labels"]),
        "converged": history["stopped_early"], "train_seconds": seconds,
        "images_per_second": steps * training.batch_size / seconds,
        "skipped_steps": int(sum(history["skipped_steps"])), "device": history["device"],
        "amp": history["amp"], "augmentation": history["augmentation"],
        "lr_per_step": history["lr_per_step"],
    }


def _scores(model: dict[str, Any], parts: dict[str, Split], params: CnnParams,
            metrics: set[str] | None = None) -> dict[str, Any]:
    """Of one set of weights, ``metrics`` (all when None) and only what they need: test
    accuracy and macro-F1 (the test part), the reported val accuracy, the train-val gap on it,
    and the dead units (per layer, and the fraction of all units, on the reported images);
    with every metric, which test and reported images it got right (``per_image``)."""
    from simple_cnn import inference
    from simple_cnn.training import diagnostics

    needed = set().union(*(NEEDS.get(m, ()) for m in metrics)) if metrics else set(PARTS)
    out: dict[str, Any] = {}
    clean = inference.inference(model, params.training.device)  # at the model's evaluation precision
    right: dict[str, np.ndarray] = {}
    if "test" in needed:
        predictions, test = evaluate_cnn(model, parts["test"], params)
        right["test"] = predictions["predictions"] == parts["test"]["labels"]
        out.update(test_accuracy=test["accuracy"], macro_f1=test["macro_f1"])
    if "report" in needed:
        right["report"] = _right(clean, parts["report"], params)
        out["val_accuracy"] = float(right["report"].mean())
        counts = diagnostics.dead_unit_counts(clean.model, clean.prepared(parts["report"]["images"]).float())
        out.update(dead_units=None if counts is None else {k: d / n for k, (d, n) in counts.items()},
                   dead_unit_fraction=diagnostics.dead_fraction_of_all_units(counts))
    if "train" in needed:
        out["train_accuracy"] = float(_right(clean, parts["train"], params).mean())
        out["gap"] = out["train_accuracy"] - out["val_accuracy"]
    if metrics is None:
        out["per_image"] = {part: pack(correct) for part, correct in right.items()}
    return out


def _no_scores() -> dict[str, Any]:
    keys = ("test_accuracy", "macro_f1", "train_accuracy", "val_accuracy", "gap", "best_epoch",
            "epochs", "passes", "train_seconds", "images_per_second", "skipped_steps", "device",
            "amp", "augmentation", "dead_units", "dead_unit_fraction", "along_budget", "per_image")
    return dict.fromkeys(keys)


def _right(clean, split: Split, params: CnnParams) -> np.ndarray:
    logits = clean.logits(split["images"], params.evaluation.batch_size)
    return logits.argmax(1).cpu().numpy() == split["labels"]


def summarise_ablation(ablation: AblationParams, *study_rows: list[dict[str, Any]]) -> tuple[list, dict]:
    """Every run's row (``ablation_results``) and, per study, its looks, its verdict with its
    intervals, the seeds it used, its budget dependence, regime and mean/std/n per variant
    (``ablation_summary``)."""
    ablation = _typed(ablation, AblationParams)
    records = [row for rows in study_rows for row in rows]
    summary = summarise(records, ablation)
    finished = [r for r in records if not r.get("skipped") and not r["diverged"]]
    summary["budget"] = {
        "seeds": ablation.seeds, "looks": ablation.looks, "selection images": ablation.val_images,
        "reported images": ablation.report_images, "test images": ablation.test_images,
        "budget points": ablation.budget_points,
        "device": sorted({r["device"] for r in finished}), "amp": sorted({r["amp"] for r in finished}),
        "train seconds total": round(sum(r["train_seconds"] for r in finished), 1),
    }
    summary["preview"] = ablation.preview
    for name, study in summary["studies"].items():
        logger.info("Study %s: %s (%s)", name, study["verdict"], study["reason"])
    logger.info("Ablation: %d of %d claims decided; %d runs trained, %d not needed.",
                summary["decided"], summary["claims_judged_together"], summary["runs"],
                summary["runs_saved"])
    return records, summary


def plot_ablation_accuracy(ablation_summary: dict[str, Any]):
    from simple_cnn.ablation import figures

    return figures.study_accuracy(ablation_summary)


def plot_ablation_augmentation_heatmap(ablation_results: list[dict[str, Any]]):
    from simple_cnn.ablation import figures

    return figures.augmentation_heatmap(ablation_results)


def plot_ablation_dead_units(ablation_results: list[dict[str, Any]]):
    from simple_cnn.ablation import figures

    return figures.dead_units_by_layer(ablation_results)


def plot_ablation_batch_size(ablation_results: list[dict[str, Any]]):
    from simple_cnn.ablation import figures

    return figures.accuracy_vs_batch_size(ablation_results)


def plot_ablation_warmup_lr(ablation_results: list[dict[str, Any]]):
    from simple_cnn.ablation import figures

    return figures.warmup_lr_traces(ablation_results)


def plot_warmup_wrapper_bug(cnn: CnnParams):
    """The hand-rolled warmup wrapper's LR beside the project's schedule, for cnn.training."""
    from simple_cnn.ablation import figures

    return figures.warmup_wrapper_bug(cnn.training)


def build_ablation_report(
    ablation_summary: dict[str, Any], ablation_results: list[dict[str, Any]], cnn: CnnParams,
    newest_first_lesson_verdicts: dict[str, Any] | None = None,
) -> str:
    """The self-contained HTML report: the forest plot, a section per claim, the first
    lesson's claims beside them (the newest verdicts of ``kedro run``, if any), then the
    figures that have something to show."""
    from simple_cnn.ablation import figures, report

    return report.ablation_html(ablation_summary, ablation_summary["budget"],
                         figures.report_figures(ablation_results, cnn.training),
                         newest_first_lesson_verdicts)
