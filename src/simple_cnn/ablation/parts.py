"""Which images a study run is evaluated on: parts of the splits that never overlap in role.

- *selection*: the first ``val_images`` of the validation split (in a fixed shuffled order):
  they pick each run's best epoch (and patience);
- *report*: the next ``report_images``: the reported val accuracy, the train-val gap and the
  dead units, so that no reported number comes from the images that chose the weights;
- *train*: as many images of the run's own training part, for the gap;
- *test*: ``test_images`` of the test split, the same for every run (the pairing).

The order is a fixed permutation (seed 0) of each split, so that a split stored sorted by class
still gives every part every class.
"""

from __future__ import annotations

import numpy as np

Split = dict[str, np.ndarray]

PARTS = ("selection", "report", "train", "test")
NEEDS = {"test_accuracy": {"test"}, "macro_f1": {"test"}, "val_accuracy": {"report"},
         "dead_unit_fraction": {"report"}, "gap": {"train", "report"}}
"""The parts each metric is measured on."""


def shuffled_part(split: Split, stop: int, start: int = 0) -> Split:
    """Images ``start:stop`` of ``split`` in its fixed shuffled order."""
    order = np.random.default_rng(0).permutation(len(split["labels"]))[start:stop]
    return {key: value[order] for key, value in split.items()}


def evaluation_parts(train_part: Split, val_split: Split, test_split: Split, ablation) -> dict[str, Split]:
    selected, reported = ablation.val_images, ablation.val_images + ablation.report_images
    return {"selection": shuffled_part(val_split, selected),
            "report": shuffled_part(val_split, reported, start=selected),
            "train": shuffled_part(train_part, ablation.report_images),
            "test": shuffled_part(test_split, ablation.test_images)}
