"""The model-risk report from released histograms and statistics: JSON, HTML (every number in the
JSON), headless Chromium, and `fedcredit report` on a bad path."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fedcredit.cli.main import main
from fedcredit.credit.metrics import PRIVATE_SCORE_EDGES, ScoreHistogram
from fedcredit.reports.measures import calibration, discrimination, psi
from fedcredit.reports.model_report import (
    HTML_NAME,
    JSON_NAME,
    pooled_calibration,
    render_text,
    write_model_report,
)
from tests.privacy.test_report import CHROMIUM_FLAGS
from tests.reports.checks import numbers_missing_from_json, page_numbers
from tests.reports.conftest import Released


def _run_dir(tmp_path: Path, released: Released) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(released.model_path, run / "model.pt")
    (run / "summary.json").write_text(json.dumps(released.summary))
    return run


def as_json(value):
    return json.loads(json.dumps(value))


def strict(text: str):
    return json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in the JSON"))


def test_report_json_holds_every_section_from_the_released_histograms(tmp_path: Path, released: Released) -> None:
    run = _run_dir(tmp_path, released)
    report = write_model_report(run, released.summary, released.evaluations, released.stats)
    saved = strict((run / JSON_NAME).read_text())
    assert saved == json.loads(json.dumps(report))
    pooled = ScoreHistogram.combine(released.evaluations.values())
    assert saved["discrimination"]["pooled"] == as_json(discrimination(pooled))
    assert saved["discrimination"]["partners"]["platform-c"]["auc"] == pytest.approx(
        released.evaluations["platform-c"].metrics()["auc"])
    low, auc, high = (saved["discrimination"]["pooled"][k] for k in ("auc_low", "auc", "auc_high"))
    assert 0.5 < low < auc < high < 1
    assert saved["calibration"]["pooled"] == as_json(calibration(pooled))
    assert len(saved["calibration"]["pooled"]["deciles"]) == 10
    assert pooled_calibration(released.evaluations)["deciles"] == saved["calibration"]["pooled"]["deciles"]
    # score PSI on the coarse grid: the shifted partner moved furthest from the pool
    dist = saved["score_distribution"]
    assert len(dist["pd_edges"]) == len(PRIVATE_SCORE_EDGES)
    coarse = {n: h.coarsen(PRIVATE_SCORE_EDGES) for n, h in released.evaluations.items()}
    pool_counts = sum(h.bad + h.good for h in coarse.values())
    for name, h in coarse.items():
        assert dist["partners"][name]["psi"] == pytest.approx(psi(pool_counts, h.bad + h.good))
    assert max(dist["partners"], key=lambda n: dist["partners"][n]["psi"]) == "platform-c"
    # per-feature PSI from the partners' round-0 statistics, on the model's columns
    assert set(saved["feature_psi"]) == {"age", "income", "late", "housing"}
    income = saved["feature_psi"]["income"]["partners"]
    assert income["platform-c"] > income["bank-a"] > 0
    # no scorecard: the LR coefficients; no fairness: said so
    terms = saved["model_terms"]["coefficients"]
    assert terms[0]["term"] == "intercept" and len(terms) == 1 + len(released.summary["features"])
    assert saved["scorecard"] is None and saved["fairness"] is None
    assert saved["fairness_note"] == "no protected columns declared"
    assert saved["yardsticks"]["centralized_auc"] == 0.8
    assert saved["privacy"]["statement"] == "no differential privacy (test model)"

    text = render_text(report)
    assert text.startswith(f"model report: pooled AUC {auc:.4f} (95 % {low:.4f}-{high:.4f})")
    assert "largest score PSI against the pool" in text and "(platform-c: stable)" in text

    page = (run / HTML_NAME).read_text()
    assert "no protected columns declared" in page and page.count("data:image/png;base64,") == 2
    assert len(page_numbers(page)) > 200
    assert numbers_missing_from_json(page, saved) == []


def test_refresh_keeps_the_released_inputs_and_renders_scorecard_and_fairness(tmp_path: Path,
                                                                            released: Released) -> None:
    run = _run_dir(tmp_path, released)
    first = write_model_report(run, released.summary, released.evaluations, released.stats)
    points = [{"feature": "income", "bin": "[0, 2500)", "count_share": 0.31, "bad_rate": 0.27, "woe": -0.6123,
               "points": 12.5}, {"feature": "income", "bin": "[2500, inf)", "count_share": 0.69, "bad_rate": 0.11,
                                 "woe": 0.4471, "points": 41.0}]
    (run / "scorecard.json").write_text(json.dumps({"scaling": {"pdo": 20, "base_score": 600}, "intercept": -1.25,
                                                    "features": [{"feature": "income", "iv": 0.2311, "bins": points}]}))
    fairness, fairness_settings = _fairness_rows()
    summary = {**released.summary, "scorecard": {"iv": {"income": 0.2311, "late": 0.4178}},
               "fairness": fairness, "fairness_settings": fairness_settings}
    (run / "summary.json").write_text(json.dumps(summary))
    assert main(["report", str(run)]) == 2          # no privacy report in this folder: one clear error
    assert first["missing_inputs"] is None
    again = write_model_report(run, summary)
    assert again["released"] == first["released"] and again["feature_psi"] == first["feature_psi"]
    assert again["discrimination"] == first["discrimination"]
    assert list(again["scorecard"]["iv"]) == ["late", "income"] and again["scorecard"]["points"] == points
    assert again["model_terms"] is None and again["fairness"] == fairness
    assert again["fairness_settings"]["cutoff_score"] == 540 and again["fairness_note"] is None
    page = (run / HTML_NAME).read_text()
    assert again["scorecard"]["settings"] == {"pdo": 20, "base_score": 600, "intercept": -1.25}
    assert "0.4178" in page and "-0.6123" in page and "age_band" in page and "-1.25" in page
    young = next(r for r in fairness if r["group"] == "<25")
    assert f"{young['air']:.4f}" in page and f"{young['smd']:.4f}" in page and "(reference)" in page
    assert numbers_missing_from_json(page, strict((run / JSON_NAME).read_text())) == []


def _fairness_rows() -> tuple[list[dict], dict]:
    """summary.json's `fairness` and `fairness_settings` for exact releases of 600 scored rows by age band."""
    from fedcredit.credit.fairness import FairnessSettings, FairnessTask
    from fedcredit.credit.schema import DatasetSpec
    from fedcredit.credit.scorecard import ScorecardSettings
    from fedcredit.reports.fairness import cutoff_logit, fairness_summary

    rng = np.random.default_rng(5)
    age = rng.integers(18, 80, 600).astype(float)
    p_bad = 1 / (1 + np.exp(-(-1.0 - 0.02 * (age - 40) + rng.normal(0, 1, 600))))
    y = (rng.random(600) < p_bad).astype(int)
    spec = DatasetSpec("bad", ("income",), protected=("age_band",), protected_numeric=("age_band",))
    settings, scale = FairnessSettings(cutoff_score=540, groups={"age_band": [25, 40, 62]}), ScorecardSettings()
    task = FairnessTask(settings, cutoff_logit(540, scale))
    scores = task.release(spec, y, p_bad, pd.DataFrame({"age_band": age}))
    return as_json(fairness_summary(scores, spec, settings, scale, partners=["bank-a"], round=3))


