"""Private round-0 statistics (case c22): at a consortium size the check accepts, the shared
transform scales every kept column to roughly unit variance; below it, one clear refusal."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fedcredit.credit.features import ColumnPlan, FeatureTransform
from fedcredit.credit.loading import load_table, split_train_test
from fedcredit.credit.scenario import load_scenario
from fedcredit.credit.statistics import PRIVATE_PER_DECADE, BinStats, RangeStats
from fedcredit.privacy.statistics import RELIABLE_ROWS_PER_SD, noisy_bins, noisy_range, summed_sd, too_few_rows

CASE = Path(__file__).resolve().parents[2].parent / "shared" / "cases" / "c22-dp-stats-small-consortium"


@pytest.fixture(scope="module")
def consortium():
    if not (CASE / "scenario.toml").is_file():
        pytest.fail(f"case missing: {CASE} (../shared/cases must sit beside the project)")
    scenario = load_scenario(CASE / "scenario.toml")
    tables = [split_train_test(load_table(p.data, scenario.dataset), test_fraction=0.25)[0]
              for p in scenario.partners]
    return scenario, tables


def _private_fit(scenario, partners, sigma: float, rng: np.random.Generator) -> tuple[FeatureTransform, float, float]:
    """The coordinator's fit from the partners' two noisy releases: (transform, rows, summed bins noise sd)."""
    spec = scenario.dataset
    ranges = [noisy_range(RangeStats.from_frame(f, y, spec, per_decade=PRIVATE_PER_DECADE, extremes=False), sigma,
                          rng=rng) for f, y in partners]
    plan = ColumnPlan.fit(RangeStats.combine(r[0] for r in ranges), spec, noise_sd=summed_sd([r[2] for r in ranges]))
    bins = [noisy_bins(plan.bin_stats(f), sigma, rng=rng) for f, _ in partners]
    transform = FeatureTransform.fit(plan, BinStats.combine(b[0] for b in bins), spec,
                                     noise_sd=summed_sd([b[2] for b in bins]))
    return transform, sum(len(y) for _, y in partners), summed_sd([b[2] for b in bins])


def test_private_scaling_is_reliable_where_the_check_admits_it(consortium) -> None:
    scenario, tables = consortium
    copies = 2   # each partner twice as large: 2,718 training rows, just above the check at noise 20
    partners = [(pd.concat([t.features] * copies, ignore_index=True), np.tile(t.label, copies)) for t in tables]
    pooled = pd.concat([t.features for t in tables], ignore_index=True)
    rng = np.random.default_rng(0)
    for _ in range(20):
        transform, rows, sd = _private_fit(scenario, partners, 20.0, rng)
        assert rows >= RELIABLE_ROWS_PER_SD * sd * 0.9                       # the check would admit it
        for col, rule in transform.numeric.items():                         # roughly unit variance, centred
            z = rule.apply(pooled[col].to_numpy(dtype=np.float64))
            assert abs(z.mean()) < 1.0 and abs(math.log(z.std())) < math.log(3), (col, z.mean(), z.std())
        # only the count columns (almost every value 0) may be dropped, each with its reason
        assert set(transform.dropped) <= {"late_90", "late_30_59"}, transform.dropped
        assert {"age", "income", "debt_ratio", "utilization"} <= set(transform.numeric)


def test_too_few_rows_for_the_noise_is_one_clear_refusal(consortium) -> None:
    scenario, tables = consortium
    rows = sum(len(t) for t in tables)
    sd = summed_sd([20.0 * math.sqrt(3 * len(scenario.dataset.numeric))] * 3)
    message = too_few_rows(rows, sd, noise_multiplier=20.0)
    assert f"it has about {rows:,}" in message and "stats_noise_multiplier" in message
    needed = int(message.split("needs about ")[1].split(" ")[0].replace(",", ""))
    assert needed > rows and too_few_rows(needed + 1, sd, noise_multiplier=20.0) == ""
