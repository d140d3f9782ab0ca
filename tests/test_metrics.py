import numpy as np

from simple_cnn.metrics import classification_metrics


def test_macro_f1_averages_over_the_classes_the_test_split_has(caplog):
    y = np.array([0, 0, 1, 1])
    with caplog.at_level("WARNING"):
        metrics = classification_metrics(y, y, ["cat", "dog", "bird"])
    assert metrics["accuracy"] == 1.0 and metrics["macro_f1"] == 1.0  # sklearn alone: 0.667
    assert metrics["absent_classes"] == ["bird"]
    assert "no images of 1 class(es): bird" in caplog.text
    assert metrics["per_class"]["bird"]["support"] == 0


def test_macro_f1_is_the_mean_of_per_class_f1():
    y_true, y_pred = np.array([0, 0, 1, 1, 2, 2]), np.array([0, 1, 1, 1, 2, 0])
    metrics = classification_metrics(y_true, y_pred, ["a", "b", "c"])
    f1 = [metrics["per_class"][n]["f1"] for n in "abc"]
    assert metrics["macro_f1"] == np.mean(f1) and metrics["absent_classes"] == []
