"""The classical baseline's accuracy/cost trade-off: every hog_svm classifier on the same features.

Features are the pipeline's defaults (conf/base/parameters_hog_svm.yml), computed once for a
45,000/5,000 train/val split of the archive's training images and its 10,000 test images.
Each classifier is then fitted (hyper-parameters from the same file) and scored on test.
The exact solvers get a random subset of the training rows: rbf_svc its max_train_samples,
linear_svc ``--linear-svc-rows`` (liblinear is single-threaded and copies dense data into its
own sparse format; on all 90,000 x 2,112 rows it runs for well over 15 minutes). Last line: the default classifier's
accuracy and fit time against the exact RBF SVM's.

    python benchmarks/svm_baseline.py --archive data/01_raw/cifar-10-binary.tar.gz
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import get_args

import numpy as np
import yaml
from sklearn.preprocessing import StandardScaler

from simple_cnn.classifier_params import ClassifierName
from simple_cnn.classifiers import fit_with_selection
from simple_cnn.data.cifar10 import parse_archive
from simple_cnn.data.raw import stratified_split
from simple_cnn.features.extract import extract_features
from simple_cnn.parameters import HogSvmParams

CLASSIFIERS = get_args(ClassifierName)
PARAMS = Path(__file__).resolve().parents[1] / "conf/base/parameters_hog_svm.yml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", required=True, type=Path)
    parser.add_argument("--classifiers", nargs="+", default=list(CLASSIFIERS), choices=CLASSIFIERS)
    parser.add_argument("--linear-svc-rows", type=int, default=20_000)
    args = parser.parse_args()

    params = HogSvmParams.model_validate(yaml.safe_load(PARAMS.read_text())["hog_svm"])
    raw = parse_archive(args.archive)
    train, val = stratified_split(raw.train_labels, 5000, seed=42)
    config = params.feature_config(raw.train_images.shape[1:3])
    started = time.perf_counter()
    train_images, train_labels = raw.train_images[train], raw.train_labels[train]
    if params.train_on_flips:
        train_images = np.concatenate([train_images, train_images[:, :, ::-1]])
        train_labels = np.concatenate([train_labels, train_labels])
    x_train = extract_features(train_images, config)
    x_val = extract_features(raw.train_images[val], config)
    x_test = extract_features(raw.test_images, config)
    feature_seconds = time.perf_counter() - started
    scaler = StandardScaler().fit(x_train)
    x_train, x_val, x_test = (scaler.transform(x, copy=False) for x in (x_train, x_val, x_test))
    print(f"features: {config.kind}, {x_train.shape[1]} dims, {len(x_train):,} training rows "
          f"(flips: {params.train_on_flips}), extracted in {feature_seconds:.1f} s")
    print(f"{'classifier':<14} {'hyper-parameters':<18} {'n_train':>8} {'val acc':>8} "
          f"{'test acc':>8} {'fit s':>8} {'predict s':>9}")
    results = {}
    for name in args.classifiers:
        options = getattr(params, name)
        if name == "rbf_svc":
            options = options.model_copy(update={"allow_more_samples": True})
        rows = np.arange(len(x_train))
        if name == "linear_svc" and args.linear_svc_rows < len(rows):
            rows = np.random.default_rng(0).choice(len(rows), args.linear_svc_rows, replace=False)
        model, report = fit_with_selection(name, options, x_train[rows], train_labels[rows], x_val,
                                           raw.train_labels[val], seed=params.seed)
        started = time.perf_counter()
        accuracy = float((model.predict(x_test) == raw.test_labels).mean())
        predict_seconds = time.perf_counter() - started
        results[name] = (accuracy, report["fit_seconds"])
        print(f"{name:<14} {str(report['best']):<18} {report['n_train']:>8,} "
              f"{report['val_accuracy']:>8.4f} {accuracy:>8.4f} {report['fit_seconds']:>8.1f} "
              f"{predict_seconds:>9.1f}", flush=True)
    default = params.classifier
    if default in results and "rbf_svc" in results and default != "rbf_svc":
        (acc, fit), (rbf_acc, rbf_fit) = results[default], results["rbf_svc"]
        print(f"{default} vs rbf_svc: accuracy {acc:.4f} vs {rbf_acc:.4f} "
              f"({(acc - rbf_acc) * 100:+.1f} points), fit time ratio {fit / rbf_fit:.2f}x")


if __name__ == "__main__":
    main()
