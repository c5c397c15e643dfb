"""The partner's DP path with real Opacus on real data (a Taiwan partner), no mocks."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from clients.partner import (
    column_statistics,
    open_partner_data,
    privacy_gate,
    train_round,
)
from credit.features import FeatureTransform
from credit.model import build_model
from credit.protocol import TaskConfig
from credit.scenario import load_scenario
from privacy.accountant import Release, compose
from privacy.ledger import PrivacyLedger, ledger_path
from simulations.datasets import TAIWAN, write_taiwan_partners


@pytest.fixture(scope="module")
def taiwan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not TAIWAN.exists():
        pytest.fail(f"shared dataset missing: {TAIWAN}")
    folder = tmp_path_factory.mktemp("taiwan")
    return write_taiwan_partners(folder / "data", rounds=3,
                                 privacy={"mode": "sample", "epsilon": 1.0, "delta": 1e-6, "ledger_dir": "ledgers"})


def _task(scenario, run: str) -> TaskConfig:
    return TaskConfig(scenario.dataset, scenario.federation, run=run)


def _ledger(scenario, data) -> PrivacyLedger:
    folder = Path(data.partner.privacy.ledger_dir)
    return PrivacyLedger.open(ledger_path(folder, data.partner.name), data.fingerprint, data.partner.name)


def test_dp_sgd_round_is_charged_before_the_update_leaves(taiwan: Path) -> None:
    scenario = load_scenario(taiwan)
    partner = scenario.partner("school-platform")
    data = open_partner_data(partner, TaskConfig(scenario.dataset, scenario.federation), purpose="check")
    task = _task(scenario, "run-1")

    stats = column_statistics(data, task)
    assert stats.stats_noise_sd > 0 and stats.privacy["mode"] == "sample"
    assert abs(stats.rows_train - len(data.train)) < 10 * stats.stats_noise_sd
    releases = _ledger(scenario, data).releases()
    assert releases == [Release(20.0, 1.0, 1)]

    transform = FeatureTransform.fit(stats.stats, scenario.dataset, min_count=3 * stats.stats_noise_sd)
    task = replace(task, transform=transform)
    model = build_model("logistic", transform.n_features)
    state, report = train_round(data, task, model.state_dict(), server_round=1)
    assert state is not None and report.steps == int(np.ceil(len(data.train) / 256))
    assert not all(np.allclose(state[k], v) for k, v in model.state_dict().items())

    ledger = _ledger(scenario, data)
    entries = ledger.entries()
    assert [e.mechanism for e in entries] == ["gaussian-statistics", "dp-sgd"]
    dp = entries[-1].release
    assert dp.sample_rate == pytest.approx(1 / report.steps) and dp.steps == report.steps
    # calibrated for 3 planned rounds within the budget of 1.0
    assert compose([*ledger.releases(), Release(dp.noise_multiplier, dp.sample_rate, 2 * dp.steps)], 1e-6).epsilon <= 1.0
    assert report.privacy["epsilon"] == pytest.approx(ledger.spent(1e-6).epsilon)
    assert report.privacy["budget"] == 1.0 and report.privacy["remaining"] > 0


def test_a_second_run_continues_the_ledger_and_refuses_over_budget(taiwan: Path) -> None:
    scenario = load_scenario(taiwan)
    partner = scenario.partner("grad-insurer")
    tight = replace(partner, privacy=replace(partner.privacy, epsilon=0.6, noise_multiplier=2.5))
    data = open_partner_data(tight, TaskConfig(scenario.dataset, scenario.federation), purpose="check")
    task = _task(scenario, "run-1")
    stats = column_statistics(data, task)
    task = replace(task, transform=FeatureTransform.fit(stats.stats, scenario.dataset))
    state = build_model("logistic", task.transform.n_features).state_dict()
    spent = []
    for run in ("run-1", "run-2", "run-3"):
        new_state, report = train_round(data, replace(task, run=run), state, server_round=1)
        spent.append(_ledger(scenario, data).spent(1e-6).epsilon)
        if new_state is None:
            break
    assert spent[1] > spent[0]                    # run 2 started from run 1's spend, not from zero
    assert report.declined.startswith("declined:") and new_state is None
    assert spent[-1] == spent[-2]                 # a declined round spends nothing
    assert spent[-1] <= 0.6
    assert [e.run for e in _ledger(scenario, data).entries()] == ["run-1", "run-1", "run-2"]


def test_gate_is_built_only_for_a_dp_policy(taiwan: Path) -> None:
    scenario = load_scenario(taiwan)
    partner = scenario.partners[0]
    off = replace(partner, privacy=replace(partner.privacy, mode="off"))
    data = open_partner_data(off, TaskConfig(scenario.dataset, scenario.federation), purpose="check")
    assert privacy_gate(data, _task(scenario, "r")) is None
