from __future__ import annotations

from pathlib import Path

import pytest

from credit.errors import InputError
from credit.scenario import PrivacyPolicy
from privacy.accountant import Release, compose
from privacy.gate import PrivacyGate
from privacy.ledger import PrivacyLedger, ledger_path


def _gate(tmp_path: Path, rows: int = 10_000, **policy) -> PrivacyGate:
    ledger = PrivacyLedger.open(ledger_path(tmp_path, "p"), "ef" * 32, "p")
    return PrivacyGate(PrivacyPolicy(mode="sample", **policy), ledger, rows=rows, source="partner 'p'")


def test_calibrated_noise_fits_the_planned_rounds(tmp_path: Path) -> None:
    gate = _gate(tmp_path, epsilon=1.0)
    plan = gate.plan(batch_size=256, local_epochs=1, rounds_left=10)
    assert plan.train and plan.sample_rate == pytest.approx(1 / 40) and plan.steps == 40
    ten_rounds = compose([Release(plan.noise_multiplier, plan.sample_rate, 400)], 1e-6).epsilon
    assert 0.95 < ten_rounds <= 1.0
    for rnd in range(1, 11):  # spending exactly as planned never crosses the budget
        p = gate.plan(batch_size=256, local_epochs=1, rounds_left=11 - rnd, calibrated=plan.noise_multiplier)
        assert p.train, p.reason
        gate.charge(Release(p.noise_multiplier, p.sample_rate, p.steps), mechanism="dp-sgd", run="r", round=rnd)
    assert gate.statement().epsilon <= 1.0
    extra = gate.plan(batch_size=256, local_epochs=1, rounds_left=1, calibrated=plan.noise_multiplier)
    assert not extra.train and "over the budget 1" in extra.reason


def test_a_round_over_budget_is_declined_with_the_numbers(tmp_path: Path) -> None:
    gate = _gate(tmp_path, epsilon=1.0, noise_multiplier=1.0)
    gate.charge(Release(1.0, 0.05, 300), mechanism="dp-sgd", run="old", round=1)   # a past run
    plan = gate.plan(batch_size=256, local_epochs=1, rounds_left=5)
    assert not plan.train
    assert "would bring epsilon to" in plan.reason and "spent" in plan.reason


def test_bad_policies_are_refused_before_training(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="field 'delta'.*below 1/rows"):
        _gate(tmp_path, rows=1000, delta=1e-3)
    gate = _gate(tmp_path, epsilon=0.1, noise_multiplier=0.5)
    with pytest.raises(InputError, match="field 'noise_multiplier'.*single round"):
        gate.check_policy(batch_size=256, local_epochs=1)


@pytest.mark.parametrize("raw, field", [({"epsilon": 0}, "epsilon"), ({"epsilon": -1}, "epsilon"),
                                        ({"delta": 0.5}, "delta"), ({"mode": "strong"}, "mode"),
                                        ({"noise_multiplier": 0}, "noise_multiplier")])
def test_policy_validation(raw: dict, field: str) -> None:
    with pytest.raises(InputError, match=f"field '{field}'"):
        PrivacyPolicy.from_dict(raw, source="[privacy]")
