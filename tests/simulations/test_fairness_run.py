"""Fair-lending checks in a real simulation on German credit (sex from personal_status, age bands, foreign
worker): the report's adverse impact ratio and SMD equal those of the pooled held-out rows (exactly, without
DP; within the stated noise under DP), the protected columns never reach the model, and bad input stops
before anything runs."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
import tomli_w

from fedcredit.cli.main import main
from fedcredit.credit.artefact import ScoringModel
from fedcredit.credit.fairness import clipped_logit
from fedcredit.credit.scenario import load_scenario
from fedcredit.server.app import RunSettings
from fedcredit.simulations.datasets import GERMAN, GERMAN_FAIRNESS, GERMAN_PROTECTED, write_german_partners
from fedcredit.simulations.runner import open_partners, simulate
from tests.reports.checks import numbers_missing_from_json

FAST = {"stop": "rounds", "local_epochs": 3, "learning_rate": 0.05}
SEX = {"A91": "male", "A93": "male", "A94": "male", "A92": "female", "A95": "female"}


def _german(folder: Path, **kw) -> Path:
    if not GERMAN.exists():
        pytest.fail(f"shared dataset missing: {GERMAN}")
    return write_german_partners(folder, rounds=3, protected=GERMAN_PROTECTED, fairness=GERMAN_FAIRNESS,
                                 extra_federation={**FAST, **kw.pop("federation", {})}, **kw)


def _pooled(scenario_path: Path, model: ScoringModel) -> dict[str, dict[str, dict[str, float]]]:
    """AIR, SMD and TPR gap of every group, computed directly on the partners' pooled held-out rows, scored
    with the run's model artefact (the modeller holds every table in a simulation)."""
    scenario = load_scenario(scenario_path)
    data = open_partners(scenario)
    y = np.concatenate([d.test.label for d in data.values()])
    p_bad = np.concatenate([model.predict_proba(d.test.features) for d in data.values()])
    protected = {c: np.concatenate([d.test.protected[c].to_numpy() for d in data.values()])
                 for c in GERMAN_PROTECTED}
    scale = scenario.scorecard
    score = scale.offset - scale.factor * clipped_logit(p_bad)
    approved = score >= GERMAN_FAIRNESS["cutoff_score"]
    groups = {"personal_status": np.array([SEX[v] for v in protected["personal_status"]], dtype=object),
              "age": np.array(["<25", "[25, 40)", "[40, 62)", ">=62"], dtype=object)[
                  np.digitize(protected["age"].astype(float), [25, 40, 62])],
              "foreign_worker": np.where(protected["foreign_worker"] == "A201", "foreign", "not foreign")}
    out: dict[str, dict[str, dict[str, float]]] = {}
    for col, group in groups.items():
        ref = GERMAN_FAIRNESS["reference"][col]
        rate = {g: approved[group == g].mean() for g in set(group)}
        tpr = {g: approved[(group == g) & (y == 0)].mean() for g in set(group)}
        mean = {g: score[group == g].mean() for g in set(group)}
        out[col] = {g: {"air": rate[g] / rate[ref], "smd": (mean[g] - mean[ref]) / score.std(),
                        "tpr_gap": tpr[g] - tpr[ref], "rows": float((group == g).sum())} for g in set(group)}
    return out


@pytest.mark.e2e
def test_german_fairness_equals_the_pooled_rows_and_protected_columns_never_reach_the_model(tmp_path: Path) -> None:
    scenario = _german(tmp_path / "german")
    out = tmp_path / "run"
    summary = simulate(RunSettings(scenario=str(scenario), out_dir=str(out)), yardsticks=False).summary
    saved = json.loads((out / "summary.json").read_text())
    assert saved["fairness"] == summary["fairness"] and saved["fairness_settings"]["noised"] is False
    model = ScoringModel.load(out / "model.pt")
    # the protected columns are in no feature, no transform column and no released statistic
    used = {name.split("=")[0] for name in summary["features"]} | set(model.transform.numeric) \
        | set(model.transform.categorical)
    assert used and not used & set(GERMAN_PROTECTED)
    report = json.loads((out / "model_report.json").read_text())
    assert report["feature_psi"] and not set(report["feature_psi"]) & set(GERMAN_PROTECTED)
    assert model.spec.protected == GERMAN_PROTECTED and not set(model.spec.features) & set(GERMAN_PROTECTED)

    direct = _pooled(scenario, model)
    rows = summary["fairness"]
    assert {(r["column"], r["group"]) for r in rows} == {(c, g) for c, gs in direct.items() for g in gs}
    for r in rows:
        d = direct[r["column"]][r["group"]]
        assert r["rows"] == d["rows"]
        assert r["air"] == pytest.approx(d["air"], rel=1e-12)
        assert r["smd"] == pytest.approx(d["smd"], rel=1e-9, abs=1e-12)
        assert r["tpr_gap"] == pytest.approx(d["tpr_gap"], abs=1e-12)
    assert sum(r["rows"] for r in rows if r["column"] == "age") == summary["federated"]["n"]
    # the model-risk report's fairness section: the same rows, every number on the page in the JSON
    assert report["fairness"] == rows and report["fairness_settings"]["cutoff_score"] == 510
    page = (out / "model_report.html").read_text()
    assert "foreign_worker" in page and "(reference)" in page
    assert numbers_missing_from_json(page, report) == []


