from __future__ import annotations

from pathlib import Path

import pytest

from fedcredit.credit.errors import InputError
from fedcredit.credit.scenario import PrivacyPolicy
from fedcredit.privacy.accountant import Charge, Release, compose, compose_rows
from fedcredit.privacy.anchor import DatasetAnchor
from fedcredit.privacy.gate import PrivacyGate, RunShape
from fedcredit.privacy.ledger import PrivacyLedger, ledger_path

FP = "ef" * 32
TRAIN, TEST = (0.25, 1.0), (0.0, 0.25)


def _gate(tmp_path: Path, rows: int = 10_000, run: str = "r", **policy) -> PrivacyGate:
    ledger = PrivacyLedger.open(ledger_path(tmp_path, "p"), FP, "p", anchor=DatasetAnchor(FP))
    return PrivacyGate(PrivacyPolicy(mode="sample", **policy), ledger, rows=rows, source="partner 'p'", run=run)


def _shape(rounds: int = 10, evaluations: int = 1, rows: int = 10_000) -> RunShape:
    return RunShape(rounds, 256, 1, rows, evaluations, TRAIN, TEST)


def _carry_out(gate: PrivacyGate, shape: RunShape) -> None:
    """Spend a run exactly as planned: statistics, every round, every evaluation."""
    plan = gate.plan_run(shape)
    assert plan.train, plan.reason
    for _ in range(shape.stats_releases):
        gate.charge(Release(plan.stats_noise, 1.0, 1), mechanism="gaussian-statistics", round=0, rows=TRAIN)
    for rnd in range(1, shape.rounds + 1):
        p = gate.round_plan(shape, server_round=rnd, noise=plan.train_noise)
        assert p.train, p.reason
        gate.charge(Release(p.noise_multiplier, p.sample_rate, p.steps), mechanism="dp-sgd", round=rnd, rows=TRAIN)
    for _ in range(shape.evaluations):
        gate.charge(Release(plan.eval_noise, 1.0, 1), mechanism="gaussian-evaluation", round=shape.rounds, rows=TEST)


def test_the_planned_run_fits_the_per_run_cap_and_is_carried_out(tmp_path: Path) -> None:
    gate = _gate(tmp_path, epsilon=4.0, run_epsilon=1.0)
    plan = gate.plan_run(_shape())
    assert plan.train and plan.sample_rate == pytest.approx(1 / 40) and plan.steps_per_round == 40
    assert 0.95 < plan.epsilon_run <= 1.0 and plan.after.epsilon == pytest.approx(plan.epsilon_run)
    _carry_out(gate, _shape())
    assert 0.95 < gate.run_spent().epsilon <= 1.0 and gate.statement().epsilon <= 1.0


def test_the_default_run_cap_is_a_quarter_of_the_lifetime_budget(tmp_path: Path) -> None:
    gate = _gate(tmp_path, epsilon=2.0)
    assert gate.policy.run_cap == 0.5
    assert gate.plan_run(_shape()).epsilon_run <= 0.5


def test_held_out_rows_have_their_own_cell(tmp_path: Path) -> None:
    """Evaluations on held-out rows compose in parallel with training: the lifetime epsilon is the
    larger cell, not the sum."""
    gate = _gate(tmp_path, epsilon=4.0, run_epsilon=1.0)
    _carry_out(gate, _shape(evaluations=2))
    entries = gate.ledger.entries()
    train = compose([e.release for e in entries if e.rows == TRAIN], 1e-6).epsilon
    test = compose([e.release for e in entries if e.rows == TEST], 1e-6).epsilon
    assert 0.9 < test <= 1.0 and 0.9 < train <= 1.0
    assert gate.statement().epsilon == pytest.approx(max(train, test))


def test_runs_until_the_lifetime_budget_is_spent_then_declines_with_a_warning_first(tmp_path: Path) -> None:
    warned = []
    for n in range(1, 8):
        gate = _gate(tmp_path, run=f"run-{n}", epsilon=2.0, run_epsilon=1.0)
        plan = gate.plan_run(_shape())
        if not plan.train:
            break
        warned.append(bool(plan.warnings))
        _carry_out(gate, _shape())
        assert gate.statement().epsilon <= 2.0
    assert not plan.train and "lifetime budget 2" in plan.reason
    assert warned[0] is False and warned[-1] is True     # warned before the run that left too little


