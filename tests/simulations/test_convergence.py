"""Real simulations of the stopping rule: a run that converges early keeps its best model and says why;
under record-level DP the rule releases nothing more than a run of fixed rounds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fedcredit.clients.partner import open_partner_data
from fedcredit.credit.artefact import ScoringModel
from fedcredit.credit.metrics import exact_metrics
from fedcredit.credit.protocol import TaskConfig
from fedcredit.credit.scenario import load_scenario
from fedcredit.server.app import RunSettings
from fedcredit.simulations.runner import simulate
from tests.conftest import make_partner_frame, write_scenario

pytestmark = pytest.mark.e2e


def _frames() -> dict:
    return {"bank-a": make_partner_frame(1200, 1), "insurer-b": make_partner_frame(700, 2, shift=0.5),
            "platform-c": make_partner_frame(400, 3, shift=1.0)}


def test_a_converged_run_stops_early_and_keeps_its_best_model(tmp_path: Path) -> None:
    # a large min_delta: two models without such an improvement end the run long before the cap
    scenario = write_scenario(tmp_path / "c", _frames(), federation={"rounds": 30, "patience": 2, "min_delta": 0.05})
    result = simulate(RunSettings(scenario=str(scenario), out_dir=str(tmp_path / "run")), yardsticks=False)
    summary = result.summary
    stopping = summary["stopping"]
    assert summary["rounds_planned"] == 30 and 2 <= summary["rounds"] < 30 and summary["ended_early"] is None
    assert {"rule", "reason", "best_round", "monitored", "saved_round", "saved"} <= stopping.keys()
    assert stopping["rule"] == "converged" and stopping["reason"].startswith("converged")
    assert "validation rows" in stopping["monitored"] and stopping["saved_round"] == stopping["best_round"]

    rounds = [json.loads(line) for line in (result.run_dir / "rounds.jsonl").read_text().splitlines()]
    best = next(r for r in rounds if r["round"] == stopping["best_round"])
    assert summary["federated"] == best["pooled"]            # the saved model's metrics, on the test rows
    # the artefact is that model: scored exactly on the pooled test rows it gives the reported AUC
    loaded = load_scenario(scenario)
    task = TaskConfig(loaded.dataset, loaded.federation)
    tests = [open_partner_data(p, task, purpose="check").test for p in loaded.partners]
    model = ScoringModel.load(result.run_dir / "model.pt")
    exact = exact_metrics(np.concatenate([t.label for t in tests]),
                          np.concatenate([model.predict_proba(t.features) for t in tests]))
    assert exact["auc"] == pytest.approx(summary["federated"]["auc"], abs=0.003)


def test_under_dp_the_rule_adds_no_release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    privacy = {"mode": "sample", "epsilon": 50.0, "run_epsilon": 50.0, "delta": 1e-4, "noise_multiplier": 2.0,
               "eval_noise_multiplier": 4.0, "stats_noise_multiplier": 4.0, "ledger_dir": "run"}
    released = {}
    for stop in ("rounds", "converged"):
        monkeypatch.setenv("FEDCREDIT_STATE_DIR", str(tmp_path / f"state-{stop}"))   # each run its own budget
        # every model evaluated (each a charged release) and a rule that would stop at once if it read them
        scenario = write_scenario(tmp_path / stop, _frames(), privacy=privacy, federation={
            "rounds": 3, "stop": stop, "patience": 1, "min_delta": 0.5, "evaluate_every": 1})
        summary = simulate(RunSettings(scenario=str(scenario), out_dir=str(tmp_path / f"run-{stop}")),
                           yardsticks=False).summary
        assert summary["rounds"] == 3 and summary["stopping"]["best_round"] is None
        assert summary["stopping"]["saved_round"] == 3
        report = json.loads((tmp_path / f"run-{stop}" / "privacy_report.json").read_text())
        released[stop] = [(r["round"], r["partner"], r["mechanism"], tuple(r["rows"]), r["noise_multiplier"])
                          for r in report["rounds"]]
        if stop == "converged":
            assert "under record-level DP" in summary["stopping"]["monitored"]
    assert released["converged"] == released["rounds"]
    assert {m for _, _, m, _, _ in released["rounds"]} == {"gaussian-statistics", "dp-sgd", "gaussian-evaluation"}
