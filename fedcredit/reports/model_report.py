"""The model-risk report: `model_report.json` and one self-contained `model_report.html` per run.

What a model validator signs from: discrimination (AUC with its 95 % interval, KS, Gini) pooled and
per partner; calibration by score decile; the score distribution per partner and its PSI against the
pool; PSI per feature; the IV and points tables (or the coefficients); fairness; the privacy
statement; data and settings. Built only from what the partners released — each partner's final
evaluation histogram (`ScoreHistogram`, noised under DP) and its round-0 column statistics — and the
run directory (summary.json, config.json, model.pt, scorecard.json). Every number in the HTML is in
the JSON. The released histograms are kept in the JSON (`released.evaluations`) so that
`fedcredit report RUN_DIR` can rebuild the report after the summary changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from fedcredit.credit import strict_json
from fedcredit.credit.artefact import ScoringModel
from fedcredit.credit.atomic import atomic_write_json, atomic_write_text
from fedcredit.credit.errors import InputError
from fedcredit.credit.metrics import PRIVATE_SCORE_EDGES, ScoreHistogram
from fedcredit.credit.rundir import CONFIG, MODEL, SUMMARY, RunDirectory
from fedcredit.credit.statistics import RangeStats
from fedcredit.reports.measures import (
    PSI_BANDS,
    PSI_FLOOR,
    calibration,
    discrimination,
    feature_psi,
    psi,
    psi_reading,
    score_distribution,
)

JSON_NAME, HTML_NAME = "model_report.json", "model_report.html"
SCORECARD = "scorecard.json"

METHODS = {
    "auc_interval": "95 % interval: AUC ± 1.96 SE, SE from Hanley & McNeil (1982, Radiology 143:29-36) with the "
                    "released numbers of bad and good rows; under DP the count noise's own SD is added in quadrature",
    "calibration": "bins of the released score histogram, lowest PD first, grouped into ten bands of about equal "
                   "rows (a bin is never split, so coarse private bins may give fewer bands); predicted = mean PD "
                   "at the bins' centres, observed = bads / rows; Hosmer-Lemeshow C-hat on those bands (df = "
                   "bands - 2; Hosmer & Lemeshow 2000, 5.2.2)",
    "psi": f"PSI = sum over bins of (partner share - pool share) x ln(partner share / pool share); an empty share is "
           f"taken as {PSI_FLOOR:g}; readings after Siddiqi (2006, ch. 8)",
    "score_psi": "the final model's score on each partner's held-out rows against the pooled held-out rows, on the "
                 f"{len(PRIVATE_SCORE_EDGES) - 1} bins of the coarse score grid (half-logit bins, two open ends)",
    "feature_psi": "each partner's round-0 release 1 (training rows) against the sum of every partner's: a numeric "
                   "column on the magnitude grid (10 bins a decade; 2 under DP) merged into at most 10 bands of "
                   "about equal pooled rows plus a missing band; a categorical column by level plus a missing band. "
                   "Under DP these counts are noised, so a PSI includes noise. Round 0's release 2 (the finer "
                   "histograms) is summed over partners before it is kept, and the model artefact keeps only "
                   "pooled counts (withheld under the disclosure rule), so neither gives a partner's own",
}


def released_evaluations(reports: Mapping[str, ScoreHistogram | None]) -> dict[str, ScoreHistogram]:
    """The partners' final-evaluation histograms, leaving out those that released none."""
    return {name: hist for name, hist in reports.items() if hist is not None}


def pooled_histogram(evaluations: Mapping[str, ScoreHistogram]) -> ScoreHistogram | None:
    """The sum of the partners' histograms, in partner-name order (noised counts are floats: one order
    gives the same bits in summary.json and in every rewrite of the report); None if there are none."""
    return ScoreHistogram.combine([evaluations[n] for n in sorted(evaluations)]) if evaluations else None


def pooled_calibration(evaluations: Mapping[str, ScoreHistogram]) -> dict[str, Any] | None:
    """summary.json's `calibration`: the pooled final evaluation by score decile (None: none released)."""
    pooled = pooled_histogram(evaluations)
    return None if pooled is None else {**calibration(pooled), "method": METHODS["calibration"]}


