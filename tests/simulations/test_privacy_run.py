"""Real simulations with record-level DP: budgets enforced, ledgers continued, reports written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedcredit.cli.main import main
from fedcredit.credit.errors import InputError
from fedcredit.privacy.ledger import PrivacyLedger
from fedcredit.server.app import RunSettings
from fedcredit.simulations.runner import simulate
from tests.conftest import SPEC, make_partner_frame, write_scenario
from tests.independent_accountant import pld_epsilon
from tests.reports.checks import assert_model_report

pytestmark = pytest.mark.e2e

FRAMES = {"bank-a": (1500, 1, 0.0), "insurer-b": (900, 2, 0.5), "platform-c": (500, 3, 1.0)}


def _scenario(folder: Path, epsilon: float, platform_epsilon: float) -> Path:
    frames = {n: make_partner_frame(rows, seed, shift=shift) for n, (rows, seed, shift) in FRAMES.items()}
    platform = {"epsilon": platform_epsilon, "run_epsilon": platform_epsilon}
    return write_scenario(folder, frames, dataset=SPEC, partner_fields={"platform-c": {"privacy": platform}},
                          privacy={"mode": "sample", "epsilon": epsilon, "run_epsilon": epsilon, "delta": 1e-4,
                                   "noise_multiplier": 3.0, "stats_noise_multiplier": 4.0, "ledger_dir": "ledgers"})


def _ledger(folder: Path, partner: str) -> PrivacyLedger:
    return PrivacyLedger.inspect(folder / "ledgers" / f"{partner}.privacy-ledger.jsonl")


def test_plan_releases_nothing_and_shows_each_partners_cost(tmp_path: Path, capsys) -> None:
    scenario = _scenario(tmp_path / "consortium", 10.0, 2.8)
    assert main(["plan", "--scenario", str(scenario), "--json", str(tmp_path / "plan.json")]) == 0
    out = capsys.readouterr().out
    assert "nothing is released" in out and "platform-c" in out and "only 2 of 3 rounds fit" in out
    plan = json.loads((tmp_path / "plan.json").read_text())
    bank = next(p for p in plan["partners"] if p["partner"] == "bank-a")
    assert bank["epsilon_now"] == 0 and 0 < bank["epsilon_run"] <= bank["run_cap"] and bank["train"] is True
    assert bank["noise_multiplier"]["dp_sgd"] == 3.0 and bank["noise_sd"]["statistics_range_count"] > 0
    assert not (tmp_path / "consortium" / "ledgers").exists()          # no ledger, no anchor entry written


def test_budgets_are_enforced_and_the_ledger_outlives_the_run(tmp_path: Path) -> None:
    folder = tmp_path / "consortium"
    first = simulate(RunSettings(scenario=str(_scenario(folder, 10.0, 2.8)), out_dir=str(tmp_path / "run1")))
    summary = first.summary
    by_name = {p["name"]: p for p in summary["partners"]}
    for p in summary["partners"]:
        assert {"epsilon", "delta", "budget", "status"} <= p["privacy"].keys()
        assert p["privacy"]["epsilon"] <= p["privacy"]["budget"]
    assert by_name["bank-a"]["privacy"]["status"] == "ok"
    platform = by_name["platform-c"]["privacy"]
    assert platform["status"] == "stopped" and platform["stopped_round"] == 3
    assert "over the budget 2.8" in platform["stopped_reason"]
    assert summary["rounds"] == 3 and summary["ended_early"] is None
    for p in summary["partners"]:   # the alternative under each partner's own policy, and the gain over it
        gain = p["gain_private"]
        assert 0.5 < p["local_private"]["auc"] < 1 and gain["low"] <= gain["auc"] <= gain["high"]

    # the model-risk report: from the noised, coarse evaluation histograms the partners released
    assert_model_report(first.run_dir, summary)
    model_report = json.loads((first.run_dir / "model_report.json").read_text())
    assert model_report["discrimination"]["pooled"]["noised"] and summary["calibration"]["noised"]

    # the report lists every release; an independent accountant recomputes each lifetime epsilon from it
    report = json.loads((first.run_dir / "privacy_report.json").read_text())
    for partner in report["partners"]:
        stated, releases = partner["epsilon"], partner["releases"]
        assert {r["mechanism"] for r in releases} == {"gaussian-statistics", "dp-sgd", "gaussian-evaluation"}
        independent = pld_epsilon(releases, 1e-4)
        assert stated >= independent - 0.011 and stated == pytest.approx(independent, abs=0.02), partner["name"]
        assert partner["recomputed_matches"] is True
    bank_rows = [r for r in report["rounds"] if r["partner"] == "bank-a"]
    assert [(r["round"], r["mechanism"]) for r in bank_rows] == [
        (0, "gaussian-statistics"), (0, "gaussian-statistics"), (1, "dp-sgd"), (2, "dp-sgd"), (3, "dp-sgd"),
        (3, "gaussian-evaluation")]
    html = (first.run_dir / "privacy_report.html").read_text()
    assert "data:image/png;base64," in html and "platform-c" in html and "declined" in html
    assert "Release inventory" in html and "Recomputed from the listed releases" in html
    audit = summary["membership_audit"]["results"]
    assert any("DP-SGD" in r["model"] for r in audit) and all(0 <= r["attack_auc"] <= 1 for r in audit)

    bank_after_run1 = _ledger(folder, "bank-a").spent(1e-4).epsilon
    # Run 2: every budget lowered to 1.6: no partner can afford its statistics and a round, so none spends anything —
    # refused before a release, with each partner's reason.
    with pytest.raises(InputError, match="no partner can take part in this run") as refused:
        simulate(RunSettings(scenario=str(_scenario(folder, 1.6, 1.6)), out_dir=str(tmp_path / "run2")))
    assert "bank-a: declined" in str(refused.value) and "platform-c: declined" in str(refused.value)
    assert _ledger(folder, "bank-a").spent(1e-4).epsilon == pytest.approx(bank_after_run1)
    assert not (tmp_path / "run2").exists()


def test_a_partner_without_dp_beside_partners_with_dp(tmp_path: Path) -> None:
    """Mixed policies: the exact partner's statistics (fine grid, extremes) join the noised ones (coarse
    grid) — no error; only the DP partners have ledgers, and the exact one's rows train too."""
    frames = {n: make_partner_frame(rows, seed, shift=shift) for n, (rows, seed, shift) in FRAMES.items()}
    scenario = write_scenario(tmp_path / "mixed", frames, dataset=SPEC, federation={"rounds": 1},
                              partner_fields={"platform-c": {"privacy": {"mode": "off"}}},
                              privacy={"mode": "sample", "epsilon": 10.0, "run_epsilon": 10.0, "delta": 1e-4,
                                       "stats_noise_multiplier": 4.0, "ledger_dir": "ledgers"})
    summary = simulate(RunSettings(scenario=str(scenario), out_dir=str(tmp_path / "run"))).summary
    modes = {p["name"]: p["privacy"]["mode"] for p in summary["partners"]}
    assert modes == {"bank-a": "sample", "insurer-b": "sample", "platform-c": "off"}
    assert summary["rounds"] == 1 and 0.5 < summary["federated"]["auc"] <= 1
    assert {p["name"]: p["rounds_trained"] for p in summary["partners"]} == {n: 1 for n in FRAMES}
    for name in ("bank-a", "insurer-b"):
        mechanisms = [e.mechanism for e in _ledger(tmp_path / "mixed", name).entries()]
        assert mechanisms == ["gaussian-statistics"] * 2 + ["dp-sgd", "gaussian-evaluation"]
    assert not (tmp_path / "mixed" / "ledgers" / "platform-c.privacy-ledger.jsonl").exists()
