"""The ablation report: one self-contained HTML page. First the forest plot of every claim's
effect, then a section per claim with its regime, paired differences, interval, raw and
adjusted p, its verdict along the budget and a plain sentence."""

from __future__ import annotations

import html
from typing import Any

from matplotlib.figure import Figure

from simple_cnn.ablation.figures import effect_along_budget, forest
from simple_cnn.report import figure_html

COLUMNS = (("test_accuracy", "test accuracy", "{:.1%}"), ("macro_f1", "macro-F1", "{:.3f}"),
           ("val_accuracy", "val accuracy (reported images)", "{:.1%}"),
           ("gap", "train-val gap", "{:+.1%}"), ("dead_unit_fraction", "dead units", "{:.1%}"),
           ("train_seconds", "train s", "{:.1f}"), ("images_per_second", "images/s", "{:,.0f}"))
WORDS = {"supported": "Supported", "contradicted": "Contradicted", "inconclusive": "Inconclusive"}


def _cell(stat: dict[str, Any], fmt: str) -> str:
    if stat["mean"] is None:
        return "–"
    return fmt.format(stat["mean"]) + (f" ± {fmt.format(stat['std']).lstrip('+')}" if stat["n"] > 1 else "")


def _points(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:+.2f}"


def _interval(interval: list[float] | None) -> str:
    return "–" if interval is None else f"[{_points(interval[0])}, {_points(interval[1])}]"


def _p(value: float | None) -> str:
    return "–" if value is None else f"{value:.3g}"


def regime_text(regime: dict[str, Any]) -> str:
    """The regime a claim was measured in, in words."""
    budget = regime["budget"]
    images = " / ".join(f"{n:,}" for n in regime["n_train"])
    length = (f"up to {budget['length']} epochs, stopping after {budget['patience']} without "
              f"improvement" if budget["unit"] == "epochs" and budget["patience"] else
              f"{budget['length']} {budget['unit']}")
    passes = "–" if regime["passes"] is None else f"{regime['passes']:.1f}"
    converged = (f"{regime['converged']} of {regime['finished']} finished runs stopped by "
                 "themselves (converged), the others at the cap" if budget["patience"] else
                 "a fixed budget (not trained to convergence)")
    return (f"{images} training images, batch {' / '.join(map(str, regime['batch_size']))}, "
            f"{length}: {passes} passes over the training part on average; {converged}.")


def plain_verdict(name: str, study: dict[str, Any]) -> str:
    test = study["test"]
    what = f"{test['better']} against {test['than']} on {test['metric'].replace('_', ' ')}"
    budget = " Its verdict changes with the budget (budget-dependent)." if study["budget_dependent"] else ""
    return f"{WORDS[study['verdict']]}: {what}; {study['reason']}.{budget}"


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


def pairs_table(study: dict[str, Any]) -> str:
    test = study["test"]
    rows = "".join(f"<tr><td>{p['seed']}</td><td>{p['better']:.4f}</td><td>{p['than']:.4f}</td>"
                   f"<td>{_points(p['difference'])}</td></tr>" for p in study["pairs"])
    left = (f"<p>{study['left_out']} pair(s) left out: a diverged run has no {test['metric']}.</p>"
            if study["left_out"] else "")
    return (f"<table><thead><tr><th>seed</th><th>{html.escape(test['better'])}</th>"
            f"<th>{html.escape(test['than'])}</th><th>difference (points, claimed direction)</th>"
            f"</tr></thead><tbody>{rows}</tbody></table>{left}")


def budget_table(study: dict[str, Any]) -> str:
    rows = [*study["along_budget"], {"fraction": 1.0, "mean": study["difference"], "n": study["n_pairs"],
                                     "interval": study["interval"], "p": study["p"],
                                     "p_adjusted": study["p_adjusted"], "verdict": study["verdict"]}]
    body = "".join(
        f"<tr><td>{r['fraction']:g}</td><td>{r['n']}</td><td>{_points(r['mean'])}</td>"
        f"<td>{_interval(r['interval'])}</td><td>{_p(r['p'])}</td><td>{_p(r['p_adjusted'])}</td>"
        f"<td class='{r['verdict']}'>{r['verdict']}</td></tr>" for r in rows)
    return ("<table><thead><tr><th>budget fraction</th><th>pairs</th><th>mean difference</th>"
            "<th>interval</th><th>p</th><th>adjusted p</th><th>verdict</th></tr></thead>"
            f"<tbody>{body}</tbody></table>")