def _distribution(evaluations: Mapping[str, ScoreHistogram], pooled: ScoreHistogram | None) -> dict[str, Any]:
    """Rows and shares per coarse score bin, pooled and per partner; each partner's PSI against the pool."""
    def shares(counts: list[float]) -> list[float] | None:
        return (np.asarray(counts) / sum(counts)).tolist() if sum(counts) > 0 else None

    pool = score_distribution(pooled) if pooled is not None else None
    rows = {n: score_distribution(h) for n, h in evaluations.items()}
    return {"pd_edges": [float(1 / (1 + np.exp(-e))) for e in PRIVATE_SCORE_EDGES],
            "pooled": None if pool is None else {"rows": pool, "shares": shares(pool)},
            "partners": {n: {"rows": c, "shares": shares(c), "psi": psi(pool, c) if pool is not None else None,
                             "psi_reading": psi_reading(psi(pool, c)) if pool is not None else None}
                         for n, c in rows.items()}}


def _yardsticks(summary: Mapping[str, Any]) -> dict[str, Any]:
    """Simulation only: the centralised and local-only models' AUCs (pooled rows; the modeller holds them)."""
    out = {"centralized_auc": (summary.get("centralized") or {}).get("auc"), "partners": {}}
    for p in summary.get("partners", []):
        local, cen = p.get("local") or {}, p.get("centralized") or {}
        if local or cen:
            out["partners"][p["name"]] = {"local_auc": local.get("auc"), "centralized_auc": cen.get("auc")}
    return out


def _model_terms(model: ScoringModel | None) -> dict[str, Any]:
    """The logistic regression's coefficients (intercept first, then `transform.feature_names`'s order)."""
    if model is None:
        return {"coefficients": None, "note": f"no {MODEL} in the run directory"}
    if model.trees is not None:
        trees = model.trees.trees
        kind = "random forest" if model.trees.average else "boosted tree ensemble"
        return {"coefficients": None, "note": f"a {kind} ({len(trees)} trees, "
                                              f"{sum(len(t.feature) for t in trees)} nodes) has no coefficient table; "
                                              "its trees are in the model artefact (JSON); see the calibration and "
                                              "PSI sections"}
    if model.model_name != "logistic":
        n = sum(int(np.prod(t.shape)) for t in model.state_dict.values())
        return {"coefficients": None, "note": f"a {model.model_name} network ({n} weights) has no coefficient "
                                              "table; see the calibration and PSI sections"}
    weight = model.state_dict["linear.weight"].detach().double().reshape(-1).tolist()
    bias = float(model.state_dict["linear.bias"].detach().double().reshape(-1)[0])
    return {"coefficients": [{"term": "intercept", "coefficient": bias}]
            + [{"term": name, "coefficient": w} for name, w in zip(model.transform.feature_names, weight)],
            "note": "logistic regression on the shared transform's design matrix (numeric columns standardised); "
                    "a coefficient is the change in log-odds of bad per unit of its term"}


def _scorecard(run_dir: Path, summary: Mapping[str, Any]) -> dict[str, Any] | None:
    """scorecard.json's points table (rows: feature, bin, count share, bad rate, WOE, points) and IV."""
    path = run_dir / SCORECARD
    try:
        raw: Any = strict_json.loads_old(path.read_text()) if path.is_file() else None
    except ValueError as exc:
        raise InputError(f"not JSON ({exc}): rewrite it from the run's scorecard step", source=str(path)) from None
    rows = _points_rows(raw)
    iv = (summary.get("scorecard") or {}).get("iv")
    if iv is None and isinstance(raw, dict):
        iv = raw.get("iv")
    if rows is None and not iv:
        return None
    settings: dict[str, Any] = {}
    for part in (summary.get("scorecard") or {}, raw if isinstance(raw, dict) else {},
                 (raw or {}).get("scaling") if isinstance(raw, dict) else {}):
        settings.update({k: v for k, v in (part or {}).items() if not isinstance(v, list | dict)})
    return {"iv": dict(sorted((iv or {}).items(), key=lambda kv: -(kv[1] or 0))), "points": rows or [],
            "settings": settings}


