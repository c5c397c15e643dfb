"""Privacy budget reports for a privacy officer: JSON, one self-contained HTML page, text.

Built from a run directory's summary.json and the per-round privacy statements the partners
sent. Every number a person reads in the HTML or on the terminal is also in the JSON.
"""

from __future__ import annotations

import base64
import html
import io
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from credit import strict_json
from credit.atomic import atomic_write_json, atomic_write_text
from credit.metrics import UNDEFINED

JSON_NAME, HTML_NAME = "privacy_report.json", "privacy_report.html"

ASSUMPTIONS = [
    "The privacy unit is one customer row: neighbouring datasets differ by adding or removing one row "
    "(record-level differential privacy).",
    "Each partner runs DP-SGD with Opacus: Poisson sampling at the stated sample rate, per-row gradient "
    "clipping to the stated norm, and Gaussian noise of the stated multiplier times that norm.",
    "Epsilon is the PRV accountant's upper bound (numerical error at most 0.01) at the stated delta, composed "
    "over the partner's whole lifetime ledger: every round of every run on the same dataset, plus the noisy "
    "preprocessing statistics. The RDP bound is shown beside it; Opacus's 'gdp' accountant is never used.",
    "Each partner holds its own ledger and budget; a partner declines any round that would take it over budget.",
    "Not covered by epsilon: the evaluation histograms of held-out test rows (aggregate score counts used for "
    "AUC/KS), and the noise generator is numpy's PCG64 seeded from the OS (Opacus secure_mode needs torchcsprng, "
    "which is not available here).",
]


