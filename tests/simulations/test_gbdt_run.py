"""Real simulations with `model = "gbdt"`: trees grown from the partners' histograms beat chance and
come near scikit-learn's centralised HistGradientBoosting; the model scores through the one artefact
API and `fedcredit score`; under DP every level is in each partner's ledger and the report's recount
matches it; a fixed noise that cannot fit one tree is refused before anything runs."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tomli_w
import torch

from fedcredit.cli.main import main
from fedcredit.credit.artefact import ScoringModel
from fedcredit.credit.errors import InputError
from fedcredit.privacy.accountant import compose_rows
from fedcredit.privacy.ledger import PrivacyLedger
from fedcredit.server.app import RunSettings
from fedcredit.simulations.runner import simulate
from tests.conftest import make_partner_frame, write_scenario

pytestmark = pytest.mark.e2e


def _scenario(folder: Path, gbdt: dict, model: str = "gbdt", **kwargs) -> Path:
    frames = {"bank-a": make_partner_frame(1500, 1), "insurer-b": make_partner_frame(1000, 2, shift=0.5),
              "platform-c": make_partner_frame(700, 3, shift=1.0)}
    path = write_scenario(folder, frames, federation={"model": model}, **kwargs)
    raw = tomllib.loads(path.read_text())
    path.write_text(tomli_w.dumps({**raw, "gbdt": gbdt}))
    return path


def test_trees_beat_chance_come_near_the_centralised_hgb_and_score_through_the_artefact(tmp_path: Path) -> None:
    scenario = _scenario(tmp_path / "s", {"trees": 8, "max_depth": 3, "learning_rate": 0.3})
    out = tmp_path / "run"
    summary = simulate(RunSettings(scenario=str(scenario), out_dir=str(out))).summary
    fed, cen = summary["federated"]["auc"], summary["centralized"]["auc"]
    assert fed > 0.65 and abs(fed - cen) < 0.03, (fed, cen)
    gbdt = summary["gbdt"]
    assert summary["model"] == "gbdt" and summary["rounds"] == gbdt["trees_grown"] == 8
    assert all(1 <= p <= 3 for p in gbdt["phases_per_tree"]) and gbdt["message_phases"] == sum(gbdt["phases_per_tree"])
    assert all(p["rounds_trained"] == 8 and p["local"]["auc"] is not None for p in summary["partners"])

    model = ScoringModel.load(out / "model.pt")
    assert model.model_name == "gbdt" and len(model.trees.trees) == 8 and not model.state_dict
    payload = torch.load(out / "model.pt", weights_only=True)
    assert payload["model"]["trees"]["format"] == "fedcredit-trees/1"       # the JSON format, in the one artefact
    applicants = make_partner_frame(400, 9).drop(columns="bad_flag")
    features = applicants[["age", "income", "late", "housing"]].replace({"late": {98.0: np.nan}})
    pd_model = model.predict_proba(features)
    assert pd_model == pytest.approx(model.trees.predict_proba(model.transform.transform(features)), rel=1e-12)

    applicants.to_csv(tmp_path / "applicants.csv", index=False)
    assert main(["score", str(out / "model.pt"), str(tmp_path / "applicants.csv"), "--out",
                 str(tmp_path / "scores.csv")]) == 0
    scores = pd.read_csv(tmp_path / "scores.csv")
    assert scores["pd"].to_numpy() == pytest.approx(pd_model, rel=1e-9)
    reasons = set(scores[[f"reason_{i}" for i in range(1, 5)]].stack().dropna())
    assert reasons and reasons <= {"age", "income", "late", "housing"}      # path attributions, summed per column


def test_private_trees_charge_every_level_and_the_report_recounts_the_ledger(tmp_path: Path) -> None:
    scenario = _scenario(tmp_path / "s", {"trees": 4, "max_depth": 2, "learning_rate": 0.3},
                         privacy={"mode": "sample", "epsilon": 10.0, "run_epsilon": 5.0, "delta": 1e-5, "stats_noise_multiplier": 8.0,
                                  "ledger_dir": "ledgers"})
    out = tmp_path / "run"
    summary = simulate(RunSettings(scenario=str(scenario), out_dir=str(out)), yardsticks=False).summary
    report = json.loads((out / "privacy_report.json").read_text())
    assert any("gaussian-histogram" in a for a in report["assumptions"])
    for p in summary["partners"]:
        ledger = PrivacyLedger.inspect(tmp_path / "s" / "ledgers" / f"{p['name']}.privacy-ledger.jsonl")
        levels = [e for e in ledger.entries() if e.mechanism == "gaussian-histogram"]
        phases = summary["gbdt"]["message_phases"]
        assert len(levels) == phases and {e.round for e in levels} == {1, 2, 3, 4}
        assert all(e.release.sample_rate == 1.0 and e.release.steps == 1 for e in levels)
        recount = compose_rows(ledger.charges(), 1e-5).epsilon
        assert p["privacy"]["epsilon"] == pytest.approx(recount, abs=1e-9)
        assert recount <= p["privacy"]["run_cap"] + 0.02
        stated = next(r for r in report["partners"] if r["name"] == p["name"])
        assert stated["recomputed_matches"] and stated["epsilon_recomputed"] == pytest.approx(recount, abs=1e-9)
    assert summary["federated"]["auc"] is not None


def test_a_fixed_noise_that_cannot_fit_one_tree_is_refused_before_anything_runs(tmp_path: Path) -> None:
    scenario = _scenario(tmp_path / "s", {"trees": 4, "max_depth": 3},
                         privacy={"mode": "sample", "epsilon": 1.0, "delta": 1e-5, "noise_multiplier": 0.6,
                                  "ledger_dir": "ledgers"})
    with pytest.raises(InputError, match="spends epsilon .* in a single tree, over the budget"):
        simulate(RunSettings(scenario=str(scenario), out_dir=str(tmp_path / "run")), yardsticks=False)
    for ledger in (tmp_path / "s" / "ledgers").glob("*.privacy-ledger.jsonl"):
        assert PrivacyLedger.inspect(ledger).entries() == []                 # nothing was released


def test_a_random_forest_grows_averaged_trees_and_scores_through_the_artefact(tmp_path: Path) -> None:
    scenario = _scenario(tmp_path / "s", {"trees": 6, "max_depth": 3}, model="random_forest")
    out = tmp_path / "run"
    summary = simulate(RunSettings(scenario=str(scenario), out_dir=str(out)), yardsticks=False).summary
    forest = summary["random_forest"]
    assert summary["model"] == "random_forest" and forest["trees_grown"] == 6 and forest["subsample"] == 0.632
    assert summary["federated"]["auc"] > 0.65
    model = ScoringModel.load(out / "model.pt")
    assert model.model_name == "random_forest" and model.trees.average
    applicants = make_partner_frame(200, 9).drop(columns="bad_flag")
    applicants.to_csv(tmp_path / "applicants.csv", index=False)
    assert main(["score", str(out / "model.pt"), str(tmp_path / "applicants.csv"), "--out",
                 str(tmp_path / "scores.csv")]) == 0
    features = applicants[["age", "income", "late", "housing"]].replace({"late": {98.0: np.nan}})
    assert pd.read_csv(tmp_path / "scores.csv")["pd"].to_numpy() == pytest.approx(model.predict_proba(features))