def _points_rows(raw: Any) -> list[dict[str, Any]] | None:
    """The points table's rows: a list itself, under "points" / "table" / "rows", or per feature
    ({"features": [{"feature", "bins": [rows]}]})."""
    if isinstance(raw, list):
        return raw
    if not isinstance(raw, dict):
        return None
    for key in ("points", "table", "rows"):
        if isinstance(raw.get(key), list):
            return raw[key]
    features = raw.get("features")
    if isinstance(features, list) and all(isinstance(f, dict) and isinstance(f.get("bins"), list) for f in features):
        return [{"feature": f.get("feature"), **row} for f in features for row in f["bins"]]
    return None


def _privacy(summary: Mapping[str, Any], model: ScoringModel | None) -> dict[str, Any]:
    meta = model.metadata if model is not None else {}
    withheld = (meta.get("reference") or {}).get("withheld")
    return {
        "statement": meta.get("privacy") or "see the run's privacy report",
        "partners": [{"name": p["name"], "mode": (p.get("privacy") or {}).get("mode", "off"),
                      "epsilon": (p.get("privacy") or {}).get("epsilon"), "delta": (p.get("privacy") or {}).get("delta"),
                      "run_epsilon": (p.get("privacy") or {}).get("run_epsilon")} for p in summary.get("partners", [])],
        "this_report": "Built from what the partners released to the coordinator (final evaluation histograms; "
                       "round-0 statistics), noised and charged to their ledgers under DP; no row was read. It "
                       "shows each partner's own distributions and is for the coordinator and the validator: "
                       "other partners see only what the disclosure statement lists",
        "artefact_reference": withheld or "kept in the model artefact (pooled counts only)",
        "details": "privacy_report.html",
    }


def _settings(summary: Mapping[str, Any], run_dir: Path) -> dict[str, Any]:
    config = {}
    if (run_dir / CONFIG).is_file():
        config = strict_json.loads_old((run_dir / CONFIG).read_text())
    federation = ((config.get("scenario") or {}).get("federation") or {}) if isinstance(config, dict) else {}
    keys = ("scenario", "run", "model_id", "model", "strategy", "rounds", "rounds_planned", "ended_early",
            "secure_aggregation")
    return {"run": {k: summary.get(k) for k in keys},
            "federation": {k: v for k, v in federation.items() if not isinstance(v, dict | list)},
            "partners": [{k: p.get(k) for k in ("name", "kind", "rows_train", "rows_test", "dropped_round")}
                         for p in summary.get("partners", [])],
            "features": list(summary.get("features") or []),
            "features_dropped": dict(summary.get("features_dropped") or {}),
            "notices": list(summary.get("notices") or []),
            "client_dp": summary.get("client_dp")}


def build_report(summary: Mapping[str, Any], evaluations: Mapping[str, ScoreHistogram],
                 features: Mapping[str, Any], model: ScoringModel | None, run_dir: Path,
                 missing: str | None = None) -> dict[str, Any]:
    """The report as data (see the module docstring); `features`: `feature_psi`'s result; `missing`:
    why the released inputs are not there (a run older than model reports)."""
    order = [p["name"] for p in summary.get("partners", []) if p["name"] in evaluations]
    evaluations = {n: evaluations[n] for n in order + sorted(set(evaluations) - set(order))}
    pooled = pooled_histogram(evaluations)
    scorecard = _scorecard(run_dir, summary)
    fairness = summary.get("fairness")
    return {
        "run": summary.get("run"), "scenario": summary.get("scenario"), "model_id": summary.get("model_id"),
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "missing_inputs": missing,
        "methods": METHODS, "psi_bands": PSI_BANDS,
        "discrimination": {"pooled": discrimination(pooled) if pooled is not None else None,
                           "partners": {n: discrimination(h) for n, h in evaluations.items()}},
        "not_evaluated": [p["name"] for p in summary.get("partners", []) if p["name"] not in evaluations],
        "yardsticks": _yardsticks(summary),
        "calibration": {"pooled": calibration(pooled) if pooled is not None else None,
                        "partners": {n: calibration(h) for n, h in evaluations.items()}},
        "score_distribution": _distribution(evaluations, pooled),
        "feature_psi": dict(features),
        "scorecard": scorecard,
        "model_terms": _model_terms(model) if scorecard is None else None,
        "fairness": fairness if isinstance(fairness, list) and fairness else None,
        "fairness_settings": summary.get("fairness_settings"),
        "fairness_note": None if fairness else (
            (summary.get("fairness_settings") or {}).get("note") or "no protected columns declared"),
        "privacy": _privacy(summary, model),
        "settings": _settings(summary, run_dir),
        "released": {"evaluations": {n: h.to_dict() for n, h in evaluations.items()}},
    }


