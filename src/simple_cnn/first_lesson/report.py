"""The first lesson's verdicts in HTML: a table of every claim's parts, and a plain reading."""

from __future__ import annotations

import html
from typing import Any


def _number(value: float | None, unit: str) -> str:
    """Points for accuracy and consistency differences, plain for slopes."""
    if value is None:
        return "unbounded"
    return f"{value:.3f}" if unit == "slope" else f"{value:+.2f}"


def _interval(found: dict[str, Any] | None, unit: str) -> str:
    if found is None:
        return "–"
    return f"{_number(found['mean'], unit)} [{_number(found['low'], unit)}, {_number(found['high'], unit)}]"


def _bootstrap(part: dict[str, Any]) -> str:
    boot = part.get("bootstrap_interval")
    return "–" if boot is None else f"[{boot[0]:+.2f}, {boot[1]:+.2f}]"


def verdicts_table(verdicts: dict[str, Any]) -> str:
    """One row per part: claim, part, what d measures, d with the interval its verdict used (and
    the raw 95 % and bootstrap ones), verdict."""
    rows = []
    for part in verdicts["parts"]:
        unit = part["unit"]
        rows.append(
            f"<tr><th>{html.escape(part['claim'])}</th><td>{html.escape(part['part'])}</td>"
            f"<td>{html.escape(part['measure'])}</td><td>{_interval(part['interval'], unit)}</td>"
            f"<td>{_interval(part.get('raw_interval'), unit)}</td><td>{_bootstrap(part)}</td>"
            f"<td class='{part['verdict']}'>{part['verdict']}</td></tr>")
    return ("<table><thead><tr><th>claim</th><th>part</th><th>d measures</th><th>d [interval the "
            "verdict used]</th><th>raw 95 % interval</th><th>bootstrap interval</th><th>verdict</th>"
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            "<p>d is positive in the claimed direction: accuracy and consistency differences in "
            "points (paired over the same test images); the exact SVM's slope minus its threshold, "
            "the others' slope itself.</p>")


def claim_lines(verdicts: dict[str, Any]) -> list[str]:
    """Per claim, its statement, overall verdict and the parts that hold."""
    lines = []
    for claim in verdicts["claims"].values():
        held = ", ".join(claim["holds_for"]) or "no part"
        against = claim.get("contradicted_for")
        lines.append(f"{claim['statement']} Verdict: {claim['verdict']} (holds for {held}"
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
             f"Verdicts: the ablation study's, on intervals that hold for every part together "
             f"(alpha {verdicts['alpha']:g} over the {len(verdicts['parts'])} parts, each at "
             f"{verdicts['part_level']:.2g}); minimum effect {verdicts['min_effect']:g} points, "
             f"margin {verdicts['margin']:g} points.</p>")
    return (f"<section><h2>Why hand-made features hit a wall</h2><ul>{claims}</ul>{where}{read}"
            f"<h3>Every part of every claim</h3>{verdicts_table(verdicts)}{figures}</section>")
