from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedcredit.credit.features import MISSING, OTHER, ColumnPlan, FeatureTransform
from fedcredit.credit.loading import prepare_table
from fedcredit.credit.schema import DatasetSpec
from fedcredit.credit.statistics import PRIVATE_PER_DECADE, BinStats, RangeStats
from tests.conftest import SPEC, make_partner_frame

spec = DatasetSpec.from_dict(SPEC)


def _tables():
    return [prepare_table(make_partner_frame(n, s, shift=sh), spec, source="t")
            for n, s, sh in ((3000, 1, 0.0), (1200, 2, 0.7), (400, 3, 1.5))]


def _federated_fit(tables) -> FeatureTransform:
    """What the coordinator does: sum release 1, plan, sum release 2, fit."""
    plan = ColumnPlan.fit(RangeStats.combine(RangeStats.from_frame(t.features, t.label, spec) for t in tables), spec)
    return FeatureTransform.fit(plan, BinStats.combine(plan.bin_stats(t.features) for t in tables), spec)


def test_partner_statistics_add_up_to_the_pooled_statistics() -> None:
    tables = _tables()
    features = pd.concat([t.features for t in tables], ignore_index=True)
    label = np.concatenate([t.label for t in tables])
    summed = RangeStats.combine(RangeStats.from_frame(t.features, t.label, spec) for t in tables)
    pooled = RangeStats.from_frame(features, label, spec)
    assert summed.rows == pooled.rows == 4600 and summed.bad == pooled.bad
    assert summed.missing == pooled.missing and summed.levels == pooled.levels
    assert summed.extremes == pooled.extremes
    for col in spec.numeric:
        np.testing.assert_array_equal(summed.magnitudes[col], pooled.magnitudes[col])
    assert _federated_fit(tables) == FeatureTransform.fit_rows(features, spec)


def test_a_consortium_mixing_exact_and_private_partners_sums_on_the_coarse_grid() -> None:
    """A partner without DP bins on the fine grid, one with DP on the coarse grid: the sum coarsens
    the fine counts exactly, and a window is not clipped to extremes only some partners sent."""
    tables = _tables()
    exact_a, exact_b = (RangeStats.from_frame(t.features, t.label, spec) for t in tables[:2])
    private = RangeStats.from_frame(tables[2].features, tables[2].label, spec, per_decade=PRIVATE_PER_DECADE,
                                    extremes=False)
    coarse_b = RangeStats.from_frame(tables[1].features, tables[1].label, spec, per_decade=PRIVATE_PER_DECADE)
    for col in spec.numeric:   # coarsening the fine histogram = binning the rows on the coarse grid
        np.testing.assert_array_equal(exact_b.coarsened(PRIVATE_PER_DECADE).magnitudes[col], coarse_b.magnitudes[col])
    mixed = RangeStats.combine([exact_a, exact_b, private])
    assert mixed.per_decade == PRIVATE_PER_DECADE and mixed.rows == 4600 and mixed.extremes == {}
    for col in spec.numeric:
        assert mixed.magnitudes[col].sum() == pytest.approx(4600 - mixed.missing[col])
    assert (exact_a + exact_b).extremes["income"] == (min(exact_a.extremes["income"][0], exact_b.extremes["income"][0]),
                                                      max(exact_a.extremes["income"][1], exact_b.extremes["income"][1]))
    # a part with no value in a column does not withdraw the others' extremes
    empty = RangeStats.from_frame(tables[2].features.assign(age=np.nan), tables[2].label, spec)
    assert (exact_a + empty).extremes["age"] == exact_a.extremes["age"] and "income" in (exact_a + empty).extremes
    with pytest.raises(ValueError, match="cannot be coarsened"):
        private.coarsened(exact_a.per_decade)


def test_fitted_rules_match_numpy_on_the_pooled_rows() -> None:
    tables = _tables()
    pooled = pd.concat([t.features for t in tables], ignore_index=True)
    transform = _federated_fit(tables)
    for col in spec.numeric:
        values = pooled[col].dropna().to_numpy()
        rule = transform.numeric[col]
        for fitted, q in ((rule.low, 0.005), (rule.median, 0.5), (rule.high, 0.995)):
            # a q-quantile on the rank scale, up to one bin of the window (ties: a point mass may hold q)
            w = 2 * (values.max() - values.min()) / 2048
            assert np.mean(values < fitted - w) - 0.003 <= q <= np.mean(values <= fitted + w) + 0.003, (col, q)
        z = rule.apply(values)
        assert abs(z.mean()) < 0.02 and abs(z.std() - 1) < 0.02, col
    assert transform.numeric["income"].log and not transform.numeric["age"].log
    assert transform.numeric["income"].indicator and not transform.numeric["age"].indicator


