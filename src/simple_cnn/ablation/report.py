"""The ablation report: one self-contained HTML page. First the forest plot of every claim's
effect with the interval its verdict used (and the raw one), the design and its error control,
the verdict table, then a section per claim: its looks, its paired differences, its effect
along the budget, its regime and every variant. Values are in each metric's own unit."""

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
WORDS = {"supported": "Supported", "contradicted": "Contradicted", "equivalent": "Equivalent",
         "inconclusive": "Inconclusive"}
MEANING = {"supported": "as claimed, by at least the minimum effect",
           "contradicted": "the other way, by at least the minimum effect",
           "equivalent": "no meaningful difference (inside the margin)",
           "inconclusive": "not decided at the cap"}


def _cell(stat: dict[str, Any], fmt: str) -> str:
    if stat["mean"] is None:
        return "–"
    return fmt.format(stat["mean"]) + (f" ± {fmt.format(stat['std']).lstrip('+')}" if stat["n"] > 1 else "")


def number(value: float | None) -> str:
    return "unbounded" if value is None else f"{value:+.2f}"


def interval_text(found: dict[str, Any] | None) -> str:
    if found is None:
        return "–"
    return f"{number(found['mean'])} [{number(found['low'])}, {number(found['high'])}]"


def regime_text(regime: dict[str, Any], met: dict[str, Any] | None = None) -> str:
    """The regime a claim was measured in, in words (and whether "to convergence" held)."""
    budget = regime["budget"]
    images = " / ".join(f"{n:,}" for n in regime["n_train"])
    length = (f"up to {budget['length']} epochs, stopping after {budget['patience']} without "
              f"improvement" if budget["unit"] == "epochs" and budget["patience"] else
              f"{budget['length']} {budget['unit']}")
    passes = "–" if regime["passes"] is None else f"{regime['passes']:.1f}"
    converged = (f"{regime['converged']} of {regime['finished']} finished runs stopped by "
                 "themselves (converged), the others at the cap" if budget["patience"] else
                 "a fixed budget (not trained to convergence)")
    caveat = (" Fewer than 80 % of the runs converged: the claim's 'trained to convergence' "
              "regime is not met, and the verdict is about runs stopped at the cap."
              if met and met.get("to_convergence") and not met["met"] else "")
    return (f"{images} training images, batch {' / '.join(map(str, regime['batch_size']))}, "
            f"{length}: {passes} passes over the training part on average; {converged}.{caveat}")


def plain_verdict(study: dict[str, Any]) -> str:
    budget = study["budget"]
    moves = (" Its effect changes between the earliest budget point and the end "
             "(budget-dependent)." if budget.get("tested") and budget["dependent"] else "")
    return f"{WORDS[study['verdict']]}: {study['reason']}.{moves}"


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


def pairs_table(part: dict[str, Any]) -> str:
    variants = list(part["pairs"][0]["scores"]) if part["pairs"] else []
    head = "".join(f"<th>{html.escape(v)}</th>" for v in variants)
    rows = "".join(f"<tr><td>{p['seed']}</td>" + "".join(f"<td>{p['scores'][v]:.4f}</td>" for v in variants)
                   + f"<td>{number(p['difference'])}</td></tr>" for p in part["pairs"])
    left = (f"<p>{part['left_out']} seed(s) left out: a diverged run has no "
            f"{html.escape(part['metric'])}.</p>" if part["left_out"] else "")
    return (f"<table><thead><tr><th>seed</th>{head}<th>d = {html.escape(part['comparison'])} "
            f"({html.escape(part['unit'])}, claimed direction)</th></tr></thead><tbody>{rows}"
            f"</tbody></table>{left}")


def looks_table(study: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{look['look']}</td><td>{look['seeds']}</td>"
        + "".join(f"<td>{interval_text(p['interval'])} at level {p['level']:.2g}</td>" for p in look["parts"])
        + f"<td class='{look['verdict']}'>{look['verdict']}</td></tr>" for look in study["looks"])
    heads = "".join(f"<th>{html.escape(p['metric'])} ({html.escape(p['unit'])}): mean [interval]</th>"
                    for p in study["parts"])
    return (f"<table><thead><tr><th>look</th><th>seeds</th>{heads}<th>verdict</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>")


def budget_text(study: dict[str, Any]) -> str:
    budget = study["budget"]
    if not budget.get("tested"):
        return f"<p>Budget dependence not tested: {html.escape(budget.get('why', ''))}.</p>"
    verdict = ("budget-dependent: the effect changes" if budget["dependent"] else
               "no change of the effect shown")
    return (f"<p>Change of the effect from budget point {budget['from']:g} to the end: "
            f"{interval_text(budget['change'])} at level {budget['level']:.2g}: {verdict}.</p>")


