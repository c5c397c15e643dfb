"""Privacy budget reports for a privacy officer: JSON, one self-contained HTML page, text.

Built from a run directory's summary.json, the per-round privacy statements the partners
sent, and each partner's full list of releases (parameters only: mechanism, rows, noise
multiplier, sample rate, steps, delta — every release of the dataset's lifetime). From that
list alone any accountant can recompute the lifetime epsilon; the report does so and says
whether it matches what the partner stated. Every number a person reads in the HTML or on
the terminal is also in the JSON.
"""

from __future__ import annotations

import base64
import html
import io
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fedcredit.credit import strict_json
from fedcredit.credit.atomic import atomic_write_json, atomic_write_text
from fedcredit.credit.memo import by_content
from fedcredit.credit.metrics import UNDEFINED
from fedcredit.privacy.accountant import EPS_ERROR, Charge, Release, compose_rows
from fedcredit.privacy.disclosure import statement as disclosure_statement
from fedcredit.privacy.inventory import as_table

JSON_NAME, HTML_NAME = "privacy_report.json", "privacy_report.html"

ASSUMPTIONS = [
    "The privacy unit is one customer row: neighbouring datasets differ by adding or removing one row "
    "(record-level differential privacy).",
    "Each partner runs DP-SGD with Opacus: Poisson sampling at the stated sample rate, per-row gradient "
    "clipping to the stated norm, and Gaussian noise of the stated multiplier times that norm.",
    "Epsilon is the PRV accountant's upper bound (numerical error at most 0.01) at the stated delta, composed "
    "over the partner's whole lifetime ledger: every release of every run on the same dataset (by its "
    "fingerprint, whatever name or folder it was used under) — the two noisy statistics releases of round 0, "
    "every DP-SGD round and every noisy evaluation. The RDP bound is shown beside it; Opacus's 'gdp' "
    "accountant is never used.",
    "Training and held-out rows are split by a hash of each row's own content, so one row is in the same part in "
    "every run and adding or removing it changes only the releases on its part. The lifetime epsilon is therefore "
    "the larger of the two parts' compositions (parallel composition); each release below names its rows as an "
    "interval of row fractions: held-out [0, f), training [f, 1).",
    "Each partner holds its own ledger and budgets: a lifetime budget and a per-run cap. It declines any release "
    "that would exceed either. The ledger is written before anything leaves, mirrored in an anchor on the "
    "partner's machine and cross-checked with its audit trail, so a crash, a torn write or a restored older copy "
    "can only over-count.",
    "Everything else a partner sends is listed in the release inventory below: each item is either noised and "
    "charged, or public with the reason. The noise generator is numpy's PCG64 seeded from the OS (Opacus "
    "secure_mode needs torchcsprng, which is not available here).",
]

# A vertical run (same customers, other columns) releases one noisy joint Gram matrix instead of DP-SGD updates.
VERTICAL_ASSUMPTION = (
    "Vertical federation (partitioning \"vertical\"): the unit is one customer's values at one party; the private "
    "set intersection reveals which customers the parties share, so neighbouring datasets differ in one shared "
    "customer's values (replace-one), not by adding or removing a customer. Each party releases its blocks of the "
    "joint Gram matrix once (mechanism 'gaussian-gram', sample rate 1): its rows clipped to the norm C_p, the "
    "replace-one L2 sensitivity is 2·C_p·C (C: the joined row's bound) and the noise is the stated multiplier "
    "times it. Its own transform's two statistics releases and the label holder's evaluation are noised at their "
    "replace-one sensitivity (√2 × the add/remove one). Held-out and training customers are split by a hash of "
    "the normalised key (the same at every party). The model's weights and metrics are computed from the noised "
    "releases (post-processing); a passive party's partial scores of the held-out customers go to the label holder "
    "sealed and not noised (the model's output for them, as scoring sends it), never a training customer's.")

# A boosted-trees run (model "gbdt") releases gradient histograms instead of DP-SGD updates.
HISTOGRAM_ASSUMPTION = (
    "Boosted trees (model \"gbdt\"): each tree level is one Gaussian mechanism (mechanism 'gaussian-histogram', "
    "sample rate 1, no credit taken for row subsampling): the partner's per-node, per-column, per-bin sums of its "
    "rows' loss gradients (each clipped to [-1, 1]) and hessians (each clipped to [0, 1/4]); one row adds to one bin "
    "per column, so the L2 sensitivity over the C columns released (all, or the tree's public column sample) is sqrt(C (1 + (s/4)^2)) with the hessians released scaled by "
    "s = 2, and the noise is the stated multiplier times it. A run of T trees of depth D composes T x D of them; "
    "splits and leaf values are computed from the noised sums (post-processing).")