def test_the_number_check_catches_a_number_not_in_the_json() -> None:
    page = "<p>AUC 0.7812 on 1200 rows</p><style>p { margin: 2em }</style><img src=\"data:1234\">"
    assert numbers_missing_from_json(page, {"auc": 0.78123, "rows": 1200.2}) == []
    assert numbers_missing_from_json(page, {"auc": 0.7815, "rows": 1200}) == ["0.7812"]


def test_model_report_renders_in_headless_chromium_with_its_plots(tmp_path: Path, released: Released) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("chromium is not installed: `make test` installs it (apt-get install chromium)")
    run = _run_dir(tmp_path, released)
    write_model_report(run, released.summary, released.evaluations, released.stats)
    shot = tmp_path / "report.png"
    subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2400",
                    f"--screenshot={shot}", (run / HTML_NAME).as_uri()], check=True, timeout=90, capture_output=True)
    import matplotlib.image as mpimg

    pixels = mpimg.imread(shot)[:, :, :3]
    assert pixels.shape[:2] == (2400, 1200)
    coloured = np.abs(pixels - pixels.mean(axis=2, keepdims=True)).sum(axis=2) > 0.3
    # two plots with coloured partner lines, one under the other (the tables are black on white): two
    # bands of rows holding colour, apart by more than 100 px, each with enough coloured pixels
    rows = np.flatnonzero(coloured.sum(axis=1) > 3)
    assert len(rows), "the plots did not render with coloured lines"
    bands = np.split(rows, np.flatnonzero(np.diff(rows) > 100) + 1)
    heavy = [b for b in bands if coloured[b].sum() > 500]
    assert len(heavy) >= 2, f"expected two coloured plots, found {len(heavy)}"


