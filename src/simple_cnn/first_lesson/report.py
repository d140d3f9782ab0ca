"""The first lesson's verdicts in HTML: a table of every claim's parts, and a plain reading."""

from __future__ import annotations

import html
from typing import Any

from simple_cnn.first_lesson.claims import CLAIMS


def _number(part: dict[str, Any], value: float) -> str:
    """Points for accuracy and consistency differences, plain for slope differences."""
    return f"{value:+.3f}" if part["claim"] == "svm_cost" else f"{100 * value:+.2f}"


def _interval(part: dict[str, Any], interval: list[float] | None) -> str:
    return "–" if interval is None else f"[{_number(part, interval[0])}, {_number(part, interval[1])}]"


def verdicts_table(verdicts: dict[str, Any]) -> str:
    """One row per part: claim, part, what d measures, d with its t (and bootstrap) interval,
    raw and Holm-adjusted p, verdict."""
    rows = []
    for part in verdicts["parts"]:
        test = part["test"]
        boot = _interval(part, part.get("bootstrap_interval"))
        rows.append(
            f"<tr><th>{html.escape(part['claim'])}</th><td>{html.escape(part['part'])}</td>"
            f"<td>{html.escape(part['measure'])}</td><td>{_number(part, test['mean'])} "
            f"{_interval(part, test['interval'])}</td><td>{boot}</td><td>{test['p']:.3g}</td>"
            f"<td>{part['p_adjusted']:.3g}</td><td class='{part['verdict']}'>{part['verdict']}</td></tr>")
    return ("<table><thead><tr><th>claim</th><th>part</th><th>d measures</th><th>d "
            "[t interval]</th><th>bootstrap interval</th><th>p</th><th>Holm p</th><th>verdict</th>"
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            "<p>d is positive in the claimed direction: accuracy and consistency differences in "
            "points (paired over the same test images), slope differences from the threshold.</p>")


def claim_lines(verdicts: dict[str, Any]) -> list[str]:
    """Per claim, its statement, overall verdict and the parts that hold."""
    lines = []
    for name, claim in verdicts["claims"].items():
        held = ", ".join(claim["holds_for"]) or "no part"
        against = claim.get("contradicted_for")
        lines.append(f"{CLAIMS[name]} Verdict: {claim['verdict']} (holds for {held}"
                     + (f"; contradicted for {', '.join(against)}" if against else "") + ").")
    return lines


def reading(metrics: dict[str, Any], scaling: dict[str, Any]) -> list[str]:
    """What the curves and slopes show, in plain sentences."""
    lines = []
    for kind in ("rotation", "brightness", "contrast", "shift"):
        svm, cnn = metrics["hog_svm"][kind], metrics["cnn"][kind]
        worst = min(range(len(svm["strengths"])), key=lambda i: svm["accuracy"][i])
        lines.append(
            f"{kind.capitalize()}: at {svm['strengths'][worst]:g} {svm['unit']}, HOG + SVM keeps "
            f"{svm['accuracy'][worst]:.1%} accuracy ({svm['consistency'][worst]:.0%} of its "
            f"predictions unchanged), the CNN {cnn['accuracy'][worst]:.1%} "
            f"({cnn['consistency'][worst]:.0%}).")
    slopes = ", ".join(f"{name} n^{c['fit_slope']['slope']:.2f}"
                       for name, c in scaling["classifiers"].items())
    lines.append(f"Fit time against training rows ({scaling['sizes'][0]:,} to "
                 f"{scaling['sizes'][-1]:,}): {slopes}.")
    return lines


def first_lesson_html(verdicts: dict[str, Any], metrics: dict[str, Any] | None = None,
                      scaling: dict[str, Any] | None = None, figures: str = "") -> str:
    """The section: claims and verdicts, the reading (when the measurements are given), the
    table of parts, and ``figures`` (HTML)."""
    claims = "".join(f"<li>{html.escape(line)}</li>" for line in claim_lines(verdicts))
    read = ("" if metrics is None or scaling is None else "<h3>What the measurements show</h3><ul>"
            + "".join(f"<li>{html.escape(line)}</li>" for line in reading(metrics, scaling)) + "</ul>")
    regime = verdicts.get("regime", {})
    where = (f"<p>Measured on {verdicts['test_images']:,} test images (border fill: "
             f"{html.escape(str(regime.get('robustness', {}).get('fill', '?')))}); SVM fits on "
             f"{', '.join(f'{n:,}' for n in regime.get('svm_cost', {}).get('sizes', []))} rows. "
             f"Rule: the ablation study's paired t-test, Holm-adjusted over the parts, alpha "
             f"{verdicts['alpha']:g}, minimum difference {100 * verdicts['min_difference']:g} "
             f"points.</p>")
    return (f"<section><h2>Why hand-made features hit a wall</h2><ul>{claims}</ul>{where}{read}"
            f"<h3>Every part of every claim</h3>{verdicts_table(verdicts)}{figures}</section>")