@pytest.mark.e2e
def test_german_fairness_under_dp_is_charged_and_within_its_stated_noise(tmp_path: Path) -> None:
    scenario = _german(tmp_path / "german", federation={"min_rows": 100},
                       privacy={"mode": "sample", "epsilon": 60.0, "run_epsilon": 60.0, "delta": 1e-4,
                                "stats_noise_multiplier": 1.0, "eval_noise_multiplier": 0.2, "ledger_dir": "run"})
    out = tmp_path / "run"
    summary = simulate(RunSettings(scenario=str(scenario), out_dir=str(out)), yardsticks=False).summary
    settings = summary["fairness_settings"]
    assert settings["noised"] and settings["count_noise_sd"] == pytest.approx(0.2 * np.sqrt(3) * np.sqrt(3))
    privacy = json.loads((out / "privacy_report.json").read_text())
    for p in privacy["partners"]:
        fair = [r for r in p["releases"] if r["mechanism"] == "gaussian-fairness"]
        assert len(fair) == 1 and fair[0]["noise_multiplier"] == 0.2 and p["recomputed_matches"]
    direct = _pooled(scenario, ScoringModel.load(out / "model.pt"))
    checked = 0
    for r in summary["fairness"]:
        if r["is_reference"] or r["air"] is None:
            continue
        d = direct[r["column"]][r["group"]]
        # the cutoff is an edge of the released grid: the AIR and TPR gap carry noise only
        assert abs(r["air"] - d["air"]) <= 5 * r["air_noise_sd"] + 1e-9, r
        if r["tpr_gap"] is None:   # a small group's noised good count can leave it without a TPR: said why
            assert "true-positive rate" in r["undefined"], r
        else:
            assert abs(r["tpr_gap"] - d["tpr_gap"]) <= 5 * r["tpr_gap_noise_sd"] + 1e-9, r
        # the SMD also the half-logit binning of the scores (a few hundredths of an SD)
        assert abs(r["smd"] - d["smd"]) <= 5 * r["smd_noise_sd"] + 0.08, r
        checked += 1
    assert checked >= 3


def test_a_protected_column_listed_as_a_feature_stops_before_anything_runs(tmp_path: Path, capsys) -> None:
    scenario = _german(tmp_path / "german")
    raw = tomllib.loads(scenario.read_text())
    raw["dataset"]["numeric"].append("age")
    scenario.write_text(tomli_w.dumps(raw))
    out = tmp_path / "run"
    assert main(["simulate", "--scenario", str(scenario), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(scenario) in err and "field 'protected'" in err
    assert "column 'age' is protected and also listed in numeric" in err and "remove it from numeric" in err
    assert not out.exists() and not out.with_name("run.incomplete").exists()


def test_a_reference_value_the_rows_do_not_hold_stops_before_anything_runs(tmp_path: Path, capsys) -> None:
    scenario = _german(tmp_path / "german")
    raw = tomllib.loads(scenario.read_text())
    raw["fairness"]["reference"]["personal_status"] = "unmarried"          # no such group
    scenario.write_text(tomli_w.dumps(raw))
    out = tmp_path / "run"
    assert main(["simulate", "--scenario", str(scenario), "--out", str(out)]) == 2
    assert "field 'reference': 'unmarried' is no group of 'personal_status'" in capsys.readouterr().err
    # a column grouped by the codes its rows hold: the code must be in some partner's rows
    del raw["fairness"]["groups"]["foreign_worker"]
    raw["fairness"]["reference"] = {"foreign_worker": "A209"}
    scenario.write_text(tomli_w.dumps(raw))
    assert main(["simulate", "--scenario", str(scenario), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'A209' is no code of protected column 'foreign_worker'" in err
    assert "['A201', 'A202']" in err
    assert not out.exists() and not out.with_name("run.incomplete").exists()
