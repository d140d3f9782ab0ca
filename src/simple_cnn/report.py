"""The comparison report: one self-contained HTML page (figures embedded) for SVM vs CNN."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import numpy as np

from simple_cnn import plots


def comparison_figure(svm: dict[str, Any], cnn: dict[str, Any], class_names: Sequence[str]):
    """Accuracy and macro-F1, then per-class accuracy, SVM beside CNN."""
    return plots.model_comparison({"HOG + SVM": svm, "CNN": cnn}, class_names)


def confusion_figure(svm: dict[str, Any], cnn: dict[str, Any], class_names: Sequence[str]):
    """Both confusion matrices on one colour scale."""
    return plots.confusion_matrices(
        {"HOG + SVM": np.array(svm["confusion_matrix"]), "CNN": np.array(cnn["confusion_matrix"])},
        class_names)


def _fmt_seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f} s"


def headline_rows(svm: dict[str, Any], cnn: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(quantity, SVM, CNN) rows of the headline table."""
    return [
        ("model", svm.get("model", "HOG + SVM"), cnn.get("model", "SimpleCNN")),
        ("test accuracy", f"{svm['accuracy']:.2%}", f"{cnn['accuracy']:.2%}"),
        ("test macro-F1", f"{svm['macro_f1']:.3f}", f"{cnn['macro_f1']:.3f}"),
        ("train seconds", _fmt_seconds(svm.get("feature_seconds", 0) + svm.get("fit_seconds", 0))
         + " (features + fit)", _fmt_seconds(cnn.get("train_seconds"))),
        ("predict seconds (test set)", _fmt_seconds(svm.get("predict_seconds")),
         _fmt_seconds(cnn.get("predict_seconds"))),
        ("size", f"{svm.get('n_features', 0):,} features per image",
         f"{cnn.get('n_parameters', 0):,} parameters"),
        ("device / AMP", "CPU / n.a.", f"{cnn.get('device', '?')} / {cnn.get('amp', '?')}"),
    ]


def reading(svm: dict[str, Any], cnn: dict[str, Any], history: dict[str, Any],
            class_names: Sequence[str]) -> list[str]:
    """A few plain sentences on what the numbers show."""
    gap = (cnn["accuracy"] - svm["accuracy"]) * 100
    svm_errors, cnn_errors = 1 - svm["accuracy"], 1 - cnn["accuracy"]
    better = "more" if gap >= 0 else "less"
    lines = [
        f"The CNN is {abs(gap):.1f} percentage points {better} accurate than the HOG + SVM "
        f"baseline ({cnn['accuracy']:.1%} against {svm['accuracy']:.1%})"
        + (f": it makes {1 - cnn_errors / svm_errors:.0%} fewer mistakes." if svm_errors > 0 and gap > 0 else "."),
    ]
    recall = {name: np.array([m["per_class"][c]["recall"] for c in class_names])
              for name, m in (("svm", svm), ("cnn", cnn))}
    gain = recall["cnn"] - recall["svm"]
    order = np.argsort(gain)[::-1]
    why = (" Hand-made gradient histograms describe local edges well but not which object "
           "parts go together; learned filters, stacked, do." if gap > 0 else
           " On this data hand-made gradient histograms already separate the classes; a CNN "
           "pays off where appearance varies more than orientation alone can describe.")
    lines.append(
        f"Against the SVM, the CNN's per-class accuracy changes most on {class_names[order[0]]} "
        f"({gain[order[0]] * 100:+.0f} points) and {class_names[order[1]]} "
        f"({gain[order[1]] * 100:+.0f}), least on {class_names[order[-1]]} "
        f"({gain[order[-1]] * 100:+.0f})." + why
    )
    hard = {name: [class_names[i] for i in np.argsort(r)[:2]] for name, r in recall.items()}
    lines.append(
        f"The CNN's hardest classes are {hard['cnn'][0]} and {hard['cnn'][1]} (recall "
        f"{recall['cnn'].min():.0%} at worst); the SVM's are {hard['svm'][0]} and "
        f"{hard['svm'][1]}. The confusion matrices show what they are mistaken for."
    )
    if history.get("epoch"):
        best = history["best_epoch"] - 1
        train_acc, val_acc = history["train_accuracy"][best], history["val_accuracy"][best]
        lines.append(
            f"At its best epoch ({history['best_epoch']} of {len(history['epoch'])}) the CNN "
            f"scored {train_acc:.1%} on augmented training batches and {val_acc:.1%} on "
            "validation: "
            + ("a small gap, so it is not overfitting; a wider or longer-trained model could "
               "gain more." if train_acc - val_acc < 0.05 else
               "a wide gap: stronger augmentation, more weight decay or early stopping would help.")
        )
    return lines


def figure_html(fig, title: str) -> str:
    """A figure embedded as a PNG, with its caption: reports stay one self-contained file."""
    return (f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,'
            f'{plots.to_png_base64(fig)}"><figcaption>{html.escape(title)}</figcaption></figure>')


def _ablation_paragraph(link: str | None) -> str:
    if link is None:
        return ("No ablation study has been run yet: <code>kedro run --pipelines ablation</code> "
                "measures each claim about norms, activations, augmentation, warmup, AMP, dropout "
                "and L2 over seeds, with a verdict.")
    return (f'What each claim about the CNN looks like measured over seeds: <a href="../../'
            f'{html.escape(link)}">the newest ablation report</a> ({html.escape(link)}).')


def comparison_html(
    svm: dict[str, Any],
    cnn: dict[str, Any],
    history: dict[str, Any],
    class_names: Sequence[str],
    ablation_report: str | None = None,
    first_lesson: str = "",
) -> str:
    """The whole report as one HTML string with every figure embedded as PNG. ``ablation_report``:
    the newest ablation report's path relative to this report's layer folder, linked if given;
    ``first_lesson``: the section "Why hand-made features hit a wall" (HTML)."""
    figures = {
        "Test scores, overall and per class": comparison_figure(svm, cnn, class_names),
        "Confusion matrices (rows: true class)": confusion_figure(svm, cnn, class_names),
        "CNN training curves": plots.training_curves(history),
        "CNN learning-rate schedule (warmup shaded)": plots.lr_schedule(history),
        "HOG + SVM per-class precision, recall and F1": plots.per_class_bars(
            svm["per_class"], class_names, "HOG + SVM"),
    }
    rows = "\n".join(
        f"<tr><th>{html.escape(q)}</th><td>{html.escape(a)}</td><td>{html.escape(b)}</td></tr>"
        for q, a, b in headline_rows(svm, cnn))
    text = "\n".join(f"<li>{html.escape(line)}</li>" for line in reading(svm, cnn, history, class_names))
    images = "\n".join(figure_html(fig, title) for title, fig in figures.items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Simple CNN: HOG + SVM vs CNN</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: 0.35em 0.8em; text-align: left; }}
thead th {{ background: #f0f4f8; }}
figure {{ margin: 1.5em 0; }} img {{ max-width: 100%; }}
figcaption {{ color: #555; font-size: 0.9em; }}
</style></head>
<body>
<h1>HOG + SVM vs a simple CNN</h1>
<table><thead><tr><th></th><th>HOG + SVM</th><th>CNN</th></tr></thead>
<tbody>
{rows}
</tbody></table>
<h2>What the numbers show</h2>
<ul>
{text}
</ul>
{first_lesson}
<h2>The ablation study</h2>
<p>{_ablation_paragraph(ablation_report)}</p>
<h2>Figures</h2>
{images}
</body></html>
"""
