from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score, roc_curve

from credit.metrics import ScoreHistogram, exact_metrics


def _partner_scores(n: int, seed: int, shift: float):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.05 + 0.2 * shift).astype(int)
    logit = -2 + 1.3 * y + 2 * shift + rng.normal(0, 1, n)
    return y, 1 / (1 + np.exp(-logit))


def test_pooled_histogram_metrics_equal_sklearn_on_the_pooled_rows() -> None:
    parts = [_partner_scores(n, s, sh) for n, s, sh in ((5000, 1, 0.0), (2000, 2, 0.8), (700, 3, 1.5))]
    pooled = ScoreHistogram.combine(ScoreHistogram.from_dict(ScoreHistogram.from_scores(y, p).to_dict())
                                    for y, p in parts).metrics()
    y = np.concatenate([y for y, _ in parts])
    p = np.concatenate([p for _, p in parts])
    fpr, tpr, _ = roc_curve(y, p)
    assert pooled["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-3)
    assert pooled["ks"] == pytest.approx(np.max(tpr - fpr), abs=2e-3)
    assert pooled["brier"] == pytest.approx(brier_score_loss(y, p), rel=1e-9)
    assert pooled["logloss"] == pytest.approx(log_loss(y, p), rel=1e-9)
    assert pooled["gini"] == pytest.approx(2 * pooled["auc"] - 1)
    assert pooled["n"] == len(y)
    # averaging per-partner AUCs is not the pooled AUC (the reason histograms travel)
    mean_auc = np.mean([roc_auc_score(yy, pp) for yy, pp in parts])
    assert abs(mean_auc - roc_auc_score(y, p)) > 0.01


def test_exact_metrics_match_sklearn() -> None:
    y, p = _partner_scores(3000, 9, 0.3)
    m = exact_metrics(y, p)
    assert m["auc"] == pytest.approx(roc_auc_score(y, p))
    assert m["brier"] == pytest.approx(brier_score_loss(y, p))
    assert 0 < m["ks"] < 1 and m["bad_rate"] == pytest.approx(y.mean())


def test_one_class_histogram_gives_nan_auc_not_a_crash() -> None:
    m = ScoreHistogram.from_scores(np.zeros(10), np.linspace(0.1, 0.9, 10)).metrics()
    assert np.isnan(m["auc"]) and m["n"] == 10