def test_a_release_over_the_cap_or_the_budget_is_declined_with_the_numbers(tmp_path: Path) -> None:
    gate = _gate(tmp_path, epsilon=1.0, run_epsilon=0.5)
    gate.charge(Release(1.0, 0.05, 300), mechanism="dp-sgd", round=1, rows=TRAIN)   # this run
    after, reason = gate.admit(Charge(Release(1.0, 0.05, 300), TRAIN))
    assert after is None and "over the budget 1" in reason or "per-run cap 0.5" in reason
    other = _gate(tmp_path, run="next", epsilon=1.0, run_epsilon=0.5)
    after, reason = other.admit(Charge(Release(0.8, 0.05, 300), TRAIN))
    assert after is None and "would bring epsilon to" in reason and "spent" in reason


def test_the_statistics_alone_over_the_cap_say_so(tmp_path: Path) -> None:
    plan = _gate(tmp_path, epsilon=3.0, run_epsilon=0.5, stats_noise_multiplier=3.0).plan_run(_shape())
    assert not plan.train and "statistics releases of round 0 cost" in plan.reason


def test_bad_policies_are_refused_before_training(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="field 'delta'.*below 1/rows"):
        _gate(tmp_path, rows=1000, delta=1e-3)
    gate = _gate(tmp_path, epsilon=0.1, noise_multiplier=0.5)
    with pytest.raises(InputError, match="field 'noise_multiplier'.*single round"):
        gate.check_policy(_shape())


@pytest.mark.parametrize("raw, field", [({"epsilon": 0}, "epsilon"), ({"epsilon": -1}, "epsilon"),
                                        ({"delta": 0.5}, "delta"), ({"mode": "strong"}, "mode"),
                                        ({"noise_multiplier": 0}, "noise_multiplier"),
                                        ({"epsilon": 1.0, "run_epsilon": 2.0}, "run_epsilon"),
                                        ({"eval_noise_multiplier": -1}, "eval_noise_multiplier")])
def test_policy_validation(raw: dict, field: str) -> None:
    with pytest.raises(InputError, match=f"field '{field}'"):
        PrivacyPolicy.from_dict(raw, source="[privacy]")


def test_compose_rows_is_the_worst_cell(tmp_path: Path) -> None:
    charges = [Charge(Release(1.0, 0.02, 200), TRAIN), Charge(Release(2.0, 1.0, 3), TEST),
               Charge(Release(20.0, 1.0, 1))]
    both = compose([Release(1.0, 0.02, 200), Release(20.0, 1.0, 1)], 1e-6).epsilon
    assert compose_rows(charges, 1e-6).epsilon == pytest.approx(max(
        both, compose([Release(2.0, 1.0, 3), Release(20.0, 1.0, 1)], 1e-6).epsilon))


def test_a_cross_validation_training_charges_each_part_of_its_rows_and_its_fold_apart(tmp_path: Path) -> None:
    """A fold held out of the middle of the training rows: each training release is charged once to each part
    (every row read once), the evaluation to the fold alone; the run fits its cap in every cell."""
    parts, fold = ((0.25, 0.5), (0.75, 1.0)), (0.5, 0.75)
    gate = _gate(tmp_path, epsilon=4.0, run_epsilon=1.0)
    shape = RunShape(10, 256, 1, 10_000, 1, TRAIN, fold, train_parts=parts)
    plan = gate.plan_run(shape)
    assert plan.train and 0.95 < plan.epsilon_run <= 1.0
    by_rows: dict[tuple[float, float], list[Release]] = {}
    for c in plan.charges:
        by_rows.setdefault(c.rows, []).append(c.release)
    assert set(by_rows) == {*parts, fold}
    assert by_rows[parts[0]] == by_rows[parts[1]]                      # the same releases on both parts
    assert [r.noise_multiplier for r in by_rows[fold]] == [plan.eval_noise]
    after, reason = gate.admit(shape.train_charges(Release(plan.train_noise, plan.sample_rate, 40)))
    assert reason == "" and after is not None
    # the plan of one part alone: same noise, same epsilon (parallel composition)
    single = _gate(tmp_path / "single", epsilon=4.0, run_epsilon=1.0).plan_run(
        RunShape(10, 256, 1, 10_000, 1, parts[1], fold))
    assert single.train_noise == pytest.approx(plan.train_noise) and single.epsilon_run == pytest.approx(plan.epsilon_run)