def build_report(summary: dict[str, Any], rounds: list[dict[str, Any]],
                 releases: dict[str, list[dict[str, Any]]] | None = None) -> dict[str, Any]:
    """The report as data: per-partner lifetime statements and releases, this run's releases by round.

    `rounds`: per round, each partner's statement after it (for epsilon over rounds); `releases`:
    each partner's lifetime list of releases (the source of the recomputed epsilon)."""
    releases = releases or {}
    partners = []
    for p in summary["partners"]:
        priv = p.get("privacy") or {"mode": "off"}
        own = releases.get(p["name"], [])
        partners.append({
            "name": p["name"], "kind": p["kind"], "mode": priv.get("mode", "off"),
            "epsilon": priv.get("epsilon"), "epsilon_rdp": priv.get("epsilon_rdp"), "delta": priv.get("delta"),
            "budget": priv.get("budget"), "remaining": priv.get("remaining"), "accountant": priv.get("accountant"),
            "run_epsilon": priv.get("run_epsilon"), "run_cap": priv.get("run_cap"),
            "status": "dropped" if p.get("dropped_round") else priv.get("status", "off" if priv.get("mode") == "off" else "ok"),
            "dropped_round": p.get("dropped_round"),
            "stopped_round": priv.get("stopped_round"), "stopped_reason": priv.get("stopped_reason"),
            "ledger_notes": priv.get("notes") or [],
            "federated_auc": (p.get("federated") or {}).get("auc"),
            "local_auc": (p.get("local") or {}).get("auc"),
            "auc_undefined": _auc_reason(p),
            "releases": own,
            **_recomputed(own, priv),
        })
    epsilon_after = {(rec["round"], name): st for rec in rounds for name, st in rec["partners"].items()}
    per_round = []
    for p in partners:
        for r in p["releases"]:
            if r.get("run") != summary.get("run"):
                continue
            after = epsilon_after.get((r["round"], p["name"])) or {}
            per_round.append({"round": r["round"], "partner": p["name"], "mechanism": r["mechanism"],
                              "rows": r.get("rows"), "steps": r["steps"], "sample_rate": r["sample_rate"],
                              "noise_multiplier": r["noise_multiplier"],
                              "clip_norm": after.get("max_grad_norm") if r["mechanism"] == "dp-sgd" else None,
                              "delta": r.get("delta"), "epsilon": after.get("epsilon"),
                              "epsilon_rdp": after.get("epsilon_rdp"), "budget": after.get("budget"),
                              "remaining": after.get("remaining"), "status": after.get("status", "ok")})
    per_round.sort(key=lambda r: (r["round"], r["partner"]))
    return {
        "run": summary.get("run"), "scenario": summary.get("scenario"),
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "accountant": "PRV (Opacus 1.6, eps_error 0.01); RDP bound alongside; fallback to RDP only if PRV fails; "
                      "parallel composition over the training and held-out rows",
        "assumptions": ASSUMPTIONS + ([VERTICAL_ASSUMPTION] if summary.get("partitioning") == "vertical" else [])
                       + ([HISTOGRAM_ASSUMPTION] if any(r["mechanism"] == "gaussian-histogram"
                                                                   for r in per_round) else []),
        "partners": partners,
        "rounds": per_round,
        "features_dropped": summary.get("features_dropped") or {},
        "notices": summary.get("notices") or [],
        "inventory": as_table(),
        "disclosure": disclosure_statement(),
        "utility": _utility(summary),
        "client_dp": summary.get("client_dp"),
        "membership_audit": summary.get("membership_audit"),
    }


def _recomputed(releases: list[dict[str, Any]], statement: dict[str, Any]) -> dict[str, Any]:
    """The lifetime epsilon recomputed from the listed releases alone, and whether it is the stated one."""
    if not releases or statement.get("delta") is None:
        return {"epsilon_recomputed": None, "recomputed_matches": None}
    charges = [Charge(Release(r["noise_multiplier"], r["sample_rate"], r["steps"]), tuple(r.get("rows") or (0.0, 1.0)))
               for r in releases]
    eps = compose_rows(charges, statement["delta"]).epsilon
    stated = statement.get("epsilon")
    return {"epsilon_recomputed": eps,
            "recomputed_matches": None if stated is None else abs(eps - stated) <= 2 * EPS_ERROR}


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


@by_content(lambda report: [report["partners"], report["rounds"]])
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


