"""Yardsticks for boosted trees (model "gbdt"): scikit-learn's HistGradientBoostingClassifier on rows
held in one place (the centralised and local-only models, same trees, depth, learning rate, L2 and
bins as the [gbdt] table; a random forest: scikit-learn's RandomForestClassifier with the same trees,
depth and row and column shares), and a partner alone under its own DP policy: our grower on its rows with
its histograms noised as in a federated run, the noise calibrated to its per-run cap for the same
trees × depth Gaussian mechanisms (`fedcredit.privacy.histograms`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

from fedcredit.clients.partner import PartnerData
from fedcredit.credit.features import PRIVATE_BINS, ColumnPlan, FeatureTransform
from fedcredit.credit.histograms import DEFAULT_BINS, BinPlan, grow_ensemble
from fedcredit.credit.metrics import exact_metrics
from fedcredit.credit.scenario import PrivacyPolicy
from fedcredit.credit.schema import DatasetSpec
from fedcredit.credit.statistics import RangeStats
from fedcredit.credit.trees import RANDOM_FOREST, TreeEnsemble, TreeSettings
from fedcredit.privacy.accountant import calibrate_noise
from fedcredit.privacy.histograms import HESSIAN_SCALE, noisy_histograms


def fit_hgb(x: np.ndarray, y: np.ndarray, trees: TreeSettings, *, seed: int = 0) -> HistGradientBoostingClassifier:
    """scikit-learn's histogram GBDT with the [gbdt] settings, grown depth-wise to `max_depth` (no leaf
    cap, no early stopping) on a design matrix."""
    return HistGradientBoostingClassifier(
        max_iter=trees.trees, max_depth=trees.max_depth, learning_rate=trees.learning_rate,
        l2_regularization=trees.l2, max_bins=min(trees.max_bins or DEFAULT_BINS, 255), max_leaf_nodes=None,
        early_stopping=False, random_state=seed).fit(x, np.asarray(y, dtype=np.int64))


def fit_reference(x: np.ndarray, y: np.ndarray, trees: TreeSettings, model: str, *, seed: int = 0) -> Any:
    """scikit-learn's model of the same kind: HGB for "gbdt", a random forest for "random_forest"."""
    if model != RANDOM_FOREST:
        return fit_hgb(x, y, trees, seed=seed)
    return RandomForestClassifier(n_estimators=trees.trees, max_depth=trees.max_depth,
                                  max_features=trees.colsample or 1.0, max_samples=trees.row_share
                                  if trees.row_share < 1 else None, random_state=seed,
                                  n_jobs=1).fit(x, np.asarray(y, dtype=np.int64))


def fit_trees_on_rows(features: Any, label: np.ndarray, spec: DatasetSpec, trees: TreeSettings, *,
                      max_bins: int | None = None, noise: Any = None, seed: int = 0, forest: bool = False
                      ) -> tuple[FeatureTransform, TreeEnsemble]:
    """Our grower on rows held in one place: the transform and bins from exact statistics of the rows."""
    plan = ColumnPlan.fit(RangeStats.from_frame(features, np.zeros(len(features)), spec), spec)
    stats = plan.bin_stats(features)
    transform = FeatureTransform.fit(plan, stats, spec)
    bins = BinPlan.fit(transform, plan, stats, max_bins if max_bins is not None else trees.max_bins)
    rate = float(np.clip(np.mean(label), 1e-4, 1 - 1e-4))
    x = transform.transform(features)
    ensemble = grow_ensemble(x, np.asarray(label, np.float64), bins, trees, base_score=math.log(rate / (1 - rate)),
                             features=transform.feature_names, noise=noise, seed=seed, forest=forest)
    return transform, ensemble


def local_private_trees(d: PartnerData, spec: DatasetSpec, trees: TreeSettings, policy: PrivacyPolicy, *,
                        seed: int = 0, forest: bool = False) -> tuple[dict[str, Any], np.ndarray]:
    """The partner alone under its DP policy: (metrics, P(bad)) on its test rows (preprocessing fitted
    exactly — generous to it; bins as private statistics give them)."""
    sigma = policy.noise_multiplier or calibrate_noise([], budget=policy.run_cap, delta=policy.delta,
                                                       sample_rate=1.0, steps=trees.trees * trees.max_depth)
    rng = np.random.default_rng(seed)
    columns = trees.columns_per_tree(len(spec.numeric) + len(spec.categorical))

    def noise(grad: np.ndarray, hess: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
        g, h, _, sd = noisy_histograms(grad, hess, sigma, columns, rng=rng)
        return g, h, sd, sd / HESSIAN_SCALE

    transform, ensemble = fit_trees_on_rows(d.train.features, d.train.label, spec, trees,
                                            max_bins=min(trees.max_bins or PRIVATE_BINS, PRIVATE_BINS),
                                            noise=noise, seed=seed, forest=forest)
    p = ensemble.predict_proba(transform.transform(d.test.features))
    return exact_metrics(d.test.label, p), p