def build_report(summary: dict[str, Any], rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The report as data: per-partner lifetime statements and per-round releases."""
    partners = []
    for p in summary["partners"]:
        priv = p.get("privacy") or {"mode": "off"}
        partners.append({
            "name": p["name"], "kind": p["kind"], "mode": priv.get("mode", "off"),
            "epsilon": priv.get("epsilon"), "epsilon_rdp": priv.get("epsilon_rdp"), "delta": priv.get("delta"),
            "budget": priv.get("budget"), "remaining": priv.get("remaining"), "accountant": priv.get("accountant"),
            "status": "dropped" if p.get("dropped_round") else priv.get("status", "off" if priv.get("mode") == "off" else "ok"),
            "dropped_round": p.get("dropped_round"),
            "stopped_round": priv.get("stopped_round"), "stopped_reason": priv.get("stopped_reason"),
            "federated_auc": (p.get("federated") or {}).get("auc"),
            "local_auc": (p.get("local") or {}).get("auc"),
            "auc_undefined": _auc_reason(p),
        })
    per_round = []
    for rec in rounds:
        for name, st in rec["partners"].items():
            per_round.append({"round": rec["round"], "partner": name,
                              "mechanism": "gaussian-statistics" if rec["round"] == 0 else "dp-sgd",
                              "steps": st.get("steps"), "sample_rate": st.get("sample_rate"),
                              "noise_multiplier": st.get("noise_multiplier"), "clip_norm": st.get("max_grad_norm"),
                              "delta": st.get("delta"), "epsilon": st.get("epsilon"),
                              "epsilon_rdp": st.get("epsilon_rdp"), "budget": st.get("budget"),
                              "remaining": st.get("remaining"), "status": st.get("status", "ok")})
    return {
        "run": summary.get("run"), "scenario": summary.get("scenario"),
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "accountant": "PRV (Opacus 1.6, eps_error 0.01); RDP bound alongside; fallback to RDP only if PRV fails",
        "assumptions": ASSUMPTIONS,
        "partners": partners,
        "rounds": per_round,
        "utility": _utility(summary),
        "client_dp": summary.get("client_dp"),
        "membership_audit": summary.get("membership_audit"),
    }


def _auc_reason(partner: dict[str, Any]) -> str | None:
    """Why a partner's federated or local-only AUC is undefined (None), in words; None if neither is."""
    reasons: dict[str, list[str]] = {}
    for which, label in (("federated", "federated"), ("local", "local-only")):
        metrics = partner.get(which)   # None: not measured (no yardsticks, or the partner dropped out)
        if metrics is not None and metrics.get("auc") is None:
            reasons.setdefault(metrics.get(UNDEFINED) or "undefined", []).append(label)
    if not reasons:
        return None
    if len(reasons) == 1:
        return next(iter(reasons))
    return "; ".join(f"{' and '.join(labels)}: {reason}" for reason, labels in reasons.items())


def _utility(summary: dict[str, Any]) -> dict[str, Any]:
    fed, cen = summary["federated"], summary.get("centralized") or {}
    out = {"federated_auc": fed.get("auc"), "centralized_auc": cen.get("auc")}
    reasons = [f"{which}: {m[UNDEFINED]}" for which, m in (("federated", fed), ("centralised", cen))
               if m.get("auc") is None and m.get(UNDEFINED)]
    if reasons:
        out["auc_undefined"] = "; ".join(reasons)
    return out


def _plot(report: dict[str, Any]) -> str:
    """Epsilon over rounds per partner against its budget, as a base64 PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not any(p["mode"] == "sample" for p in report["partners"]):
        return ""
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=110)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, p in enumerate(r for r in report["partners"] if r["mode"] == "sample"):
        pts = sorted((r["round"], r["epsilon"]) for r in report["rounds"]
                     if r["partner"] == p["name"] and r["epsilon"] is not None)
        colour = colours[i % len(colours)]
        if pts:
            ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", ms=3, color=colour,
                    label=f"{p['name']} (lifetime ε)")
        if p["budget"]:
            ax.axhline(p["budget"], color=colour, linestyle="--", linewidth=1, label=f"{p['name']} budget")
    ax.set_xlabel("round (0 = preprocessing statistics)")
    ax.set_ylabel("epsilon at the partner's delta")
    ax.set_title("Lifetime privacy spent per partner")
    ax.grid(alpha=0.3)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 1e-3 else f"{v:.{digits}f}"
    return html.escape(str(v))


def _mark(partner: dict[str, Any], value: Any) -> str:
    """A link from an undefined AUC cell to its reason under the table."""
    if value is not None or not partner.get("auc_undefined"):
        return ""
    return f' <a href="#na-{html.escape(partner["name"])}" title="{html.escape(partner["auc_undefined"])}">(why)</a>'


def render_html(report: dict[str, Any]) -> str:
    partner_rows = "".join(
        f"<tr><td>{_fmt(p['name'])}</td><td>{_fmt(p['kind'])}</td><td>{_fmt(p['mode'])}</td>"
        f"<td>{_fmt(p['epsilon'])}</td><td>{_fmt(p['epsilon_rdp'])}</td><td>{_fmt(p['budget'])}</td>"
        f"<td>{_fmt(p['remaining'])}</td><td>{_fmt(p['delta'])}</td><td>{_fmt(p['status'])}"
        f"{' (round ' + str(p['stopped_round']) + ': ' + html.escape(p['stopped_reason']) + ')' if p['stopped_reason'] else ''}"
        f"{' (dropped out in round ' + str(p['dropped_round']) + ')' if p.get('dropped_round') else ''}"
        f"</td><td>{_fmt(p['federated_auc'], 4)}{_mark(p, p['federated_auc'])}</td>"
        f"<td>{_fmt(p['local_auc'], 4)}{_mark(p, p['local_auc'])}</td></tr>"
        for p in report["partners"])
    undefined_html = "".join(f"<p class=\"note\" id=\"na-{html.escape(p['name'])}\">— {html.escape(p['name'])}: "
                             f"AUC undefined: {html.escape(p['auc_undefined'])}</p>"
                             for p in report["partners"] if p.get("auc_undefined"))
    round_rows = "".join(
        f"<tr><td>{r['round']}</td><td>{_fmt(r['partner'])}</td><td>{_fmt(r['mechanism'])}</td><td>{_fmt(r['steps'])}</td>"
        f"<td>{_fmt(r['sample_rate'], 4)}</td><td>{_fmt(r['noise_multiplier'])}</td><td>{_fmt(r['clip_norm'])}</td>"
        f"<td>{_fmt(r['delta'])}</td><td>{_fmt(r['epsilon'])}</td><td>{_fmt(r['epsilon_rdp'])}</td>"
        f"<td>{_fmt(r['budget'])}</td><td>{_fmt(r['remaining'])}</td><td>{_fmt(r['status'])}</td></tr>"
        for r in report["rounds"])
    assumptions = "".join(f"<li>{html.escape(a)}</li>" for a in report["assumptions"])
    utility = report["utility"]
    cen = utility.get("centralized_auc")
    cen_html = "" if cen is None else f" (centralised non-private: {_fmt(cen, 4)})"
    utility_na = (f' <span class="note">(— : {html.escape(utility["auc_undefined"])})</span>'
                  if utility.get("auc_undefined") else "")
    audit = report.get("membership_audit")
    audit_html = ""
    if audit:
        audit_html = "<h2>Empirical check: membership inference</h2><table><tr><th>model</th><th>ε</th>" \
                     "<th>attack AUC</th><th>advantage</th><th>canary exposure AUC</th></tr>" + "".join(
            f"<tr><td>{_fmt(a['model'])}</td><td>{_fmt(a.get('epsilon'))}</td><td>{_fmt(a['attack_auc'])}</td>"
            f"<td>{_fmt(a['advantage'])}</td><td>{_fmt(a.get('canary_auc'))}</td></tr>" for a in audit["results"]) + \
            f"</table><p>{html.escape(audit['method'])}</p>"
    client = report.get("client_dp")
    client_html = (f"<h2>Partner-level DP (Flower)</h2><p>{html.escape(strict_json.dumps(client))}</p>"
                   if client else "")
    plot = _plot(report)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Privacy report — {_fmt(report['run'])}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1200px; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 14px; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: right; }}
th {{ background: #f2f2f2; }} td:first-child, th:first-child {{ text-align: left; }}
.note {{ color: #555; }}
</style></head><body>
<h1>Privacy budget report</h1>
<p>Run <b>{_fmt(report['run'])}</b> of scenario <b>{_fmt(report['scenario'])}</b>, generated {_fmt(report['generated'])}.</p>
<p>Utility bought: pooled federated AUC <b>{_fmt(utility['federated_auc'], 4)}</b>{cen_html}.{utility_na}</p>
{f'<img alt="Lifetime epsilon per partner against its budget" src="data:image/png;base64,{plot}">' if plot else
 '<p><b>No partner trained with record-level differential privacy in this run.</b></p>'}
<h2>Per partner (lifetime, after this run)</h2>
<table><tr><th>partner</th><th>kind</th><th>mode</th><th>ε (PRV)</th><th>ε (RDP)</th><th>budget</th>
<th>remaining</th><th>δ</th><th>status</th><th>federated AUC</th><th>local-only AUC</th></tr>{partner_rows}</table>
{undefined_html}
<h2>Per round: what each partner released</h2>
<p class="note">From steps, sample rate and noise multiplier anyone can recompute epsilon.</p>
<table><tr><th>round</th><th>partner</th><th>mechanism</th><th>steps</th><th>sample rate</th><th>noise mult.</th>
<th>clip norm</th><th>δ</th><th>ε after</th><th>ε RDP</th><th>budget</th><th>remaining</th><th>status</th></tr>{round_rows}</table>
{audit_html}{client_html}
<h2>Accountant and assumptions, in plain words</h2>
<p>{html.escape(report['accountant'])}</p><ul>{assumptions}</ul>
</body></html>
"""


def _text(v: Any, fmt: str) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, fmt)