def _rows(rows: Any) -> str:
    if not rows:
        return "all"
    lo, hi = rows
    return "all" if (lo, hi) == (0.0, 1.0) else ("held-out" if lo == 0 else "training") + f" [{lo:g}, {hi:g})"


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
        f"<tr><td>{r['round']}</td><td>{_fmt(r['partner'])}</td><td>{_fmt(r['mechanism'])}</td>"
        f"<td>{_rows(r.get('rows'))}</td><td>{_fmt(r['steps'])}</td>"
        f"<td>{_fmt(r['sample_rate'], 4)}</td><td>{_fmt(r['noise_multiplier'])}</td><td>{_fmt(r['clip_norm'])}</td>"
        f"<td>{_fmt(r['delta'])}</td><td>{_fmt(r['epsilon'])}</td><td>{_fmt(r['epsilon_rdp'])}</td>"
        f"<td>{_fmt(r['budget'])}</td><td>{_fmt(r['remaining'])}</td><td>{_fmt(r['status'])}</td></tr>"
        for r in report["rounds"])
    assumptions = "".join(f"<li>{html.escape(a)}</li>" for a in report["assumptions"])
    recomputed = "".join(
        f"<tr><td>{_fmt(p['name'])}</td><td>{len(p['releases'])}</td><td>{_fmt(p['epsilon'])}</td>"
        f"<td>{_fmt(p['epsilon_recomputed'])}</td><td>{_fmt(p['recomputed_matches'])}</td>"
        f"<td>{html.escape('; '.join(p['ledger_notes']))}</td></tr>"
        for p in report["partners"] if p["mode"] == "sample")
    recomputed_html = ("<h2>Recomputed from the listed releases</h2><p class=\"note\">Every release of each partner's "
                       "lifetime is in the JSON report (<code>partners[].releases</code>).</p><table><tr><th>partner</th>"
                       "<th>releases</th><th>stated ε</th><th>recomputed ε</th><th>match</th><th>ledger notes</th></tr>"
                       f"{recomputed}</table>") if recomputed else ""
    dropped = report.get("features_dropped") or {}
    notices = report.get("notices") or []
    notices_html = ("<h2>Notices</h2><ul>" + "".join(f"<li>feature <b>{html.escape(c)}</b> not used: {html.escape(w)}</li>"
                                                     for c, w in dropped.items())
                    + "".join(f"<li>{html.escape(n)}</li>" for n in notices if not n.startswith("feature '"))
                    + "</ul>") if dropped or notices else ""
    inventory_html = ("<h2>Release inventory: everything a partner sends</h2><table><tr><th>field</th><th>messages</th>"
                      "<th>protection</th><th>how</th></tr>" + "".join(
                          f"<tr><td><code>{html.escape(i['field'])}</code></td><td>{html.escape(i['messages'])}</td>"
                          f"<td>{html.escape(i['protection'])}</td><td style=\"text-align:left\">{html.escape(i['how'])}"
                          "</td></tr>" for i in report.get("inventory") or []) + "</table>")
    disclosure_html = ("<h2>Who sees what of a partner</h2><table><tr><th>field</th><th>in replies to</th>"
                       "<th>coordinator, privacy off</th><th>coordinator, DP</th><th>with SecAgg+</th>"
                       "<th>other partners</th></tr>" + "".join(
                           f"<tr><td><code>{html.escape(r['field'])}</code></td><td>{html.escape(r['messages'])}</td>"
                           + "".join(f"<td style=\"text-align:left\">{html.escape(r[k])}</td>"
                                     for k in ("privacy_off", "dp", "secagg", "other_partners"))
                           + "</tr>" for r in report.get("disclosure") or []) + "</table>")
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
<p class="note">From rows, steps, sample rate and noise multiplier anyone can recompute epsilon.</p>
<table><tr><th>round</th><th>partner</th><th>mechanism</th><th>rows</th><th>steps</th><th>sample rate</th><th>noise mult.</th>
<th>clip norm</th><th>δ</th><th>ε after</th><th>ε RDP</th><th>budget</th><th>remaining</th><th>status</th></tr>{round_rows}</table>
{recomputed_html}{notices_html}{audit_html}{client_html}
{inventory_html}
{disclosure_html}
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
        run = (f"; this run {_text(p.get('run_epsilon'), '.3f')} of its cap {_text(p.get('run_cap'), 'g')}"
               if p.get("run_cap") is not None else "")
        lines.append(f"  {p['name']:<18} ε = {_text(p['epsilon'], '.3f')} of {_text(p['budget'], 'g')} at "
                     f"δ = {_text(p['delta'], 'g')} ({p['accountant']}; RDP {_text(p['epsilon_rdp'], '.3f')}){run}, "
                     f"{p['status']}{stop}{na}")
        lines += [f"  {'':<18} ledger: {note}" for note in p.get("ledger_notes") or []]
    for col, why in (report.get("features_dropped") or {}).items():
        lines.append(f"  feature '{col}' not used: {why}")
    return "\n".join(lines)


def write_privacy_report(run_dir: str | Path, summary: dict[str, Any], rounds: list[dict[str, Any]] | None = None,
                         releases: dict[str, list[dict[str, Any]]] | None = None) -> dict[str, Any]:
    """Write privacy_report.json and .html; `rounds` None re-uses the rounds and releases already written."""
    run_dir = Path(run_dir)
    if rounds is None:
        existing = strict_json.loads_old((run_dir / JSON_NAME).read_text())   # may predate standard JSON
        kept = {p["name"]: p.get("releases") or [] for p in existing["partners"]}
        report = build_report(summary, [], kept)
        report["rounds"] = existing["rounds"]
    else:
        report = build_report(summary, rounds, releases)
    atomic_write_json(run_dir / JSON_NAME, report)
    atomic_write_text(run_dir / HTML_NAME, render_html(report))
    return report
