from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from credit.features import (
    MISSING,
    OTHER,
    Z_EDGES,
    ColumnStats,
    FeatureTransform,
    signed_log1p,
)
from credit.loading import prepare_table
from credit.schema import DatasetSpec
from tests.conftest import SPEC, make_partner_frame

spec = DatasetSpec.from_dict(SPEC)


def _tables():
    return [prepare_table(make_partner_frame(n, s, shift=sh), spec, source="t")
            for n, s, sh in ((3000, 1, 0.0), (1200, 2, 0.7), (400, 3, 1.5))]


def test_partner_statistics_add_up_to_the_pooled_statistics() -> None:
    tables = _tables()
    summed = ColumnStats.combine(ColumnStats.from_frame(t.features, spec) for t in tables)
    pooled = ColumnStats.from_frame(pd.concat([t.features for t in tables], ignore_index=True), spec)
    assert summed.rows == pooled.rows == 4600
    assert summed.missing == pooled.missing
    assert summed.levels == pooled.levels
    for col in spec.numeric:
        np.testing.assert_array_equal(summed.histograms[col], pooled.histograms[col])
    assert FeatureTransform.fit(summed, spec) == FeatureTransform.fit(pooled, spec)


def test_fitted_rules_match_numpy_on_the_pooled_rows() -> None:
    tables = _tables()
    pooled = pd.concat([t.features for t in tables], ignore_index=True)
    transform = FeatureTransform.fit(ColumnStats.combine(ColumnStats.from_frame(t.features, spec)
                                                         for t in tables), spec)
    width = Z_EDGES[1] - Z_EDGES[0]
    for col in spec.numeric:
        values = pooled[col].dropna().to_numpy()
        rule = transform.numeric[col]
        for fitted, q in ((rule.low, 0.005), (rule.median, 0.5), (rule.high, 0.995)):
            exact = np.quantile(values, q)
            # one histogram bin on the signed-log scale is the resolution
            assert abs(signed_log1p(np.float64(fitted)) - signed_log1p(exact)) <= 1.5 * width, (col, q)
        clipped = np.clip(values, rule.low, rule.high)
        t = signed_log1p(clipped) if rule.log else clipped
        assert rule.mean == pytest.approx(t.mean(), abs=0.02 * t.std())
        assert rule.std == pytest.approx(t.std(), rel=0.02)
    assert transform.numeric["income"].log and not transform.numeric["age"].log
    assert transform.numeric["income"].indicator and not transform.numeric["age"].indicator


def test_transform_output_is_standardised_and_handles_unseen_levels() -> None:
    tables = _tables()
    transform = FeatureTransform.fit(ColumnStats.from_frame(tables[0].features, spec), spec)
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
    transform = FeatureTransform.fit(ColumnStats.from_frame(table.features, forced), forced)
    assert transform.numeric["age"].log and not transform.numeric["income"].log


def test_serialisation_round_trip() -> None:
    table = _tables()[1]
    stats = ColumnStats.from_frame(table.features, spec)
    again = ColumnStats.from_dict(stats.to_dict())
    assert again.levels == stats.levels and again.rows == stats.rows
    transform = FeatureTransform.fit(stats, spec)
    assert FeatureTransform.from_dict(transform.to_dict()) == transform
