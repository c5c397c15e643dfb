"""`fedcredit cv`: a real federated cross-validation (2 folds × 2 settings), its result file, its privacy
plan charged to the ledger as planned (a partner without DP: nothing), and the searches it refuses."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from fedcredit.cli.main import main
from fedcredit.clients.partner import open_partner_data
from fedcredit.credit.folds import fold_interval
from fedcredit.credit.protocol import TaskConfig
from fedcredit.credit.scenario import load_scenario
from fedcredit.privacy.accountant import compose_rows
from fedcredit.privacy.ledger import PrivacyLedger
from fedcredit.simulations.cv import RESULT_JSON, RESULT_TEXT
from tests.conftest import make_partner_frame, write_scenario

pytestmark = pytest.mark.e2e

TF = 0.25


def _scenario(folder: Path, *, epsilon: float | None) -> Path:
    """Two partners; with `epsilon` both with record-level DP (fixed DP-SGD noise, ledgers beside the data)."""
    frames = {"bank-a": make_partner_frame(1500, 1), "insurer-b": make_partner_frame(900, 2, shift=0.5)}
    dp = {"mode": "sample", "epsilon": epsilon, "run_epsilon": 6.0, "delta": 1e-4, "noise_multiplier": 3.0,
          "stats_noise_multiplier": 4.0, "ledger_dir": "ledgers"} if epsilon else None
    return write_scenario(folder, frames, federation={"rounds": 2, "local_epochs": 1}, privacy=dp)


def _summary(out: Path, run: str) -> dict:
    return json.loads((out / "trainings" / run / "summary.json").read_text())


def test_a_cross_validation_reports_each_setting_and_charges_the_ledgers_as_planned(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = _scenario(tmp_path / "consortium", epsilon=20.0)
    out = tmp_path / "search"
    assert main(["cv", "--scenario", str(scenario), "--folds", "2", "--grid", "learning_rate=0.01,0.05",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.index("planned before it starts") < printed.index("picked: setting")

    result = json.loads((out / RESULT_JSON).read_text())
    assert (out / RESULT_TEXT).read_text().strip() in printed
    assert not out.with_name("search.incomplete").exists()
    assert result["folds"] == 2 and result["trainings"] == 4 and result["grid"] == {"learning_rate": [0.01, 0.05]}
    for s, lr in zip(result["settings"], (0.01, 0.05)):
        assert s["values"] == {"learning_rate": lr} and [f["fold"] for f in s["folds"]] == [1, 2]
        aucs = [f["auc"] for f in s["folds"]]
        assert all(0 <= a <= 1 for a in aucs)
        assert s["auc_mean"] == pytest.approx(statistics.fmean(aucs))
        assert s["auc_sd"] == pytest.approx(statistics.stdev(aucs))
        for f in s["folds"]:                                    # each fold a finished run of its own
            summary = _summary(out, f["run"])
            assert summary["federated"]["auc"] == f["auc"] and summary["rounds"] == 2
    best = max(result["settings"], key=lambda s: s["auc_mean"])
    assert result["best"]["setting"] == best["setting"] and result["best"]["values"] == best["values"]

    # each ledger: per training 2 statistics, 2 DP-SGD rounds, 1 evaluation; the training charged to the
    # other fold, the evaluation to its own; the search's epsilon is the plan's
    runs = [f["run"] for s in result["settings"] for f in s["folds"]]
    for planned, spent in zip(result["privacy"]["plan"]["partners"], result["privacy"]["spent"]):
        assert planned["trainings"] == 4 and planned["fits"] and planned["epsilon_now"] == 0
        name = planned["partner"]
        entries = PrivacyLedger.inspect(tmp_path / "consortium" / "ledgers" / f"{name}.privacy-ledger.jsonl").entries()
        assert sorted({e.run for e in entries}) == sorted(runs)
        for s in result["settings"]:
            for f in s["folds"]:
                mine = [e for e in entries if e.run == f["run"]]
                held, other = fold_interval(TF, 2, f["fold"] - 1), fold_interval(TF, 2, 2 - f["fold"])
                assert sorted(e.mechanism for e in mine) == ["dp-sgd"] * 2 + ["gaussian-evaluation"] + \
                    ["gaussian-statistics"] * 2
                assert all(e.rows == (held if e.mechanism == "gaussian-evaluation" else other) for e in mine)
        epsilon = compose_rows([e.charge for e in entries], 1e-4).epsilon
        assert epsilon == pytest.approx(planned["epsilon_search"], abs=0.02), name
        assert epsilon <= planned["epsilon_after"] + 0.02 and epsilon == pytest.approx(spent["epsilon_search"])
        assert spent["partner"] == name and spent["trainings_charged"] == 4


def test_a_cross_validation_without_dp_charges_nothing_and_its_folds_cover_the_rows(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], machine_state: Path) -> None:
    scenario = _scenario(tmp_path / "consortium", epsilon=None)
    out = tmp_path / "search"
    # on a private Ray (auto would run 3 partners in process): the batch's other engine
    assert main(["cv", "--scenario", str(scenario), "--folds", "2", "--out", str(out), "--engine", "ray"]) == 0
    printed = capsys.readouterr().out
    assert "no record-level DP: nothing is planned or charged" in printed
    result = json.loads((out / RESULT_JSON).read_text())
    assert result["privacy"]["spent"] == [] and result["privacy"]["plan"]["partners"] == []
    assert result["best"]["setting"] == 1 and result["settings"][0]["label"] == "scenario's settings"
    # each partner evaluated each fold exactly: the folds are disjoint and cover its training rows
    base = load_scenario(scenario)
    summaries = [_summary(out, f["run"]) for f in result["settings"][0]["folds"]]
    assert {(s["simulation_engine"]["backend"], s["simulation_engine"]["batch_runs"]) for s in summaries} == {("ray", 2)}
    folds = [s["partners"] for s in summaries]
    for i, partner in enumerate(base.partners):
        data = open_partner_data(partner, TaskConfig(base.dataset, base.federation), purpose="check")
        assert sum(fold[i]["rows_test"] for fold in folds) == len(data.train)
    # nothing charged anywhere: no ledger beside the data, no dataset anchor on the machine
    assert not list((tmp_path / "consortium").glob("*.jsonl")) and not list(machine_state.rglob("*.jsonl"))


def test_a_search_over_a_partners_budget_is_refused_before_any_training(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], machine_state: Path) -> None:
    scenario = _scenario(tmp_path / "consortium", epsilon=8.0)      # one training fits, four do not
    out = tmp_path / "search"
    assert main(["cv", "--scenario", str(scenario), "--folds", "2", "--grid", "learning_rate=0.01,0.05",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "the search would cost partner 'bank-a' epsilon" in err and "4 trainings" in err
    assert "over its budget 8" in err and "nothing was trained" in err and "Traceback" not in err
    cost = float(err.split("cost partner 'bank-a' epsilon ")[1].split()[0])
    assert cost > 8.0
    assert not out.exists() and not out.with_name("search.incomplete").exists()
    assert not (tmp_path / "consortium" / "ledgers").exists() and not list(machine_state.rglob("*.jsonl"))


@pytest.mark.parametrize("args, message", [
    (["--grid", "learning_rat=0.01,0.05"], "'learning_rat' is not a setting a cross-validation can search; "
                                           "valid keys: [federation] rounds"),
    (["--folds", "1"], "1 folds: a cross-validation needs at least 2"),
    (["--folds", "400"], "400 folds are more than partner 'bank-a's"),
])
def test_bad_input_is_one_clear_error_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         args: list[str], message: str) -> None:
    scenario = _scenario(tmp_path / "consortium", epsilon=20.0)
    out = tmp_path / "search"
    argv = ["cv", "--scenario", str(scenario), "--out", str(out), *args]
    assert main(argv if "--folds" in args else [*argv, "--folds", "2"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists() and not out.with_name("search.incomplete").exists()
    assert not (tmp_path / "consortium" / "ledgers").exists()
