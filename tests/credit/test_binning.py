"""Federated WOE binning: label-split counts add up, WOE/IV by hand, the merge's constraints."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from fedcredit.credit.binning import fit_binning, labelled_bin_stats, merge, too_few_rows_per_bin
from fedcredit.credit.features import ColumnPlan, FeatureTransform
from fedcredit.credit.loading import prepare_table
from fedcredit.credit.schema import DatasetSpec
from fedcredit.credit.statistics import MISSING, OTHER, BinStats, RangeStats
from fedcredit.credit.woe import ColumnBins, woe_iv
from fedcredit.privacy.statistics import labelled_noise_sd, noisy_bins
from tests.conftest import SPEC, make_partner_frame

DATASET = DatasetSpec.from_dict({**SPEC, "levels": {"housing": ["rent", "own", "mortgage"]}})


def _tables(sizes=(900, 600, 300)):
    return [prepare_table(make_partner_frame(n, seed), DATASET, source=f"p{seed}") for seed, n in enumerate(sizes)]


def _plan(tables):
    ranges = RangeStats.combine(RangeStats.from_frame(t.features, t.label, DATASET) for t in tables)
    return ColumnPlan.fit(ranges, DATASET)


def test_summed_partner_counts_equal_the_pooled_counts_exactly() -> None:
    tables = _tables()
    plan = _plan(tables)
    summed = BinStats.combine(labelled_bin_stats(plan, t.features, t.label) for t in tables)
    pooled = labelled_bin_stats(plan, pd.concat([t.features for t in tables], ignore_index=True),
                                np.concatenate([t.label for t in tables]))
    assert set(summed.by_label) == set(pooled.by_label) == {"age", "income", "late", "housing"}
    for col in pooled.by_label:
        assert np.array_equal(summed.by_label[col], pooled.by_label[col]), col
        assert summed.by_label[col].shape[0] == 2
    n, bad = sum(len(t.label) for t in tables), sum(int(t.label.sum()) for t in tables)
    for col, cells in pooled.by_label.items():   # every row counted once per column, by its label
        assert cells.sum() == n and cells[1].sum() == bad, col
    income = pd.concat([t.features["income"] for t in tables])
    assert pooled.by_label["income"][:, -1].sum() == income.isna().sum() > 0   # the missing cell
    assert np.array_equal(pooled.histograms["income"], pooled.by_label["income"][:, :-1].sum(axis=0))


def test_woe_and_iv_match_a_hand_computation() -> None:
    good, bad = np.array([400.0, 300.0, 300.0]), np.array([50.0, 100.0, 250.0])
    woe, iv = woe_iv(good, bad)
    hand = [math.log((400 / 1000) / (50 / 400)), math.log((300 / 1000) / (100 / 400)),
            math.log((300 / 1000) / (250 / 400))]
    assert woe == pytest.approx(hand, abs=1e-12)
    assert hand[0] == pytest.approx(1.16315, abs=1e-5)    # ln(0.4 / 0.125)
    hand_iv = (0.4 - 0.125) * hand[0] + (0.3 - 0.25) * hand[1] + (0.3 - 0.625) * hand[2]
    assert iv == pytest.approx(hand_iv, abs=1e-12) and iv == pytest.approx(0.5675, abs=1e-4)
    bins = ColumnBins("x", "numeric", tuple(good), tuple(bad), (1.0, 2.0))
    assert bins.iv == pytest.approx(hand_iv) and list(bins.woe) == pytest.approx(hand)
    assert np.isfinite(woe_iv(np.array([10.0, 0.0]), np.array([0.0, 5.0]))[0]).all()   # empty cells: half a row


def _rates(good, bad, bounds):
    return [bad[a:b].sum() / (good[a:b].sum() + bad[a:b].sum()) for a, b in zip(bounds[:-1], bounds[1:])]


def test_monotonic_merge_keeps_the_trend_the_share_and_the_bin_count() -> None:
    good = np.array([90, 80, 95, 60, 70, 40, 55, 30, 20, 25], dtype=float)
    bad = np.array([10, 20, 5, 40, 30, 60, 45, 70, 80, 75], dtype=float)
    free = merge(good, bad, max_bins=10, min_count=0)
    assert free == list(range(11))                         # no constraint: every candidate kept (largest IV)
    up = merge(good, bad, max_bins=10, min_count=0, monotonic="ascending")
    rates = _rates(good, bad, up)
    assert rates == sorted(rates) and len(up) < 11
    down = merge(good, bad, max_bins=10, min_count=0, monotonic="descending")
    assert _rates(good, bad, down) == sorted(_rates(good, bad, down), reverse=True)
    assert merge(good, bad, max_bins=10, min_count=0, monotonic="auto") == up   # the rising trend has more IV
    few = merge(good, bad, max_bins=3, min_count=250, monotonic="ascending")
    assert len(few) - 1 <= 3
    assert all(good[a:b].sum() + bad[a:b].sum() >= 250 for a, b in zip(few[:-1], few[1:]))
    assert merge(good, bad, max_bins=4, min_count=5000) == [0, 10]   # infeasible share: one bin


def test_merge_under_noise_keeps_good_and_bad_above_it() -> None:
    good = np.array([500, 500, 500, 500], dtype=float)
    bad = np.array([5, 200, 20, 300], dtype=float)
    bounds = merge(good, bad, max_bins=4, min_count=0, noise_sd=10.0)   # each bin: ≥ 3 sd · √cells of bads
    assert all(bad[a:b].sum() >= 3 * 10.0 * math.sqrt(b - a) for a, b in zip(bounds[:-1], bounds[1:]))
    assert bounds != [0, 1, 2, 3, 4]


def test_fit_binning_numeric_missing_and_categorical_groups() -> None:
    tables = _tables()
    plan = _plan(tables)
    stats = BinStats.combine(labelled_bin_stats(plan, t.features, t.label) for t in tables)
    transform = FeatureTransform.fit(plan, stats, DATASET)
    bins = fit_binning(plan, stats, transform, max_bins=5, min_bin_share=0.05, monotonic={"late": "ascending"})
    late, income, housing = bins["late"], bins["income"], bins["housing"]
    assert income.has_missing and income.labels()[-1] == "missing" and income.n_bins <= 6
    rates = [b / (g + b) for g, b in zip(late.good[:-1] if late.has_missing else late.good,
                                         late.bad[:-1] if late.has_missing else late.bad)]
    assert rates == sorted(rates)
    n = sum(len(t.label) for t in tables)
    assert all(g + b >= 0.05 * n for g, b in zip(income.good, income.bad))
    assert sum(income.good) + sum(income.bad) == n
    levels = {lvl for group in housing.groups for lvl in group}
    assert levels == set(transform.categorical["housing"]) and OTHER in levels
    # the encoding: left-closed numeric bins, missing bin, unknown and missing levels
    s = income.splits[0]
    assert list(income.index(np.array([s - 1e-9, s, np.nan]))) == [0, 1, income.n_bins - 1]
    other = next(i for i, g in enumerate(housing.groups) if OTHER in g)
    missing = next((i for i, g in enumerate(housing.groups) if MISSING in g), other)
    assert list(housing.index(pd.Series(["rent", "castle", None]))) == [
        next(i for i, g in enumerate(housing.groups) if "rent" in g), other, missing]
    # IV ranks the signal: late and income carry more than a coin-flip housing effect
    assert late.iv > housing.iv and income.iv > 0.02


def test_private_release_split_by_label_costs_one_count_per_column() -> None:
    tables = _tables()
    plan = _plan(tables)
    exact = labelled_bin_stats(plan, tables[0].features, tables[0].label)
    noised, release, sd = noisy_bins(exact, 2.0, rng=np.random.default_rng(0))
    assert sd == pytest.approx(labelled_noise_sd(2.0, 4)) == pytest.approx(2.0 * math.sqrt(4))
    assert release.noise_multiplier == 2.0 and release.steps == 1 and release.sample_rate == 1.0
    for col, hist in noised.histograms.items():
        assert np.allclose(hist, noised.by_label[col][:, :-1].sum(axis=0))
    assert not np.array_equal(noised.by_label["age"], exact.by_label["age"])
    again = BinStats.from_dict(noised.to_dict())
    assert all(np.array_equal(again.by_label[c], noised.by_label[c]) for c in noised.by_label)


def test_too_few_rows_per_bin_names_the_fix() -> None:
    assert too_few_rows_per_bin(30_000, 100.0, min_bin_share=0.05, noise_multiplier=20) == ""
    refusal = too_few_rows_per_bin(2_000, 100.0, min_bin_share=0.05, noise_multiplier=20)
    assert "min_bin_share" in refusal and "stats_noise_multiplier" in refusal and "too few rows" in refusal
