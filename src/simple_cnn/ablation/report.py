"""The ablation report: one self-contained HTML page, one section per claim."""

from __future__ import annotations

import html
from typing import Any

from matplotlib.figure import Figure

from simple_cnn.ablation.figures import study_accuracy
from simple_cnn.report import figure_html

COLUMNS = (("test_accuracy", "test accuracy", "{:.1%}"), ("macro_f1", "macro-F1", "{:.3f}"),
           ("gap", "train-val gap", "{:+.1%}"), ("dead_unit_fraction", "dead units", "{:.1%}"),
           ("train_seconds", "train s", "{:.1f}"), ("images_per_second", "images/s", "{:,.0f}"))
WORDS = {"supported": "The numbers support the claim", "contradicted": "The numbers contradict "
         "the claim", "inconclusive": "Inconclusive: the difference is within the seed-to-seed noise"}


def _cell(stat: dict[str, Any], fmt: str) -> str:
    if stat["mean"] is None:
        return "–"
    return fmt.format(stat["mean"]) + (f" ± {fmt.format(stat['std']).lstrip('+')}" if stat["n"] > 1 else "")


def plain_verdict(name: str, study: dict[str, Any]) -> str:
    test = study["test"]
    what = f"{test['better']} against {test['than']} on {test['metric'].replace('_', ' ')}"
    detail = (f"{study['reason']}" if study["difference"] is None else
              f"{what}: {study['reason']}")
    return f"{WORDS[study['verdict']]} ({detail})."


def study_table(study: dict[str, Any]) -> str:
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label, _ in COLUMNS)
    rows = []
    for variant, stats in study["variants"].items():
        sets = ", ".join(f"{k}={v}" for k, v in study["factors"].get(variant, {}).items())
        cells = "".join(f"<td>{_cell(stats[key], fmt)}</td>" for key, _, fmt in COLUMNS)
        rows.append(f"<tr><th>{html.escape(variant)}</th><td>{html.escape(sets)}</td>"
                    f"<td>{stats['runs']}</td><td>{stats['n_diverged']}</td>{cells}</tr>")
    return (f"<table><thead><tr><th>variant</th><th>sets</th><th>runs</th><th>diverged</th>{head}"
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table>")


def ablation_html(summary: dict[str, Any], budget: dict[str, Any], figures: dict[str, Figure]) -> str:
    """The report: budget and rule, the verdict table, a section per claim, then ``figures``."""
    verdicts = "".join(
        f"<tr><th>{html.escape(name)}</th><td>{html.escape(s['claim'])}</td>"
        f"<td class='{s['verdict']}'>{s['verdict']}</td></tr>" for name, s in summary["studies"].items())
    sections = "".join(
        f"<section><h2>{html.escape(name)}</h2><p class='claim'>Claim: {html.escape(s['claim'])}</p>"
        f"<p><b>{html.escape(plain_verdict(name, s))}</b></p>{study_table(s)}"
        f"{figure_html(study_accuracy(summary, [name]), name)}</section>"
        for name, s in summary["studies"].items())
    budget_text = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in budget.items())
    images = "".join(figure_html(fig, title) for title, fig in figures.items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Simple CNN: ablation study</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }}
thead th {{ background: #f0f4f8; }}
.supported {{ color: #1a7f37; }} .contradicted {{ color: #cf222e; }} .inconclusive {{ color: #9a6700; }}
.claim {{ font-style: italic; }} figure {{ margin: 1.2em 0; }} img {{ max-width: 100%; }}
figcaption {{ color: #555; font-size: 0.9em; }}
</style></head>
<body>
<h1>What the seed's lessons look like, measured</h1>
<p>Budget: {html.escape(budget_text)}. {summary['runs']} runs.</p>
<p>Verdict rule: {html.escape(summary['rule'])}</p>
<table><thead><tr><th>study</th><th>claim</th><th>verdict</th></tr></thead>
<tbody>{verdicts}</tbody></table>
{sections}
<h2>Figures</h2>
{images}
</body></html>
"""