def verdict_table(summary: dict[str, Any]) -> str:
    rows = []
    for name, s in summary["studies"].items():
        parts = s["parts"] or [{"metric": s["test"][0]["metric"], "unit": "", "interval": None,
                                "raw_interval": None}]
        for i, p in enumerate(parts):
            lead = (f"<th rowspan='{len(parts)}'>{html.escape(name)}{' (A/A control)' if s['control'] else ''}"
                    f"</th><td rowspan='{len(parts)}'>{html.escape(s['claim'])}</td>") if i == 0 else ""
            tail = (f"<td rowspan='{len(parts)}' class='{s['verdict']}'>{s['verdict']}"
                    f"{' (budget-dependent)' if s['budget'].get('dependent') else ''}</td>"
                    f"<td rowspan='{len(parts)}'>{s['seeds_used']} of {s['cap']}</td>") if i == 0 else ""
            rows.append(f"<tr>{lead}<td>{html.escape(p['metric'])} ({html.escape(p.get('unit', ''))})</td>"
                        f"<td>{interval_text(p['interval'])}</td><td>{interval_text(p['raw_interval'])}</td>{tail}</tr>")
    return ("<table><thead><tr><th>study</th><th>claim</th><th>metric (unit)</th><th>effect "
            "[interval the verdict used]</th><th>raw 95 % interval (unadjusted)</th><th>verdict</th>"
            f"<th>seeds used</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")


def _section(name: str, study: dict[str, Any]) -> str:
    control = ("<p>This is the A/A control: one configuration under two names, paired like the "
               "claims, with only the order and augmentation draws different. It is judged by the "
               "same procedure; supported or contradicted here would be a false alarm, "
               "equivalent is what it should reach.</p>" if study["control"] else "")
    parts = "".join(f"<h3>{html.escape(p['comparison'])} on {html.escape(p['metric'])}</h3>"
                    f"<p>{html.escape(p['verdict'])}: {html.escape(p['reason'])}</p>{pairs_table(p)}"
                    for p in study["parts"])
    along = (figure_html(effect_along_budget(study, name), name) if study["budget"].get("along") else "")
    return (f"<section><h2>{html.escape(name)}</h2><p class='claim'>Claim: {html.escape(study['claim'])}</p>"
            f"{control}<p><b>{html.escape(plain_verdict(study))}</b></p>"
            f"<p>Regime: {html.escape(regime_text(study['regime'], study['regime_met']))}</p>"
            f"<h3>Looks</h3>{looks_table(study) if study['looks'] else '<p>No look yet.</p>'}"
            f"{parts}<h3>Along the budget</h3>{budget_text(study)}{along}"
            f"<h3>Every variant</h3>{study_table(study)}</section>")


def first_lesson_section(verdicts: dict[str, Any] | None) -> str:
    """The first lesson's claims (HOG + SVM against the CNN), judged in ``kedro run``: their
    newest verdicts, or how to get them."""
    if verdicts is None:
        return ("<section><h2>Why hand-made features hit a wall</h2><p>Not measured yet: "
                "<code>kedro run</code> judges the course's claims about HOG + SVM (rotation, "
                "lighting, shifts, the SVM's cost) with the same verdicts.</p></section>")
    from simple_cnn.first_lesson.report import first_lesson_html

    return first_lesson_html(verdicts)


def design_text(summary: dict[str, Any]) -> str:
    claims = summary["claims_judged_together"]
    return (f"{summary['runs']} runs trained, {summary['runs_saved']} not needed (their claim was "
            f"decided at an earlier look). {summary['decided']} of {claims} claims decided. The "
            f"family is every declared claim ({claims}), at a familywise level of "
            f"{summary['alpha']:g}; looks after {', '.join(map(str, summary['looks']))} seeds "
            "(up to each study's cap).")


def ablation_html(summary: dict[str, Any], budget: dict[str, Any], figures: dict[str, Figure],
                  first_lesson: dict[str, Any] | None = None) -> str:
    """The report: the forest plot, the design, the verdict table, a section per claim, the
    first lesson's verdicts (``first_lesson``), then ``figures``."""
    preview = ("<p class='preview'><b>Preview</b>: short runs or few seeds, so the verdicts below "
               "are a first look, not the study's; run the default study (kedro run --pipelines "
               "ablation) for those.</p>" if summary.get("preview") else "")
    sections = "".join(_section(name, s) for name, s in summary["studies"].items())
    settings = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in budget.items())
    images = "".join(figure_html(fig, title) for title, fig in figures.items())
    control = [s for s in summary["studies"].values() if s["control"]]
    check = (f"<p>The procedure's check, the A/A control: <b>{control[0]['verdict']}</b> "
             f"({MEANING[control[0]['verdict']]}).</p>" if control else "")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Simple CNN: ablation study</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }}
thead th {{ background: #f0f4f8; }}
.supported {{ color: #1a7f37; }} .contradicted {{ color: #cf222e; }} .inconclusive {{ color: #9a6700; }}
.equivalent {{ color: #0550ae; }} .open {{ color: #9a6700; }}
.claim {{ font-style: italic; }} figure {{ margin: 1.2em 0; }} img {{ max-width: 100%; }}
.preview {{ background: #fff8c5; padding: 0.6em; border: 1px solid #d4a72c; }}
figcaption {{ color: #555; font-size: 0.9em; }}
</style></head>
<body>
<h1>What the course's claims look like, measured</h1>
{preview}
{figure_html(forest(summary), "Every claim's effect with the interval its verdict used")}
<p>{html.escape(design_text(summary))}</p>
<p>Settings: {html.escape(settings)}.</p>
<p>Procedure: {html.escape(summary['rule'])}</p>
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
