"""A real simulation with `model = "scorecard"`: points table files, summary's IV, a scoring artefact whose
PD is its points'; and a private scorecard whose bins would drown in the noise refused before anything runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tomli_w

from fedcredit.cli.main import main
from fedcredit.credit.artefact import ScoringModel
from fedcredit.credit.scorecard import ScorecardSettings
from fedcredit.server.app import RunSettings
from fedcredit.simulations.runner import simulate
from tests.conftest import make_partner_frame, write_scenario

pytestmark = pytest.mark.e2e


def _with_scorecard(path: Path, table: dict) -> Path:
    import tomllib

    raw = tomllib.loads(path.read_text())
    raw["scorecard"] = table
    path.write_text(tomli_w.dumps(raw))
    return path


def test_scorecard_simulation_writes_the_points_table_and_scores_with_it(tmp_path: Path) -> None:
    frames = {"bank-a": make_partner_frame(1200, 1), "insurer-b": make_partner_frame(800, 2, shift=0.5),
              "platform-c": make_partner_frame(500, 3, shift=1.0)}
    scenario = _with_scorecard(write_scenario(tmp_path / "s", frames, federation={"model": "scorecard"}),
                               {"pdo": 40, "base_score": 500, "base_odds": 20, "monotonic": {"late": "ascending"},
                                "reasons": {"late": "Late payments on file"}, "min_iv": 0.01})
    out = tmp_path / "run"
    summary = simulate(RunSettings(scenario=str(scenario), out_dir=str(out)), yardsticks=False).summary
    assert {"scorecard.csv", "scorecard.json", "model.pt", "summary.json"} <= {p.name for p in out.iterdir()}
    card = summary["scorecard"]
    assert set(card["iv"]) == {"age", "income", "late", "housing"} and card["iv"]["late"] > 0.05
    assert json.loads((out / "summary.json").read_text())["scorecard"]["iv"] == card["iv"]
    assert set(card["features"]) == {c for c, v in card["iv"].items() if v >= 0.01}
    assert (card["pdo"], card["base_score"], card["base_odds"]) == (40, 500, 20)
    table = pd.read_csv(out / "scorecard.csv")
    assert list(table.columns) == ["feature", "bin", "count_share", "bad_rate", "woe", "points"]
    late = table[table["feature"] == "late"]
    observed = late[late["bin"] != "missing"]
    assert list(observed["bad_rate"]) == sorted(observed["bad_rate"])       # the monotonic trend asked for
    assert list(observed["points"]) == sorted(observed["points"], reverse=True)   # riskier bins, fewer points
    for _, group in table.groupby("feature"):
        assert group["count_share"].sum() == pytest.approx(1.0, abs=1e-4)
    assert summary["federated"]["auc"] > 0.6

    model = ScoringModel.load(out / "model.pt")
    assert model.model_name == "scorecard" and model.transform.binned.kind == "points"
    assert model.metadata["reason_texts"] == {"late": "Late payments on file"}
    applicants = make_partner_frame(400, 9).drop(columns="bad_flag")
    features = applicants[["age", "income", "late", "housing"]].replace({"late": {98.0: np.nan}})
    score = model.transform.transform(features).astype(np.float64).sum(axis=1)
    settings = ScorecardSettings(base_score=500.0, base_odds=20.0, pdo=40.0)
    assert model.predict_proba(features) == pytest.approx(settings.pd(score), rel=1e-5)

    applicants.to_csv(tmp_path / "applicants.csv", index=False)
    assert main(["score", str(out / "model.pt"), str(tmp_path / "applicants.csv"), "--out",
                 str(tmp_path / "scores.csv"), "--points", "500:20:40"]) == 0
    scores = pd.read_csv(tmp_path / "scores.csv")
    assert scores["score"].to_numpy() == pytest.approx(score, abs=0.01)   # the points' sum, through `fedcredit score`
    late_reason = scores["reason_1"] == "late"
    assert (scores.loc[late_reason, "reason_text_1"] == "Late payments on file").all()


def test_private_scorecard_with_too_small_bins_is_refused_before_anything_runs(tmp_path: Path, capsys) -> None:
    frames = {"bank-a": make_partner_frame(600, 1), "insurer-b": make_partner_frame(600, 2)}
    scenario = _with_scorecard(write_scenario(tmp_path / "s", frames, federation={"model": "scorecard"},
                                              privacy={"mode": "sample", "epsilon": 5.0, "run_epsilon": 5.0,
                                                       "delta": 1e-4, "stats_noise_multiplier": 0.5,
                                                       "ledger_dir": "ledgers"}),
                               {"min_bin_share": 0.001})
    out = tmp_path / "run"
    assert main(["simulate", "--scenario", str(scenario), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "too few rows per scorecard bin" in err and "min_bin_share" in err
    assert not out.exists() and not out.with_name("run.incomplete").exists()
    for ledger in (tmp_path / "s" / "ledgers").glob("*.privacy-ledger.jsonl"):   # opened, nothing released
        assert [json.loads(line)["type"] for line in ledger.read_text().splitlines()] == ["header"]
