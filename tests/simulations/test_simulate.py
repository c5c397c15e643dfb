"""A real Flower simulation (Ray) of three partners, and bad input stopping it early."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from fedcredit.cli.main import main
from fedcredit.clients.partner import open_partner_data
from fedcredit.credit.artefact import ScoringModel
from fedcredit.credit.protocol import TaskConfig
from fedcredit.credit.scenario import load_scenario
from fedcredit.server.app import RunSettings
from fedcredit.simulations.runner import simulate
from tests.conftest import make_partner_frame, write_scenario
from tests.reports.checks import assert_model_report

pytestmark = pytest.mark.e2e


def test_three_partner_simulation_writes_a_complete_run(three_partners: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    rounds_heard, yardsticks_heard = [], []
    result = simulate(RunSettings(scenario=str(three_partners), out_dir=str(out)),
                      on_round=lambda *step: rounds_heard.append(step),
                      on_yardstick=lambda *step: yardsticks_heard.append(step))
    assert result.run_dir == out.resolve()
    assert not out.with_name("run.incomplete").exists()
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.pt", "model_report.html", "model_report.json",
                                                     "privacy_report.html", "privacy_report.json", "rounds.jsonl",
                                                     "summary.json"]

    summary = json.loads((out / "summary.json").read_text())
    # the contract other tools rely on
    assert {"auc", "ks", "gini", "brier"} <= summary["federated"].keys()
    assert {"auc", "ks"} <= summary["centralized"].keys()
    assert [p["name"] for p in summary["partners"]] == ["bank-a", "insurer-b", "platform-c"]
    for p in summary["partners"]:
        assert {"name", "kind", "rows_train", "rows_test"} <= p.keys()
        assert 0.5 < p["local"]["auc"] < 1 and 0.5 < p["federated"]["auc"] < 1
    bank = summary["partners"][0]       # split by each row's content: about a quarter held out
    assert bank["rows_train"] + bank["rows_test"] == 1500 and abs(bank["rows_test"] - 375) < 70

    rounds = [json.loads(line) for line in (out / "rounds.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rounds] == [0, 1, 2, 3]
    assert rounds[-1]["pooled"] == summary["federated"]
    assert json.loads((out / "config.json").read_text())["scenario"]["federation"]["rounds"] == 3

    # progress (issue 10, part 5): each round line names the round it trained, the model it evaluated and
    # who trained; (rounds trained, of rounds planned) never decreases and ends at the total
    assert [(done, total) for done, total, _ in rounds_heard] == [(0, 3), (0, 3), (1, 3), (2, 3), (3, 3), (3, 3)]
    lines = [line for _, _, line in rounds_heard]
    assert lines[1].startswith("round  0/3  statistics from 3 of 3 partners: shared transform fitted")
    for r in (1, 2, 3):
        assert lines[r + 1].startswith(f"round  {r}/3  trained by 3 of 3 partners  train loss ")
        assert f"|  model of round {r - 1} evaluated by 3 partners: pooled AUC" in lines[r + 1]
    assert lines[5].startswith("final       model of round 3 evaluated by 3 of 3 partners: pooled AUC "
                               f"{summary['federated']['auc']:.4f}")
    assert [(done, total) for done, total, _ in yardsticks_heard] == [(i, 5) for i in range(1, 6)]
    assert "centralised model on 3 partners' pooled training rows" in yardsticks_heard[0][2]
    assert [w.split("  ")[1] for _, _, w in yardsticks_heard[1:4]] == [
        f"local-only model of {p}: AUC {summary['partners'][i]['local']['auc']:.4f} on its test rows"
        for i, p in enumerate(["bank-a", "insurer-b", "platform-c"])]

    # pooled metrics from histograms == scikit-learn on the same pooled test rows, scored by the artefact
    scenario = load_scenario(three_partners)
    model = ScoringModel.load(out / "model.pt")
    labels, scores = [], []
    for partner in scenario.partners:
        test = open_partner_data(partner, TaskConfig(scenario.dataset, scenario.federation), purpose="check").test
        labels.append(test.label)
        scores.append(model.predict_proba(test.features))
    pooled_auc = roc_auc_score(np.concatenate(labels), np.concatenate(scores))
    assert summary["federated"]["auc"] == pytest.approx(pooled_auc, abs=1e-3)
    assert summary["federated"]["auc"] > 0.7

    # the artefact says where it comes from (scoring: fedcredit model inspect, drift)
    assert summary["model_id"] == model.id and model.sealed
    meta = model.metadata
    assert meta["run"] == summary["run"] and meta["scenario"] == summary["scenario"] and meta["rounds"] == 3
    assert [p["name"] for p in meta["partners"]] == ["bank-a", "insurer-b", "platform-c"]
    assert all(len(p["dataset"]) == 64 for p in meta["partners"])          # a simulation knows the fingerprints
    assert meta["privacy"].startswith("no differential privacy")
    ref = meta["reference"]
    assert sum(ref["score"]["counts"]) == pytest.approx(sum(len(x) for x in labels))   # the final evaluation
    assert set(ref["features"]) == set(model.transform.numeric) | set(model.transform.categorical)

    # the model-risk report (issue 12, part 6): from the partners' released histograms, refreshed by the CLI
    assert_model_report(out, summary)
    assert main(["report", str(out)]) == 0
    assert_model_report(out, json.loads((out / "summary.json").read_text()))


def test_cli_stops_bad_input_before_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frames = {"bank-a": make_partner_frame(600, 1), "insurer-b": make_partner_frame(600, 2).rename(
        columns={"income": "salary"})}
    scenario = write_scenario(tmp_path / "s", frames)
    out = tmp_path / "run"
    assert main(["simulate", "--scenario", str(scenario), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fedcredit: error: partner 'insurer-b'")
    assert "insurer-b.csv" in err and "['income']" in err
    assert not out.exists() and not out.with_name("run.incomplete").exists()


def test_unknown_model_in_scenario_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = write_scenario(tmp_path / "s", {"a": make_partner_frame(300, 1)}, federation={"model": "forest"})
    assert main(["simulate", "--scenario", str(scenario), "--out", str(tmp_path / "run")]) == 2
    assert "field 'model': unknown model" in capsys.readouterr().err


def test_existing_run_directory_is_not_overwritten(three_partners: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "summary.json").write_text("{}")
    assert main(["simulate", "--scenario", str(three_partners), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "summary.json").read_text() == "{}"


def test_a_foreign_folder_where_the_run_would_stage_is_not_removed(three_partners: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    staging = tmp_path / "run.incomplete"              # not named by the user, but in the way
    staging.mkdir()
    (staging / "notes.txt").write_text("keep me")
    assert main(["simulate", "--scenario", str(three_partners), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert f"{staging}: exists and is not an unfinished fedcredit run" in err and "choose another --out" in err
    assert (staging / "notes.txt").read_text() == "keep me" and not (tmp_path / "run").exists()
    from fedcredit.simulations.runner import _clear_staging

    crashed = tmp_path / "old.incomplete"                # what a killed run leaves: cleared for the rerun
    (crashed / "ledgers").mkdir(parents=True)
    (crashed / "rounds.jsonl").write_text("{}\n")
    (crashed / ".summary.json.abc.tmp").write_text("")
    _clear_staging(crashed)
    assert not crashed.exists()
