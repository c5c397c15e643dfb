"""The partner's DP path with real Opacus on real data (a Taiwan partner), no mocks."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fedcredit.clients.partner import (
    column_statistics,
    evaluation_report,
    open_partner_data,
    privacy_gate,
    train_round,
)
from fedcredit.credit.features import ColumnPlan, FeatureTransform
from fedcredit.credit.model import build_model
from fedcredit.credit.protocol import BINS, RANGE, TaskConfig
from fedcredit.credit.scenario import load_scenario
from fedcredit.privacy.accountant import Charge, compose_rows
from fedcredit.simulations.datasets import TAIWAN, write_taiwan_partners


@pytest.fixture(scope="module")
def taiwan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not TAIWAN.exists():
        pytest.fail(f"shared dataset missing: {TAIWAN}")
    folder = tmp_path_factory.mktemp("taiwan")
    return write_taiwan_partners(folder / "data", rounds=3,
                                 privacy={"mode": "sample", "epsilon": 4.0, "run_epsilon": 1.0, "delta": 1e-6,
                                          "ledger_dir": "ledgers"})


def _task(scenario, run: str) -> TaskConfig:
    return TaskConfig(scenario.dataset, scenario.federation, run=run, evaluations=1)


def _round_zero(data, task, scenario):
    """What the coordinator does with one partner's two releases."""
    first = column_statistics(data, task, RANGE)
    plan = ColumnPlan.fit(first.stats, scenario.dataset, noise_sd=first.stats_noise_sd)
    task = replace(task, plan=plan, weights={data.partner.name: first.rows_train})
    second = column_statistics(data, task, BINS)
    transform = FeatureTransform.fit(plan, second.stats, scenario.dataset, noise_sd=second.stats_noise_sd)
    return first, second, replace(task, transform=transform, plan=None)


def test_every_release_is_charged_before_it_leaves(taiwan: Path) -> None:
    scenario = load_scenario(taiwan)
    partner = scenario.partner("school-platform")
    data = open_partner_data(partner, _task(scenario, ""), purpose="check")
    task = replace(_task(scenario, "run-1"), evaluations=2)    # one in round 1, the final one

    first, second, task = _round_zero(data, task, scenario)
    assert first.stats_noise_sd > 0 and first.privacy["mode"] == "sample"
    assert first.stats.extremes == {}                       # exact extremes never leave under DP
    assert abs(first.rows_train - len(data.train)) < 6 * first.stats_noise_sd
    planned = first.privacy["planned"]
    assert planned["dp-sgd"] > 0.5 and planned["evaluation"] > 0.5 and planned["epsilon_run"] <= 1.0
    gate = privacy_gate(data, task)
    assert [e.mechanism for e in gate.ledger.entries()] == ["gaussian-statistics"] * 2

    model = build_model("logistic", task.transform.n_features)
    state, report = train_round(data, task, model.state_dict(), server_round=1, planned=planned, evaluate=True)
    public_rows = task.weights[partner.name]
    assert state is not None and report.steps == int(np.ceil(public_rows / 256))   # from the PUBLIC count
    assert report.train_loss is None                        # withheld under DP
    assert report.evaluation is not None and report.evaluation.private
    assert report.rows_test == pytest.approx(len(data.test), abs=6 * planned["evaluation"] * 6)
    assert not all(np.allclose(state[k], v) for k, v in model.state_dict().items())

    entries = privacy_gate(data, task).ledger.entries()
    assert [e.mechanism for e in entries] == ["gaussian-statistics"] * 2 + ["gaussian-evaluation", "dp-sgd"]
    assert entries[2].rows == data.test_rows and entries[3].rows == data.train_rows
    dp = entries[-1].release
    assert dp.sample_rate == pytest.approx(1 / report.steps) and dp.noise_multiplier == planned["dp-sgd"]
    assert report.privacy["epsilon"] == pytest.approx(compose_rows([e.charge for e in entries], 1e-6).epsilon)
    final = evaluation_report(data, task, state, round=3, planned=planned)
    assert final.evaluation is not None and len(final.privacy["releases"]) == 5   # the whole ledger, for the report