def test_transform_output_is_standardised_and_handles_unseen_levels() -> None:
    tables = _tables()
    transform = FeatureTransform.fit_rows(tables[0].features, spec)
    x = transform.transform(tables[0].features)
    assert x.dtype == np.float32 and x.shape == (3000, transform.n_features)
    assert np.isfinite(x).all()
    names = transform.feature_names
    assert abs(x[:, names.index("age")].mean()) < 0.05 and abs(x[:, names.index("age")].std() - 1) < 0.05
    assert transform.categorical["housing"][-1] == OTHER
    odd = tables[0].features.head(3).copy()
    odd["housing"] = ["castle", np.nan, "own"]
    row = transform.transform(odd)
    onehot = row[:, [names.index(f"housing={lvl}") for lvl in transform.categorical["housing"]]]
    assert onehot.sum(axis=1).tolist() == [1, 1, 1]
    assert onehot[0, transform.categorical["housing"].index(OTHER)] == 1
    assert MISSING not in transform.categorical["housing"]  # no missing housing in training data


def test_explicit_log_list_overrides_the_automatic_choice() -> None:
    table = _tables()[0]
    forced = DatasetSpec.from_dict({**SPEC, "log": ["age"]})
    transform = FeatureTransform.fit_rows(table.features, forced)
    assert transform.numeric["age"].log and not transform.numeric["income"].log


def test_serialisation_round_trip() -> None:
    table = _tables()[1]
    stats = RangeStats.from_frame(table.features, table.label, spec)
    again = RangeStats.from_dict(stats.to_dict())
    assert again.levels == stats.levels and again.rows == stats.rows and again.extremes == stats.extremes
    plan = ColumnPlan.fit(stats, spec)
    assert ColumnPlan.from_dict(plan.to_dict()) == plan
    bins = plan.bin_stats(table.features)
    assert all(np.array_equal(BinStats.from_dict(bins.to_dict()).histograms[c], h) for c, h in bins.histograms.items())
    transform = FeatureTransform.fit(plan, bins, spec)
    assert FeatureTransform.from_dict(transform.to_dict()) == transform


def test_a_constant_column_is_dropped_with_the_reason() -> None:
    frame = make_partner_frame(600, 5)
    frame["late"] = 3.0
    transform = FeatureTransform.fit_rows(prepare_table(frame, spec, source="t").features, spec)
    assert "late" not in transform.numeric and "constant" in transform.dropped["late"]
    assert "late" not in transform.feature_names


# ---- the transform does not depend on a column's units or offset -----------------------------

COLUMNS = {
    "money": lambda rng, n: rng.lognormal(8, 0.9, n) * (rng.random(n) < 0.8),   # zero-inflated, heavy tail
    "age": lambda rng, n: rng.normal(45, 12, n),
    "ratio": lambda rng, n: rng.beta(2, 5, n),
}


@settings(max_examples=30, deadline=None)
@given(column=st.sampled_from(sorted(COLUMNS)), scale_exp=st.integers(-6, 12), shift_exp=st.integers(-3, 12),
       negative=st.booleans(), shifted=st.booleans(), seed=st.integers(0, 3))
def test_transform_is_invariant_to_units_and_offsets(column: str, scale_exp: int, shift_exp: int, negative: bool,
                                                     shifted: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = COLUMNS[column](rng, 3000)
    one = DatasetSpec.from_dict({"label": "y", "numeric": ["x"]})
    base = pd.DataFrame({"x": x})
    a = 10.0 ** scale_exp
    b = (-1 if negative else 1) * 10.0 ** shift_exp * a * x.std() if shifted else 0.0
    moved = pd.DataFrame({"x": x * a + b})
    z0 = FeatureTransform.fit_rows(base, one).transform(base)[:, 0]
    z1 = FeatureTransform.fit_rows(moved, one).transform(moved)[:, 0]
    assert abs(z1.mean()) < 0.05 and abs(z1.std() - 1) < 0.05
    assert np.max(np.abs(z1 - z0)) < 0.02, (a, b)


@pytest.mark.parametrize("scale", [1e-4, 1e-2, 1.0, 1e6, 1e11])
def test_a_small_or_huge_scale_keeps_its_signal(scale: float) -> None:
    """c19: a PD written as a fraction (0.0002–0.0095) is standardised like the same PD in percent."""
    rng = np.random.default_rng(0)
    pd_ = rng.uniform(0.0002, 0.0095, 4000)
    frame = pd.DataFrame({"x": pd_ * scale})
    z = FeatureTransform.fit_rows(frame, DatasetSpec.from_dict({"label": "y", "numeric": ["x"]})).transform(frame)
    assert abs(z.std() - 1) < 0.05 and np.corrcoef(z[:, 0], pd_)[0, 1] > 0.999


def test_epoch_milliseconds_are_resolved_not_clipped() -> None:
    """c07 (CSV part): dates as epoch milliseconds 1.45e12–1.72e12 keep their order and spread."""
    rng = np.random.default_rng(1)
    days = rng.uniform(0, 3000, 5000)
    frame = pd.DataFrame({"t": 1.45e12 + days * 86_400_000})
    z = FeatureTransform.fit_rows(frame, DatasetSpec.from_dict({"label": "y", "numeric": ["t"]})).transform(frame)
    assert abs(z.std() - 1) < 0.05 and np.corrcoef(z[:, 0], days)[0, 1] > 0.999
