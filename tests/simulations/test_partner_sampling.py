"""A real DP simulation where each round asks half the partners (`fraction_train`): a partner that
sits out a round releases nothing and is charged nothing; its ledger holds exactly the rounds it trained."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedcredit.privacy.ledger import PrivacyLedger
from fedcredit.server.app import RunSettings
from fedcredit.simulations.runner import simulate
from tests.conftest import SPEC, make_partner_frame, write_scenario
from tests.independent_accountant import pld_epsilon

pytestmark = pytest.mark.e2e

FRAMES = {"bank-a": (900, 1, 0.0), "insurer-b": (800, 2, 0.5), "platform-c": (700, 3, 1.0), "bank-d": (800, 4, 0.2)}


def test_a_partner_that_sits_out_is_charged_only_for_the_rounds_it_trained(tmp_path: Path) -> None:
    folder = tmp_path / "consortium"
    frames = {n: make_partner_frame(rows, seed, shift=shift) for n, (rows, seed, shift) in FRAMES.items()}
    scenario = write_scenario(folder, frames, dataset=SPEC, federation={"rounds": 4, "fraction_train": 0.5},
                              privacy={"mode": "sample", "epsilon": 20.0, "run_epsilon": 20.0, "delta": 1e-4,
                                       "noise_multiplier": 2.0, "stats_noise_multiplier": 4.0, "ledger_dir": "ledgers"})
    result = simulate(RunSettings(scenario=str(scenario), out_dir=str(tmp_path / "run")), yardsticks=False)
    summary = result.summary
    assert summary["fraction_train"] == 0.5 and summary["rounds"] == 4

    rounds = [json.loads(line) for line in (result.run_dir / "rounds.jsonl").read_text().splitlines()]
    asked = {r["round"]: r["asked_to_train"] for r in rounds if "asked_to_train" in r}
    assert sorted(asked) == [1, 2, 3, 4] and all(len(names) == 2 for names in asked.values())
    assert len({tuple(names) for names in asked.values()}) > 1          # not the same pair every round

    report = json.loads((result.run_dir / "privacy_report.json").read_text())
    for p in summary["partners"]:
        name = p["name"]
        trained_in = [rnd for rnd, names in asked.items() if name in names]
        assert p["rounds_trained"] == len(trained_in)
        ledger = PrivacyLedger.inspect(folder / "ledgers" / f"{name}.privacy-ledger.jsonl")
        dp_sgd_rounds = [e.round for e in ledger.entries() if e.mechanism == "dp-sgd"]
        assert dp_sgd_rounds == trained_in, name
        # the lifetime epsilon is what an independent accountant makes of exactly these releases
        stated = next(r for r in report["partners"] if r["name"] == name)
        assert stated["epsilon"] == pytest.approx(pld_epsilon(stated["releases"], 1e-4), abs=0.02)
        assert stated["recomputed_matches"] is True
    assert sum(p["rounds_trained"] for p in summary["partners"]) == 2 * 4