def partner_feature_psi(partner_stats: Mapping[str, RangeStats], model: ScoringModel | None) -> dict[str, Any]:
    """`feature_psi` on the columns the model uses (all released columns without a model)."""
    if model is not None:
        numeric, categorical = list(model.transform.numeric), list(model.transform.categorical)
    else:
        pool = RangeStats.combine(partner_stats.values()) if partner_stats else RangeStats()
        numeric, categorical = list(pool.magnitudes), list(pool.levels)
    return feature_psi(partner_stats, numeric, categorical)


def write_model_report(run_dir: str | Path, summary: Mapping[str, Any],
                       evaluations: Mapping[str, ScoreHistogram] | None = None,
                       partner_stats: Mapping[str, RangeStats] | None = None) -> dict[str, Any]:
    """Write model_report.json and .html (temp file, then rename). `evaluations` / `partner_stats` None:
    re-use the released histograms and feature PSI the existing model_report.json holds (none if absent)."""
    from fedcredit.reports.model_html import render_html

    run_dir = Path(run_dir)
    model = ScoringModel.load(run_dir / MODEL) if (run_dir / MODEL).is_file() else None
    old: dict[str, Any] = {}
    missing = None
    if evaluations is None or partner_stats is None:
        if (run_dir / JSON_NAME).is_file():
            old = strict_json.loads_old((run_dir / JSON_NAME).read_text())
        else:
            missing = (f"no earlier {JSON_NAME}: this run predates model reports, so the partners' released "
                       "evaluation histograms and round-0 statistics were not kept; the sections built from them "
                       "are empty (the summary's pooled metrics are in summary.json)")
    if evaluations is None:
        evaluations = {n: ScoreHistogram.from_dict(h) for n, h in ((old.get("released") or {}).get("evaluations")
                                                                  or {}).items()}
    features = partner_feature_psi(partner_stats, model) if partner_stats is not None else old.get("feature_psi") or {}
    report = build_report(summary, evaluations, features, model, run_dir, missing)
    atomic_write_json(run_dir / JSON_NAME, report)
    atomic_write_text(run_dir / HTML_NAME, render_html(report))
    return report


def check_finished(run_dir: str | Path) -> None:
    """InputError unless `run_dir` is a finished run (its summary.json written; a failed run says why)."""
    run = RunDirectory(run_dir)
    if not run.path.is_dir():
        raise InputError("no such run directory", source=str(run_dir))
    if not run.file(SUMMARY).is_file():
        failed = run.failure()
        raise InputError(f"the run did not finish: {failed}" if failed else
                         "no summary.json: not a finished run directory (still running, or not a run)",
                         source=str(run_dir))
    try:
        strict_json.loads_old(run.file(SUMMARY).read_text())
    except ValueError as exc:
        raise InputError(f"summary.json is not JSON ({exc}): the run directory is damaged", source=str(run_dir)) from None


def render_text(report: Mapping[str, Any]) -> str:
    """Two or three lines for the terminal: pooled discrimination and the largest score PSI."""
    d = report["discrimination"]["pooled"]
    if d is None or d["auc"] is None:
        line = "model report: no pooled AUC (" + (d or {}).get("undefined", "no evaluation of the final model") + ")"
    else:
        line = (f"model report: pooled AUC {d['auc']:.4f} (95 % {d['auc_low']:.4f}-{d['auc_high']:.4f}), "
                f"KS {d['ks']:.4f}, Gini {d['gini']:.4f} on {d['rows']} held-out rows")
    psis = [(p["psi"], n) for n, p in report["score_distribution"]["partners"].items() if p["psi"] is not None]
    if psis:
        worst, name = max(psis)
        line += f"\n              largest score PSI against the pool: {worst:.4f} ({name}: {psi_reading(worst)})"
    return line
