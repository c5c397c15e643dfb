"""A partner's validation rows (the stopping rule's held-out loss): a fixed share of its training rows,
scored in the same reply as its update without DP, never released (nor charged) under record-level DP."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from fedcredit.clients.partner import open_partner_data, privacy_gate, train_round
from fedcredit.credit.model import build_model
from fedcredit.credit.protocol import TaskConfig
from fedcredit.credit.scenario import load_scenario
from tests.conftest import make_partner_frame, write_scenario


def _open(scenario_path: Path):
    scenario = load_scenario(scenario_path)
    task = TaskConfig(scenario.dataset, scenario.federation, run="run-v")
    return open_partner_data(scenario.partners[0], task, purpose="check"), task


def test_validation_rows_are_a_fixed_share_of_the_training_rows(tmp_path: Path) -> None:
    path = write_scenario(tmp_path / "c", {"bank-a": make_partner_frame(1200, 1)}, federation={"local_epochs": 1})
    data, task = _open(path)
    fit, held = data.validation_split(task.federation.validation_fraction)
    assert len(fit) + len(held) == len(data.train) and abs(len(held) - 0.15 * len(data.train)) < 50
    top = data.test_fraction + 0.15 * (1 - data.test_fraction)
    assert held.fractions.min() >= data.test_fraction > data.test.fractions.max()      # never a test row
    assert held.fractions.max() < top <= fit.fractions.min()
    again = data.validation_split(task.federation.validation_fraction)[1]
    assert np.array_equal(again.label, held.label) and again.features.equals(held.features)


def test_without_dp_a_reply_carries_the_received_models_validation_loss(tmp_path: Path) -> None:
    path = write_scenario(tmp_path / "c", {"bank-a": make_partner_frame(600, 1)},
                          federation={"local_epochs": 1, "batch_size": 64, "min_local_steps": 20})
    data, task = _open(path)
    task = replace(task, transform=_transform(data, task), evaluations=1)
    model = build_model("logistic", task.transform.n_features)
    state = model.state_dict()
    _, plain = train_round(data, task, state, server_round=1, evaluate=False)
    _, validated = train_round(data, task, state, server_round=1, evaluate=False, validate=True)
    assert plain.validation_loss is None and plain.rows_validation is None
    fit, held = data.validation_split(task.federation.validation_fraction)
    with torch.no_grad():    # the mean binary cross-entropy of the received model on those rows
        logits = model(torch.as_tensor(task.transform.transform(held.features), dtype=torch.float32))
        expected = float(torch.nn.functional.binary_cross_entropy_with_logits(
            logits, torch.as_tensor(held.label, dtype=torch.float32)))
    assert validated.rows_validation == len(held) and validated.validation_loss == pytest.approx(expected, rel=1e-4)
    # the validation rows are held out of training; a small partner trains at least min_local_steps steps
    batches = -(-len(fit) // 64)
    assert validated.steps == batches * max(1, -(-20 // batches)) and plain.steps >= 20


def _transform(data, task):
    from fedcredit.credit.features import FeatureTransform

    return FeatureTransform.fit_rows(data.train.features, task.spec)


def test_under_dp_validate_releases_and_charges_nothing_more(tmp_path: Path) -> None:
    policy = {"mode": "sample", "epsilon": 20.0, "run_epsilon": 20.0, "delta": 1e-4, "noise_multiplier": 2.0,
              "eval_noise_multiplier": 4.0, "stats_noise_multiplier": 4.0, "ledger_dir": "ledgers"}
    path = write_scenario(tmp_path / "c", {"bank-a": make_partner_frame(900, 1)}, privacy=policy)
    data, task = _open(path)
    task = replace(task, transform=_transform(data, task), weights={"bank-a": len(data.train)}, evaluations=2)
    state = build_model("logistic", task.transform.n_features).state_dict()
    entries = {}
    for run, validate in (("plain", False), ("validated", True)):
        _, rep = train_round(data, replace(task, run=run), state, server_round=1, evaluate=True, validate=validate)
        assert rep.validation_loss is None and rep.rows_validation is None and rep.train_loss is None
        gate = privacy_gate(data, replace(task, run=run), readonly=True)
        entries[run] = [(e.round, e.mechanism, tuple(e.rows), e.release.noise_multiplier, e.release.steps)
                        for e in gate.ledger.entries() if e.run == run]
    assert entries["validated"] == entries["plain"] and len(entries["plain"]) == 2    # dp-sgd + evaluation
