"""The model-risk report as one self-contained HTML page (plots as base64 PNG, no external file).

Every number on the page is formatted from a value of the report dict (`model_report.build_report`),
which is written beside it as JSON: fixed decimals (`_n`), counts rounded to whole rows (`_count`).
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fedcredit.credit.memo import by_content

ORDER = ("feature", "bin", "count_share", "bad_rate", "woe", "points")   # a points table's usual columns


def _n(v: Any, digits: int = 4) -> str:
    """A number as it appears on the page; None / non-finite as —; text escaped."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return f"{v:.{digits}f}" if v == 0 or abs(v) >= 10 ** -digits else f"{v:.2e}"
    return html.escape(str(v))


def _count(v: Any) -> str:
    return "—" if v is None else f"{float(v):.0f}"


def _table(head: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "") -> str:
    """Cells are already formatted HTML."""
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><tr>{th}</tr>{body}</table>'


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _finish(fig: Any, ax: Any, xlabel: str, ylabel: str, title: str) -> str:
    """Label, grid and legend a plot the same way; return it as base64 PNG."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


@by_content(lambda report: report["calibration"])
def calibration_plot(report: Mapping[str, Any]) -> str:
    """Observed against predicted bad rate per score decile: pooled (thick) and per partner; base64 PNG."""
    cal = report["calibration"]
    if cal["pooled"] is None or not cal["pooled"]["deciles"]:
        return ""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.6), dpi=100)
    top = 0.0
    for name, c in [("pooled", cal["pooled"]), *cal["partners"].items()]:
        xs = [d["predicted_bad_rate"] for d in c["deciles"]]
        ys = [d["observed_bad_rate"] for d in c["deciles"]]
        top = max([top, *xs, *ys])
        pooled = name == "pooled"
        ax.plot(xs, ys, marker="o", ms=5 if pooled else 3, lw=2.5 if pooled else 1,
                ls="-" if pooled else "--", label=name, color="black" if pooled else None)
    ax.plot([0, top], [0, top], color="grey", lw=1, ls=":", label="perfect calibration")
    return _finish(fig, ax, "predicted bad rate (mean PD in the decile)", "observed bad rate",
                   "Calibration by score decile")


@by_content(lambda report: report["score_distribution"])
def distribution_plot(report: Mapping[str, Any]) -> str:
    """Share of held-out rows per coarse score bin, pooled and per partner; base64 PNG."""
    dist = report["score_distribution"]
    if dist["pooled"] is None:
        return ""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=100)
    x = range(len(dist["pd_edges"]) - 1)
    for name, item in [("pooled", dist["pooled"]), *dist["partners"].items()]:
        if item["shares"] is None:
            continue
        pooled = name == "pooled"
        ax.step(list(x), item["shares"], where="mid", lw=2.5 if pooled else 1.4, label=name,
                color="black" if pooled else None)
    ticks = list(range(0, len(dist["pd_edges"]) - 1, 3))
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{dist['pd_edges'][i + 1]:.3f}" for i in ticks], fontsize=8)
    return _finish(fig, ax, "score bin (upper PD edge)", "share of held-out rows", "Score distribution per partner")


def _discrimination(report: Mapping[str, Any]) -> str:
    disc, yard = report["discrimination"], report["yardsticks"]
    local = yard["partners"]
    rows, notes = [], []
    for name, d in [("pooled", disc["pooled"]), *disc["partners"].items()]:
        if d is None:
            continue
        ci = "—" if d["auc_low"] is None else f"{_n(d['auc_low'])} – {_n(d['auc_high'])}"
        ys = local.get(name, {}) if name != "pooled" else {"centralized_auc": yard["centralized_auc"]}
        rows.append([f"<b>{_n(name)}</b>" if name == "pooled" else _n(name), _count(d["rows"]), _count(d["bads"]),
                     _n(d["bad_rate"]), _n(d["auc"]), ci, _n(d["ks"]), _n(d["gini"]), _n(d["noised"]),
                     _n(ys.get("local_auc")), _n(ys.get("centralized_auc"))])
        if d.get("undefined"):
            notes.append(f"<p class=\"note\">— {_n(name)}: {_n(d['undefined'])}</p>")
    missing = "".join(f"<p class=\"note\">{_n(n)}: released no evaluation of the final model</p>"
                      for n in report["not_evaluated"])
    if not rows:
        return "<p>No partner's evaluation of the final model is in this report: no discrimination.</p>" + missing
    return (_table(["", "rows", "bads", "bad rate", "AUC", "AUC 95 % interval", "KS", "Gini", "noised (DP)",
                    "local-only AUC (yardstick)", "centralised AUC (yardstick)"], rows)
            + "".join(notes) + missing + f"<p class=\"note\">{_n(report['methods']['auc_interval'])}. Yardsticks: "
            "simulation only (the modeller holds every table); — where not measured.</p>")


def _calibration(report: Mapping[str, Any]) -> str:
    pooled = report["calibration"]["pooled"]
    if pooled is None:
        return "<p>No partner released an evaluation of the final model: no calibration.</p>"
    rows = [[str(d["decile"]), f"{_n(d['pd_low'])} – {_n(d['pd_high'])}", _count(d["rows"]), _count(d["bads"]),
             _n(d["predicted_bad_rate"]), _n(d["observed_bad_rate"])] for d in pooled["deciles"]]
    hl = pooled["hosmer_lemeshow"]
    hl_html = ("" if hl is None else f"<p>Hosmer-Lemeshow C-hat {_n(hl['statistic'])} on {_n(hl['df'])} degrees of "
               f"freedom: p = {_n(hl['p_value'])}.</p>")
    plot = calibration_plot(report)
    img = f'<img class="plot" alt="calibration by score decile" src="data:image/png;base64,{plot}">' if plot else ""
    return (img + _table(["decile", "PD range", "rows", "bads", "predicted bad rate", "observed bad rate"], rows)
            + hl_html + f"<p class=\"note\">{_n(report['methods']['calibration'])}.</p>")


def _distribution(report: Mapping[str, Any]) -> str:
    dist = report["score_distribution"]
    if dist["pooled"] is None:
        return "<p>No score distribution: no partner released an evaluation of the final model.</p>"
    edges, names = dist["pd_edges"], list(dist["partners"])
    shares = [dist["pooled"]["shares"] or []] + [dist["partners"][n]["shares"] or [] for n in names]
    rows = [[f"{_n(edges[i])} – {_n(edges[i + 1])}", *(_n(s[i]) if i < len(s) else "—" for s in shares)]
            for i in range(len(edges) - 1) if any(i < len(s) and s[i] for s in shares)]
    psi_rows = [[_n(n), _n(dist["partners"][n]["psi"]), _n(dist["partners"][n]["psi_reading"])] for n in names]
    plot = distribution_plot(report)
    img = f'<img class="plot" alt="score distribution per partner" src="data:image/png;base64,{plot}">' if plot else ""
    return (img + "<p>Share of held-out rows per score bin (bins holding no row are left out):</p>"
            + _table(["PD range", "pooled", *names], rows)
            + "<h3>Population stability of the score: each partner against the pool</h3>"
            + _table(["partner", "PSI", "reading"], psi_rows)
            + f"<p class=\"note\">{_n(report['methods']['score_psi'])}.</p>")


def _features(report: Mapping[str, Any]) -> str:
    feats = report["feature_psi"]
    bands = "; ".join(f"{'below ' + _n(b['below'], 2) if b['below'] is not None else 'above'}: {_n(b['reading'])}"
                      for b in report["psi_bands"])
    note = f"<p class=\"note\">{_n(report['methods']['feature_psi'])}. {_n(report['methods']['psi'])} ({bands}).</p>"
    if not feats:
        return ("<p>No per-feature PSI: the partners' round-0 statistics were not kept for this run (it predates "
                "model reports, or no partner released them).</p>" + note)
    names = list(next(iter(feats.values()))["partners"])
    rows = [[_n(col), _n(f["kind"]), _n(f["bands"]),
             *(f"{_n(f['partners'].get(n))} <span class=\"note\">{_n(f['readings'].get(n) or '')}</span>"
               for n in names)] for col, f in feats.items()]
    return _table(["feature", "kind", "bands", *names], rows) + note


def _generic(rows: Sequence[Mapping[str, Any]], first: Sequence[str] = ()) -> str:
    """A table of dicts: the `first` keys in that order, then the others as they come."""
    keys = list(dict.fromkeys([k for k in first if any(k in r for r in rows)] + [k for r in rows for k in r]))
    return _table(keys, [[_n(r.get(k)) if not isinstance(r.get(k), dict | list) else _n(str(r.get(k)))
                          for k in keys] for r in rows])


def _terms(report: Mapping[str, Any]) -> str:
    card = report["scorecard"]
    if card is not None:
        iv = _table(["feature", "IV"], [[_n(k), _n(v)] for k, v in card["iv"].items()]) if card["iv"] else \
            "<p>No IV table in the summary.</p>"
        settings = "".join(f"<li>{_n(k)}: {_n(v)}</li>" for k, v in card["settings"].items())
        return ("<h3>Information value</h3>" + iv + "<h3>Points table</h3>"
                + (_generic(card["points"], ORDER) if card["points"] else "<p>No points table.</p>")
                + (f"<ul>{settings}</ul>" if settings else ""))
    terms = report["model_terms"]
    if not terms["coefficients"]:
        return f"<p>{_n(terms['note'])}</p>"
    return (_table(["term", "coefficient"], [[_n(t["term"]), _n(t["coefficient"])] for t in terms["coefficients"]])
            + f"<p class=\"note\">{_n(terms['note'])}; no scorecard.json in the run directory.</p>")


def _privacy(report: Mapping[str, Any]) -> str:
    p = report["privacy"]
    rows = [[_n(q["name"]), _n(q["mode"]), _n(q["epsilon"]), _n(q["delta"], 8) if q["delta"] else "—",
             _n(q["run_epsilon"])] for q in p["partners"]]
    return (f"<p><b>{_n(p['statement'])}</b></p>"
            + _table(["partner", "mode", "lifetime ε", "δ", "this run's ε"], rows)
            + f"<p>{_n(p['this_report'])}.</p><p>Drift reference in the model artefact: {_n(p['artefact_reference'])}."
              f"</p><p>Budgets, releases and the accountant: <a href=\"{_n(p['details'])}\">{_n(p['details'])}</a>.</p>")


def _settings(report: Mapping[str, Any]) -> str:
    s = report["settings"]
    run = (_table(["run", "value"], [[_n(k), _n(v)] for k, v in s["run"].items()])
           + _table(["[federation] setting", "value"], [[_n(k), _n(v)] for k, v in s["federation"].items()]))
    partners = _generic(s["partners"], ("name", "kind", "rows_train", "rows_test"))
    dropped = "".join(f"<li>feature <b>{_n(c)}</b> not used: {_n(w)}</li>" for c, w in s["features_dropped"].items())
    notices = "".join(f"<li>{_n(n)}</li>" for n in s["notices"])
    client = f"<p>Partner-level DP: {_n(str(s['client_dp']))}</p>" if s["client_dp"] else ""
    return (run + partners + f"<p>Features used: {_n(', '.join(s['features']))}.</p>"
            + (f"<ul>{dropped}{notices}</ul>" if dropped or notices else "") + client)


def _pm(value: Any, sd: Any, noised: bool) -> str:
    """A measure, with its noise SD under DP."""
    return _n(value) + (f" ± {_n(sd)}" if noised and value is not None and sd is not None else "")


def _fairness(report: Mapping[str, Any]) -> str:
    """Per protected column, a table of its groups against the reference group (`fedcredit.reports.fairness`)."""
    rows, settings = report.get("fairness"), report.get("fairness_settings") or {}
    if not rows:
        return f"<p>{_n(report['fairness_note'])}.</p>"
    scale = settings.get("scale") or {}
    noise = (f"noised counts (SD {_n(settings.get('count_noise_sd'))} per count, summed over the partners): each "
             "measure shows ± its noise SD" if settings.get("noised") else "exact counts")
    out = [(f"<p>Approved: score at or above <b>{_n(settings.get('cutoff_score'))}</b> points (PD at most "
            f"{_n(settings.get('cutoff_pd'))}), on the scale of {_n(scale.get('base_score'))} points at good:bad odds "
            f"{_n(scale.get('base_odds'))} and {_n(scale.get('pdo'))} points to double the odds. The held-out rows of "
            f"{_n(', '.join(settings.get('partners') or []))}, scored by the model of round "
            f"{_n(settings.get('round'))}; {noise}.</p>")]
    head = ["group", "rows", "approval rate", "AIR", "mean score", "SMD", "TPR", "TPR gap", "predicted bad rate",
            "observed bad rate", "flags"]
    for column in dict.fromkeys(r["column"] for r in rows):
        mine = [r for r in rows if r["column"] == column]
        ref = mine[0]["reference_group"]
        table = [[_n(r["group"]) + (" (reference)" if r["is_reference"] else ""), _count(r["rows"]),
                  _n(r["approval_rate"]), _pm(r["air"], r["air_noise_sd"], r["noised"]), _n(r["mean_score"], 2),
                  _pm(r["smd"], r["smd_noise_sd"], r["noised"]), _n(r["tpr"]),
                  _pm(r["tpr_gap"], r["tpr_gap_noise_sd"], r["noised"]), _n(r["predicted_bad_rate"]),
                  _n(r["observed_bad_rate"]), "<span class=\"warn\">" + _n("; ".join(r["flags"])) + "</span>"]
                 for r in mine]
        why = "".join(f"<li>{_n(r['group'])}: {_n(r['undefined'])}</li>" for r in mine if r.get("undefined"))
        out.append(f"<h3>{_n(column)}</h3><p>Reference group: <b>{_n(ref)}</b> ({_n(mine[0]['reference_from'])}).</p>"
                   + _table(head, table) + (f"<ul class=\"note\">{why}</ul>" if why else ""))
    out.append(f"<p class=\"note\">{_n(settings.get('method'))}.</p>")
    return "".join(out)


def render_html(report: Mapping[str, Any]) -> str:
    """The page; every number is formatted from `report` (see the module docstring)."""
    fairness = _fairness(report)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Model-risk report — {_n(report['run'])}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1200px; }}
table {{ border-collapse: collapse; margin: 0.8em 0; font-size: 13px; }}
th, td {{ border: 1px solid #ccc; padding: 3px 7px; text-align: right; }}
th {{ background: #f2f2f2; }} td:first-child, th:first-child {{ text-align: left; }}
.note {{ color: #555; font-size: 13px; }} .warn {{ color: #a40000; font-weight: bold; }} img.plot {{ display: block; margin: 0.5em 0; }}
</style></head><body>
<h1>Model-risk report</h1>
<p>Run <b>{_n(report['run'])}</b> of scenario <b>{_n(report['scenario'])}</b>; model <code>{_n(report['model_id'])}</code>;
generated {_n(report['generated'])}.</p>
{f'<p class="warn">{_n(report["missing_inputs"])}.</p>' if report.get("missing_inputs") else ""}
<h2>Discrimination</h2>{_discrimination(report)}
<h2>Calibration by score decile (pooled)</h2>{_calibration(report)}
<h2>Score distribution</h2>{_distribution(report)}
<h2>Population stability per feature: each partner against the pool</h2>{_features(report)}
<h2>Model terms</h2>{_terms(report)}
<h2>Fairness</h2>{fairness}
<h2>Privacy</h2>{_privacy(report)}
<h2>Data and settings</h2>{_settings(report)}
</body></html>
"""
