"""Private gradient histograms: one row moves a level's release by at most the stated sensitivity, the
noise has the stated sd, and a run of T trees of depth D is planned and charged as T × D Gaussian
mechanisms at sampling rate 1."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from fedcredit.credit.histograms import BinPlan, ColumnBins, gradient_histograms
from fedcredit.credit.scenario import PrivacyPolicy
from fedcredit.credit.trees import TreeSettings
from fedcredit.privacy.accountant import Charge, Release, compose, compose_rows
from fedcredit.privacy.anchor import DatasetAnchor
from fedcredit.privacy.gate import PrivacyGate
from fedcredit.privacy.histograms import (
    HESSIAN_SCALE,
    histogram_sensitivity,
    noise_sd,
    noisy_histograms,
    tree_run_shape,
)
from fedcredit.privacy.ledger import PrivacyLedger, ledger_path

FP = "ab" * 32
TRAIN, TEST = (0.25, 1.0), (0.0, 0.25)
PLAN = BinPlan((ColumnBins("a", "numeric", 0, (0.0, 1.0), indicator=1), ColumnBins("b", "categorical", 2, levels=3),
                ColumnBins("c", "numeric", 5, (-1.0,))))


def test_one_row_moves_a_level_by_at_most_the_sensitivity() -> None:
    rng = np.random.default_rng(0)
    n, nodes = 200, 4
    codes = np.column_stack([rng.integers(0, 4, n), rng.integers(0, 3, n), rng.integers(0, 2, n)])
    node = rng.integers(-1, nodes, n)
    g, h = rng.uniform(-1, 1, n), rng.uniform(0, 0.25, n)
    g[-1], h[-1], node[-1] = 1.0, 0.25, 2                           # the extreme row, in an open node
    delta = histogram_sensitivity(len(PLAN.columns))
    assert delta == pytest.approx(math.sqrt(3 * (1 + (HESSIAN_SCALE / 4) ** 2)))
    with_row = gradient_histograms(codes, node, g, h, nodes, PLAN)
    without = gradient_histograms(codes[:-1], node[:-1], g[:-1], h[:-1], nodes, PLAN)
    moved = np.sqrt(((with_row[0] - without[0]) ** 2).sum() + ((HESSIAN_SCALE * (with_row[1] - without[1])) ** 2).sum())
    assert moved == pytest.approx(delta)                            # tight for the extreme row
    grad, hess, release, sd = noisy_histograms(np.zeros((50, 400)), np.zeros((50, 400)), 3.0, 3,
                                               rng=np.random.default_rng(1))
    assert release == Release(3.0, 1.0, 1) and sd == pytest.approx(3.0 * delta)
    assert grad.std() == pytest.approx(sd, rel=0.02) and hess.std() == pytest.approx(sd / HESSIAN_SCALE, rel=0.02)
    assert noise_sd(3.0, 3) == (sd, sd / HESSIAN_SCALE)


def test_a_tree_run_is_planned_as_trees_times_levels_gaussian_mechanisms(tmp_path: Path) -> None:
    ledger = PrivacyLedger.open(ledger_path(tmp_path, "p"), FP, "p", anchor=DatasetAnchor(FP))
    gate = PrivacyGate(PrivacyPolicy(mode="sample", epsilon=6.0, run_epsilon=3.0, delta=1e-6), ledger, rows=10_000,
                       source="partner 'p'", run="r")
    shape = tree_run_shape(TreeSettings(trees=4, max_depth=2), rows=10_000, evaluations=1, train_rows=TRAIN,
                           test_rows=TEST)
    assert (shape.sample_rate, shape.steps_per_round, shape.rounds, shape.unit) == (1.0, 2, 4, "tree")
    plan = gate.plan_run(shape)
    assert plan.train and plan.epsilon_run <= 3.0
    stats = [Charge(Release(plan.stats_noise, 1.0, 1), TRAIN)] * 2
    levels = [Charge(Release(plan.train_noise, 1.0, 1), TRAIN)] * 8
    evals = [Charge(Release(plan.eval_noise, 1.0, 1), TEST)]
    assert compose_rows(stats + levels + evals, 1e-6).epsilon == pytest.approx(plan.epsilon_run, abs=0.02)
    for tree in range(1, 5):                                        # carried out a level at a time, as a partner does
        assert gate.round_plan(shape, server_round=tree, noise=plan.train_noise).train
        for _ in range(2):
            after, reason = gate.admit(Charge(Release(plan.train_noise, 1.0, 1), TRAIN))
            assert after is not None, reason
            gate.charge(Release(plan.train_noise, 1.0, 1), mechanism="gaussian-histogram", round=tree, rows=TRAIN)
    assert gate.run_spent().epsilon == pytest.approx(compose([r.release for r in levels], 1e-6).epsilon, abs=0.02)
    fixed = PrivacyGate(PrivacyPolicy(mode="sample", epsilon=1.0, delta=1e-6, noise_multiplier=0.6), ledger,
                        rows=10_000, source="partner 'p'", run="s")
    with pytest.raises(Exception, match="in a single tree"):
        fixed.check_policy(shape)