def test_a_second_run_continues_the_ledger_and_refuses_over_budget(taiwan: Path) -> None:
    scenario = load_scenario(taiwan)
    partner = scenario.partner("grad-insurer")
    tight = replace(partner, privacy=replace(partner.privacy, epsilon=0.8, run_epsilon=0.8, noise_multiplier=2.5))
    data = open_partner_data(tight, _task(scenario, ""), purpose="check")
    _, _, task = _round_zero(data, _task(scenario, "run-1"), scenario)
    state = build_model("logistic", task.transform.n_features).state_dict()
    spent = []
    for run in [f"run-{n}" for n in range(1, 9)]:
        new_state, report = train_round(data, replace(task, run=run), state, server_round=1, evaluate=False)
        spent.append(privacy_gate(data, task).statement().epsilon)
        if new_state is None:
            break
    assert spent[1] > spent[0]                    # run 2 started from run 1's spend, not from zero
    assert report.declined.startswith("declined:") and new_state is None
    assert spent[-1] == spent[-2]                 # a declined round spends nothing
    assert spent[-1] <= 0.8


def test_gate_is_built_only_for_a_dp_policy(taiwan: Path) -> None:
    scenario = load_scenario(taiwan)
    partner = scenario.partners[0]
    off = replace(partner, privacy=replace(partner.privacy, mode="off"))
    data = open_partner_data(off, TaskConfig(scenario.dataset, scenario.federation), purpose="check")
    assert privacy_gate(data, _task(scenario, "r")) is None
    report = column_statistics(data, _task(scenario, "r"), RANGE)
    assert report.rows_train == len(data.train) and report.rows_test == len(data.test)   # exact without DP


def test_charges_compose_as_the_report_recomputes(taiwan: Path) -> None:
    scenario = load_scenario(taiwan)
    data = open_partner_data(scenario.partner("uni-bank"), _task(scenario, ""), purpose="check")
    _round_zero(data, _task(scenario, "run-1"), scenario)
    entries = privacy_gate(data, _task(scenario, "run-1")).ledger.entries()
    assert compose_rows([Charge(e.release, e.rows) for e in entries], 1e-6).epsilon > 0


def test_a_cross_validation_fold_in_the_middle_is_charged_exactly(tmp_path: Path) -> None:
    """A `fedcredit cv` training holding fold 2 of 3 out: the statistics and DP-SGD are charged once to each
    part of the training rows around the fold, the evaluation to the fold; the fold's rows carry nothing else."""
    from fedcredit.credit.folds import fold_interval
    from tests.conftest import make_partner_frame, write_scenario

    path = write_scenario(tmp_path, {"bank": make_partner_frame(2000, 5)}, federation={"cv_folds": 3, "cv_fold": 1},
                          privacy={"mode": "sample", "epsilon": 20.0, "run_epsilon": 6.0, "delta": 1e-4,
                                   "stats_noise_multiplier": 4.0, "ledger_dir": "ledgers"})
    scenario = load_scenario(path)
    data = open_partner_data(scenario.partner("bank"), _task(scenario, ""), purpose="check")
    fold = fold_interval(0.25, 3, 1)
    parts = ((0.25, fold[0]), (fold[1], 1.0))
    assert data.test_rows == fold and data.train_parts == parts
    first, _, task = _round_zero(data, _task(scenario, "cv-s1-f2"), scenario)
    planned = first.privacy["planned"]
    state, report = train_round(data, task, build_model("logistic", task.transform.n_features).state_dict(),
                                server_round=1, planned=planned, evaluate=False)
    assert state is not None and not report.declined
    final = evaluation_report(data, task, state, round=1, planned=planned)
    assert final.evaluation is not None and final.evaluation.private
    entries = privacy_gate(data, task).ledger.entries()
    assert [(e.mechanism, e.rows) for e in entries] == [
        ("gaussian-statistics", parts[0]), ("gaussian-statistics", parts[1])] * 2 + [
        ("dp-sgd", parts[0]), ("dp-sgd", parts[1]), ("gaussian-evaluation", fold)]
    # one of 3 planned rounds trained: within the plan, the cap, and the worst cell one part, not both summed
    spent = compose_rows([e.charge for e in entries], 1e-4)
    part = compose_rows([e.charge for e in entries if e.rows == parts[0]], 1e-4)
    assert spent.epsilon <= planned["epsilon_run"] <= 6.0
    assert spent.epsilon == pytest.approx(max(part.epsilon, compose_rows(
        [e.charge for e in entries if e.rows == fold], 1e-4).epsilon))
