"""Boosted trees' maths: partners' histograms add up to the pooled rows' exactly, the federated growth
is the pooled growth, the JSON format round-trips, Saabas attributions add up, bad settings are refused."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fedcredit.credit.errors import InputError
from fedcredit.credit.features import PRIVATE_BINS, ColumnPlan, FeatureTransform, NumericGrid
from fedcredit.credit.histograms import (
    BinError,
    BinPlan,
    gradient_histograms,
    grow_ensemble,
    grow_level,
    logistic_gradients,
    open_node_index,
)
from fedcredit.credit.model import predict_proba
from fedcredit.credit.scenario import load_scenario
from fedcredit.credit.schema import DatasetSpec
from fedcredit.credit.statistics import RangeStats
from fedcredit.credit.trees import Tree, TreeEnsemble, TreeModule, TreeSettings
from tests.conftest import SPEC, make_partner_frame, write_scenario


def _spec() -> DatasetSpec:
    return DatasetSpec(label="bad_flag", numeric=("age", "income", "late"), categorical=("housing",),
                       missing={"late": ("96", "98")})


def _pooled(frames: list[pd.DataFrame]):
    """Transform, bins and design matrix from exact statistics of the pooled rows (as round 0 sums them)."""
    spec = _spec()
    features = pd.concat(frames, ignore_index=True)[["age", "income", "late", "housing"]]
    features = features.assign(late=features["late"].where(features["late"] != 98))
    plan = ColumnPlan.fit(RangeStats.from_frame(features, np.zeros(len(features)), spec), spec)
    stats = plan.bin_stats(features)
    transform = FeatureTransform.fit(plan, stats, spec)
    return transform, plan, stats, features


@pytest.fixture(scope="module")
def partners():
    frames = [make_partner_frame(900, 1), make_partner_frame(600, 2, shift=0.5), make_partner_frame(400, 3, shift=1)]
    transform, plan, stats, features = _pooled(frames)
    bins = BinPlan.fit(transform, plan, stats, 16)
    x = transform.transform(features)
    y = pd.concat(frames, ignore_index=True)["bad_flag"].to_numpy(np.float64)
    cuts = np.cumsum([0] + [len(f) for f in frames])
    return transform, bins, x, y, [slice(a, b) for a, b in zip(cuts[:-1], cuts[1:])]


def test_the_partners_histograms_sum_to_the_pooled_histograms_exactly(partners) -> None:
    transform, bins, x, y, parts = partners
    tree = Tree()
    tree.split(0, 0, 0.0, (0.0, 0.0), (0.0, 0.0))                 # two open nodes: age ≤ mean, above
    ensemble = TreeEnsemble(-1.0, transform.feature_names)
    g, h = logistic_gradients(ensemble, x, y)
    ones = np.ones(len(y))
    node = open_node_index(tree, [1, 2], x)
    codes = bins.codes(x)
    pooled_counts = gradient_histograms(codes, node, ones, 2 * ones, 2, bins)
    pooled = gradient_histograms(codes, node, g, h, 2, bins)
    counts = [gradient_histograms(codes[p], node[p], ones[p], 2 * ones[p], 2, bins) for p in parts]
    sums = [gradient_histograms(codes[p], node[p], g[p], h[p], 2, bins) for p in parts]
    for k in (0, 1):                                                # integer sums: bit for bit
        assert np.array_equal(sum(c[k] for c in counts), pooled_counts[k])
        np.testing.assert_allclose(sum(s[k] for s in sums), pooled[k], rtol=1e-12, atol=1e-12)
    # every row in exactly one bin per column of its node
    assert pooled_counts[0].sum() == len(y) * len(bins.columns)
    for (a, b) in zip(bins.offsets[:-1], bins.offsets[1:]):
        assert pooled_counts[0][:, a:b].sum(axis=1).tolist() == np.bincount(node, minlength=2).tolist()


def test_federated_growth_from_summed_histograms_is_the_pooled_growth(partners) -> None:
    transform, bins, x, y, parts = partners
    settings = TreeSettings(trees=4, max_depth=3, learning_rate=0.3)
    pooled = grow_ensemble(x, y, bins, settings, base_score=-1.0, features=transform.feature_names)
    federated = TreeEnsemble(-1.0, transform.feature_names)
    codes = bins.codes(x)
    for _ in range(settings.trees):
        tree, open_nodes = Tree(), [0]
        for level in range(settings.max_depth):
            if not open_nodes:
                break
            g, h = logistic_gradients(federated, x, y)
            node = open_node_index(tree, open_nodes, x)
            summed = [gradient_histograms(codes[p], node[p], g[p], h[p], len(open_nodes), bins) for p in parts]
            grad, hess = sum(s[0] for s in summed), sum(s[1] for s in summed)
            open_nodes = grow_level(tree, open_nodes, grad, hess, bins, settings, depth=level)
        federated.trees.append(tree)
    for a, b in zip(pooled.trees, federated.trees):
        assert a.feature == b.feature and a.threshold == b.threshold
        np.testing.assert_allclose(a.value, b.value, rtol=1e-9)
    assert len(pooled.trees[0].feature) > 3                         # it did split
    np.testing.assert_allclose(predict_proba(TreeModule(pooled).double(), x), pooled.predict_proba(x), rtol=1e-12)


def test_a_split_on_a_bin_edge_sends_the_row_where_its_bin_is(partners) -> None:
    transform, bins, x, y, _ = partners
    ensemble = grow_ensemble(x, y, bins, TreeSettings(trees=1, max_depth=1), base_score=-1.0,
                             features=transform.feature_names)
    tree = ensemble.trees[0]
    j, t = tree.feature[0], tree.threshold[0]
    col = next(c for c in bins.columns if j in (c.feature, c.indicator) or c.feature <= j < c.feature + c.levels)
    left = x[:, j] <= np.float32(t)
    assert 0 < left.sum() < len(x)
    assert np.array_equal(tree.apply(x) == tree.left[0], left) and col is not None


def test_the_json_format_round_trips_and_refuses_damage(partners) -> None:
    transform, bins, x, y, _ = partners
    ensemble = grow_ensemble(x, y, bins, TreeSettings(trees=3, max_depth=2), base_score=-1.2,
                             features=transform.feature_names)
    again = TreeEnsemble.from_json(ensemble.to_json())
    assert again.to_dict() == ensemble.to_dict() and np.array_equal(again.raw_score(x), ensemble.raw_score(x))
    assert BinPlan.from_dict(bins.to_dict()) == bins
    raw = ensemble.to_dict()
    with pytest.raises(ValueError, match="fedcredit-trees/1"):
        TreeEnsemble.from_dict({**raw, "format": "xgboost"})
    broken = {**raw, "trees": [{**raw["trees"][0], "left": [99] + raw["trees"][0]["left"][1:]}]}
    with pytest.raises(ValueError, match="children"):
        TreeEnsemble.from_dict(broken)


def test_saabas_contributions_add_up_to_the_logit(partners) -> None:
    transform, bins, x, y, _ = partners
    ensemble = grow_ensemble(x, y, bins, TreeSettings(trees=5, max_depth=3), base_score=-1.0,
                             features=transform.feature_names)
    contrib = ensemble.contributions(x)
    np.testing.assert_allclose(contrib.sum(axis=1) + ensemble.expected, ensemble.raw_score(x), atol=1e-9)
    used = {f for t in ensemble.trees for f in t.feature if f >= 0}
    assert set(np.flatnonzero(np.abs(contrib).sum(axis=0))) <= used


def test_more_bins_than_the_statistics_have_is_refused() -> None:
    transform, plan, stats, _ = _pooled([make_partner_frame(500, 1)])
    coarse = ColumnPlan({c: NumericGrid(g.lo, g.hi, PRIVATE_BINS) for c, g in plan.grids.items()},
                        plan.categorical, plan.indicators, plan.dropped, plan.observed)
    coarse_stats = coarse.bin_stats(_pooled([make_partner_frame(500, 1)])[3])
    with pytest.raises(BinError, match="max_bins 32 is more than the 16 bins"):
        BinPlan.fit(transform, coarse, coarse_stats, 32)
    assert all(c.bins <= PRIVATE_BINS + 1 for c in BinPlan.fit(transform, coarse, coarse_stats, None).columns
               if c.kind == "numeric")


@pytest.mark.parametrize("table, message", [
    ({"trees": 0}, "field 'trees': must be a whole number of trees from 1 to 2000"),
    ({"max_depth": 0}, "field 'max_depth': must be a whole number from 1 to 12"),
    ({"learning_rate": 1.5}, "field 'learning_rate': must be in (0, 1]"),
    ({"learning_rate": 0.0}, "field 'learning_rate': must be in (0, 1]"),
    ({"subsample": 0}, "field 'subsample': must be a share in (0, 1]"),
])
def test_bad_gbdt_settings_are_one_clear_error(tmp_path, table, message) -> None:
    import tomllib

    import tomli_w

    path = write_scenario(tmp_path, {"bank-a": make_partner_frame(300, 1)}, federation={"model": "gbdt"})
    raw = tomllib.loads(path.read_text())
    path.write_text(tomli_w.dumps({**raw, "gbdt": table}))
    with pytest.raises(InputError) as err:
        load_scenario(path)
    assert "[gbdt]" in str(err.value) and message in str(err.value)


def test_private_runs_refuse_more_bins_than_private_statistics_have(tmp_path) -> None:
    import tomllib

    import tomli_w

    path = write_scenario(tmp_path, {"bank-a": make_partner_frame(300, 1)}, federation={"model": "gbdt"},
                          privacy={"mode": "sample", "epsilon": 5.0})
    raw = tomllib.loads(path.read_text())
    path.write_text(tomli_w.dumps({**raw, "gbdt": {"max_bins": 32}}))
    with pytest.raises(InputError, match=r"\[gbdt\]: field 'max_bins': max_bins 32 is more than the 16 bins"):
        load_scenario(path)
    path.write_text(tomli_w.dumps({**raw, "gbdt": {"max_bins": 16, "trees": 7}}))
    scenario = load_scenario(path)
    assert scenario.gbdt == TreeSettings(trees=7, max_bins=16) and SPEC["label"] == scenario.dataset.label
    assert scenario.trees == TreeSettings(trees=7, max_bins=16, subsample=1.0, colsample=1.0)   # gbdt: all rows


def test_a_random_forest_averages_independent_trees(partners) -> None:
    transform, bins, x, y, _ = partners
    settings = TreeSettings(trees=6, max_depth=3).resolved("random_forest")
    assert (settings.row_share, settings.colsample, settings.learning_rate) == (0.632, 0.5, 1.0)
    forest = grow_ensemble(x, y, bins, settings, base_score=-1.0, features=transform.feature_names, forest=True)
    mean = np.mean([t.predict(x) for t in forest.trees], axis=0)
    np.testing.assert_allclose(forest.raw_score(x), -1.0 + mean, rtol=1e-12)
    np.testing.assert_allclose(forest.contributions(x).sum(axis=1) + forest.expected, forest.raw_score(x), atol=1e-9)
    assert TreeEnsemble.from_json(forest.to_json()).average and forest.to_dict()["aggregation"] == "mean"
    assert len({tuple(t.feature) for t in forest.trees}) > 1               # rows and columns drawn per tree
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y, forest.raw_score(x)) > 0.65


def test_a_column_sample_grows_each_tree_on_its_columns_only(partners) -> None:
    transform, bins, x, y, _ = partners
    settings = TreeSettings(trees=6, max_depth=2, colsample=0.25)
    assert settings.columns_per_tree(len(bins.columns)) == 1
    ensemble = grow_ensemble(x, y, bins, settings, base_score=-1.0, features=transform.feature_names)
    owner = {}
    for i, c in enumerate(bins.columns):
        span = range(c.feature, c.feature + c.levels) if c.kind == "categorical" else (c.feature, c.indicator)
        owner.update({j: i for j in span if j >= 0})
    for tree in ensemble.trees:
        assert len({owner[f] for f in tree.feature if f >= 0}) <= 1
    assert len({owner[f] for t in ensemble.trees for f in t.feature if f >= 0}) > 1
    sub = bins.subset([1, 3])
    assert [c.column for c in sub.columns] == [bins.columns[1].column, bins.columns[3].column]