@pytest.mark.parametrize("setup, message", [
    (None, "no such run directory"),
    ("running", "no summary.json: not a finished run directory"),
    ("failed", "the run did not finish: round 2: no partner replied"),
])
def test_report_on_a_bad_path_is_one_clear_error(tmp_path: Path, capsys, setup: str | None, message: str) -> None:
    run = tmp_path / "run"
    if setup:
        run.mkdir()
        (run / "rounds.jsonl").write_text("")
    if setup == "failed":
        (run / "failed.json").write_text(json.dumps({"reason": "round 2: no partner replied", "time": "t"}))
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"fedcredit: error: {run}: {message}") and "\n" not in err and "Traceback" not in err
    assert not (run / JSON_NAME).exists()


def test_noised_coarse_histograms_give_a_standard_json_report(tmp_path: Path, released: Released) -> None:
    """Under DP partners release coarse histograms with Gaussian noise on each count (some negative)."""
    rng = np.random.default_rng(5)
    noised = {}
    for name, hist in released.evaluations.items():
        coarse = hist.coarsen(PRIVATE_SCORE_EDGES)
        noised[name] = ScoreHistogram(coarse.bad + rng.normal(0, 3, coarse.bad.shape),
                                      coarse.good + rng.normal(0, 3, coarse.good.shape), None, None, 0.0,
                                      coarse.edges, noise_sd=3.0)
    assert any((h.bad < 0).any() for h in noised.values())
    run = _run_dir(tmp_path, released)
    write_model_report(run, released.summary, noised, released.stats)
    saved = strict((run / JSON_NAME).read_text())
    pooled = saved["discrimination"]["pooled"]
    assert pooled["noised"] and pooled["auc_se"] > 0 and pooled["auc_low"] < pooled["auc"] < pooled["auc_high"]
    deciles = saved["calibration"]["pooled"]["deciles"]
    assert 3 <= len(deciles) <= 10 and all(d["rows"] > 0 and d["bads"] >= 0 for d in deciles)
    assert all(p["psi"] is not None and p["psi"] >= 0 for p in saved["score_distribution"]["partners"].values())
    assert numbers_missing_from_json((run / HTML_NAME).read_text(), saved) == []


def test_a_run_older_than_model_reports_says_what_is_missing(tmp_path: Path, released: Released) -> None:
    run = _run_dir(tmp_path, released)
    report = write_model_report(run, released.summary)
    assert "predates model reports" in report["missing_inputs"]
    assert report["discrimination"]["pooled"] is None and report["feature_psi"] == {}
    assert report["model_terms"]["coefficients"]                     # what the artefact holds is still there
    page = (run / HTML_NAME).read_text()
    assert "predates model reports" in page and numbers_missing_from_json(page, report) == []
