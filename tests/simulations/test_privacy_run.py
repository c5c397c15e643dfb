"""Real simulations with record-level DP: budgets enforced, ledgers continued, reports written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from privacy.accountant import Release, compose
from privacy.ledger import PrivacyLedger
from server.app import RunSettings
from simulations.runner import simulate
from tests.conftest import SPEC, make_partner_frame, write_scenario

pytestmark = pytest.mark.e2e

FRAMES = {"bank-a": (1500, 1, 0.0), "insurer-b": (900, 2, 0.5), "platform-c": (500, 3, 1.0)}


def _scenario(folder: Path, epsilon: float, platform_epsilon: float) -> Path:
    frames = {n: make_partner_frame(rows, seed, shift=shift) for n, (rows, seed, shift) in FRAMES.items()}
    return write_scenario(folder, frames, dataset=SPEC, partner_fields={"platform-c": {"privacy": {"epsilon": platform_epsilon}}},
                          privacy={"mode": "sample", "epsilon": epsilon, "delta": 1e-4, "noise_multiplier": 3.0,
                                   "ledger_dir": "ledgers"})


def _ledger(folder: Path, partner: str) -> PrivacyLedger:
    return PrivacyLedger.inspect(folder / "ledgers" / f"{partner}.privacy-ledger.jsonl")


def test_budgets_are_enforced_and_the_ledger_outlives_the_run(tmp_path: Path) -> None:
    folder = tmp_path / "consortium"
    first = simulate(RunSettings(scenario=str(_scenario(folder, 10.0, 2.5)), out_dir=str(tmp_path / "run1")))
    summary = first.summary
    by_name = {p["name"]: p for p in summary["partners"]}
    for p in summary["partners"]:
        assert {"epsilon", "delta", "budget", "status"} <= p["privacy"].keys()
        assert p["privacy"]["epsilon"] <= p["privacy"]["budget"]
    assert by_name["bank-a"]["privacy"]["status"] == "ok"
    platform = by_name["platform-c"]["privacy"]
    assert platform["status"] == "stopped" and platform["stopped_round"] == 3
    assert "over the budget 2.5" in platform["stopped_reason"]
    assert summary["rounds"] == 3 and summary["ended_early"] is None

    # the report lists what anyone needs to recompute epsilon, and it matches
    report = json.loads((first.run_dir / "privacy_report.json").read_text())
    bank_rows = [r for r in report["rounds"] if r["partner"] == "bank-a"]
    assert [r["round"] for r in bank_rows] == [0, 1, 2, 3]
    releases = [Release(r["noise_multiplier"], r["sample_rate"], r["steps"]) for r in bank_rows]
    assert compose(releases, 1e-4).epsilon == pytest.approx(bank_rows[-1]["epsilon"], abs=1e-9)
    assert by_name["bank-a"]["privacy"]["epsilon"] == pytest.approx(bank_rows[-1]["epsilon"], abs=1e-9)
    html = (first.run_dir / "privacy_report.html").read_text()
    assert "data:image/png;base64," in html and "platform-c" in html and "declined" in html
    audit = summary["membership_audit"]["results"]
    assert any("DP-SGD" in r["model"] for r in audit) and all(0 <= r["attack_auc"] <= 1 for r in audit)

    bank_after_run1 = _ledger(folder, "bank-a").spent(1e-4).epsilon
    # Run 2: every budget lowered to 1.8; only bank-a can still afford its statistics, none a round.
    second = simulate(RunSettings(scenario=str(_scenario(folder, 1.8, 1.8)), out_dir=str(tmp_path / "run2")))
    s2 = {p["name"]: p["privacy"] for p in second.summary["partners"]}
    assert second.summary["ended_early"] == "no partner can train from round 1"
    assert second.summary["rounds"] == 0
    assert s2["insurer-b"]["stopped_round"] == 0 and s2["platform-c"]["stopped_round"] == 0
    assert s2["bank-a"]["stopped_round"] == 1
    ledger = _ledger(folder, "bank-a")
    assert [e.run for e in ledger.entries()].count("run2") == 1          # its statistics, nothing more
    assert bank_after_run1 < ledger.spent(1e-4).epsilon <= 1.8
    assert s2["bank-a"]["epsilon"] == pytest.approx(ledger.spent(1e-4).epsilon, abs=1e-9)