def verdict_table(summary: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(name)}{' (A/A control)' if s['control'] else ''}</th>"
        f"<td>{html.escape(s['claim'])}</td><td>{html.escape(s['test']['metric'])}</td>"
        f"<td>{_points(s['difference'])} {_interval(s['interval'])}</td><td>{_p(s['p'])}</td>"
        f"<td>{_p(s['p_adjusted'])}</td><td class='{s['verdict']}'>{s['verdict']}"
        f"{' (budget-dependent)' if s['budget_dependent'] else ''}</td>"
        f"<td>{html.escape(regime_text(s['regime']))}</td></tr>"
        for name, s in summary["studies"].items())
    return ("<table><thead><tr><th>study</th><th>claim</th><th>metric</th><th>effect, points "
            "[interval]</th><th>p</th><th>adjusted p</th><th>verdict</th><th>regime</th></tr>"
            f"</thead><tbody>{rows}</tbody></table>")


def _section(name: str, study: dict[str, Any]) -> str:
    control = ("<p>This is the A/A control: one configuration under two names with different "
               "seeds. A decisive verdict here is a false alarm of the rule.</p>" if study["control"] else "")
    return (f"<section><h2>{html.escape(name)}</h2><p class='claim'>Claim: {html.escape(study['claim'])}</p>"
            f"{control}<p><b>{html.escape(plain_verdict(name, study))}</b></p>"
            f"<p>Regime: {html.escape(regime_text(study['regime']))}</p>"
            f"<h3>Paired differences per seed</h3>{pairs_table(study)}"
            f"<h3>Along the budget</h3>{budget_table(study)}"
            f"{figure_html(effect_along_budget({'studies': {name: study}}, name), name)}"
            f"<h3>Every variant</h3>{study_table(study)}</section>")


def first_lesson_section(verdicts: dict[str, Any] | None) -> str:
    """The first lesson's claims (HOG + SVM against the CNN), judged by the same rule in
    ``kedro run``: their newest verdicts, or how to get them."""
    if verdicts is None:
        return ("<section><h2>Why hand-made features hit a wall</h2><p>Not measured yet: "
                "<code>kedro run</code> judges the course's claims about HOG + SVM (rotation, "
                "lighting, shifts, the SVM's cost) by this same rule.</p></section>")
    from simple_cnn.first_lesson.report import first_lesson_html

    return first_lesson_html(verdicts)


def ablation_html(summary: dict[str, Any], budget: dict[str, Any], figures: dict[str, Figure],
                  first_lesson: dict[str, Any] | None = None) -> str:
    """The report: the forest plot, the rule, the verdict table, a section per claim, the
    first lesson's verdicts (``first_lesson``), then ``figures``."""
    preview = ("<p class='preview'><b>Preview at a short budget</b>: these runs are short, so "
               "the verdicts below are a first look, not the study's verdicts; run the default "
               "study (kedro run --pipelines ablation) for those.</p>" if summary.get("preview") else "")
    sections = "".join(_section(name, s) for name, s in summary["studies"].items())
    budget_text = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in budget.items())
    images = "".join(figure_html(fig, title) for title, fig in figures.items())
    control = [s for s in summary["studies"].values() if s["control"]]
    check = (f"<p>The rule's check, the A/A control: <b>{control[0]['verdict']}</b> (it should be "
             "inconclusive; the rule's false alarms are measured at about 5 % in the tests).</p>"
             if control else "")
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
.preview {{ background: #fff8c5; padding: 0.6em; border: 1px solid #d4a72c; }}
figcaption {{ color: #555; font-size: 0.9em; }}
</style></head>
<body>
<h1>What the course's claims look like, measured</h1>
{preview}
{figure_html(forest(summary), "Every claim's effect with its interval")}
<p>Budget: {html.escape(budget_text)}. {summary['runs']} runs; {summary['claims_judged_together']}
claims judged together (Holm).</p>
<p>Verdict rule: {html.escape(summary['rule'])}</p>
<p>Reported validation accuracy and the train-val gap are measured on validation images that did
not pick the best epoch (those are the first selection images of the split).</p>
{check}
{verdict_table(summary)}
{sections}
{first_lesson_section(first_lesson)}
<h2>Figures</h2>
{images}
</body></html>
"""