def render_text(report: dict[str, Any]) -> str:
    lines = [f"privacy report — run {report['run']}"]
    for p in report["partners"]:
        na = f"; AUC n/a: {p['auc_undefined']}" if p.get("auc_undefined") else ""
        if p["mode"] != "sample":
            gone = f"; dropped out in round {p['dropped_round']}" if p.get("dropped_round") else ""
            lines.append(f"  {p['name']:<18} mode {p['mode']}: no record-level guarantee{gone}{na}")
            continue
        stop = f", stopped at round {p['stopped_round']}" if p["stopped_round"] else ""
        stop += f", dropped out in round {p['dropped_round']}" if p.get("dropped_round") else ""
        lines.append(f"  {p['name']:<18} ε = {_text(p['epsilon'], '.3f')} of {_text(p['budget'], 'g')} at "
                     f"δ = {_text(p['delta'], 'g')} ({p['accountant']}; RDP {_text(p['epsilon_rdp'], '.3f')}), "
                     f"{p['status']}{stop}{na}")
    return "\n".join(lines)


def write_privacy_report(run_dir: str | Path, summary: dict[str, Any],
                         rounds: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Write privacy_report.json and .html; `rounds` None re-uses the ones already written."""
    run_dir = Path(run_dir)
    if rounds is None:
        existing = strict_json.loads_old((run_dir / JSON_NAME).read_text())   # may predate standard JSON
        report = build_report(summary, [])
        report["rounds"] = existing["rounds"]
    else:
        report = build_report(summary, rounds)
    atomic_write_json(run_dir / JSON_NAME, report)
    atomic_write_text(run_dir / HTML_NAME, render_html(report))
    return report
