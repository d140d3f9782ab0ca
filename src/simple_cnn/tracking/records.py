"""What of a run goes to MLflow, and under which names: plain functions of the catalog's data.

A catalog entry opts in with its ``metadata``, so the catalog says what is tracked::

    cnn_test_metrics:
      metadata:
        mlflow: metrics        # its numbers as metrics: accuracy -> cnn_test_metrics.accuracy
    cnn_model_summary:
      metadata:
        mlflow: artifact       # the saved file, under artifacts/<dataset name>/
    cnn_model:
      metadata:
        mlflow: model          # the file as an artifact, and the model that serves
                               # (simple_cnn.serving), registered as simple-cnn
    "{namespace}.ablation_run":
      metadata:
        mlflow: ablation_run   # one run of a study: a nested run of its own

Metric names are the dataset's name, then the keys down to the number. A list of numbers is a
metric history: indexed by the record's ``epoch`` list where it has one of the same length,
else by position from 1 (the optimiser step, for ``lr_per_step``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from numbers import Real
from typing import Any

KINDS = ("metrics", "artifact", "model", "ablation_run")
"""The values of a catalog entry's ``metadata: mlflow:``."""


@dataclass(frozen=True)
class Metric:
    key: str
    value: float
    step: int = 0


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def metrics(name: str, record: Mapping[str, Any]) -> list[Metric]:
    """Every number in ``record`` (nested mappings included) as metrics named ``name.key...``."""
    epochs = record.get("epoch")
    steps = list(epochs) if isinstance(epochs, list) and all(map(_is_number, epochs)) else None
    return list(_metrics(name, record, steps))


def _metrics(prefix: str, record: Mapping[str, Any], epochs: list | None) -> Iterator[Metric]:
    for key, value in record.items():
        name = f"{prefix}.{key}"
        if _is_number(value):
            yield Metric(name, float(value))
        elif isinstance(value, Mapping):
            yield from _metrics(name, value, None)
        elif isinstance(value, list) and value and all(map(_is_number, value)) and key != "epoch":
            steps = epochs if epochs is not None and len(epochs) == len(value) else range(1, len(value) + 1)
            yield from (Metric(name, float(v), int(s)) for v, s in zip(value, steps))


def flat_parameters(tree: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """A parameter tree as MLflow parameters: ``{"cnn": {"training": {"lr": 0.2}}}`` ->
    ``{"cnn.training.lr": "0.2"}``. Lists stay one value; None is ``None``."""
    flat: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flat_parameters(value, f"{name}."))
        else:
            flat[name] = str(value)
    return flat


def ablation_run(record: Mapping[str, Any]) -> tuple[str, dict[str, str], dict[str, str], list[Metric]]:
    """One study run's row -> its MLflow run name, tags, parameters and metrics: the study,
    variant and seed as tags, the variant's factors and the run's budget as parameters, the
    rest of its numbers as metrics (``ablation_run.test_accuracy``, ...)."""
    tags = {"study": str(record["study"]), "variant": str(record["variant"]),
            "seed": str(record["seed"]), "kedro.namespace": str(record["namespace"])}
    params = flat_parameters(record.get("factors") or {}, "factors.")
    budget = ("seed", "train_seed", "steps", "batch_size", "n_train", "fingerprint")
    params.update({key: str(record[key]) for key in budget if key in record})
    params.update(flat_parameters(record.get("budget") or {}, "budget."))
    name = f"{record['study']}/{record['variant']}/seed_{record['seed']}"
    not_measured = ("factors", "made_with", "budget", *budget)
    measured = {key: value for key, value in record.items() if key not in not_measured}
    return name, tags, params, metrics("ablation_run", measured)
