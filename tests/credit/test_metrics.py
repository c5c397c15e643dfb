from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score, roc_curve

from fedcredit.credit.metrics import ScoreHistogram, exact_metrics


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


def _strict(text: str):
    def reject(name: str):
        raise ValueError(f"non-standard JSON constant {name}")
    return json.loads(text, parse_constant=reject)


@pytest.mark.parametrize("missing", ["bad", "good"])
@pytest.mark.parametrize("how", ["exact", "histogram"])
def test_one_class_test_rows_give_null_rank_metrics_with_the_reason(missing, how) -> None:
    y = np.zeros(91) if missing == "bad" else np.ones(91)
    p = np.linspace(0.01, 0.3, 91)
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # no sklearn UndefinedMetricWarning, no numpy division warning
        m = exact_metrics(y, p) if how == "exact" else ScoreHistogram.from_scores(y, p).metrics()
    assert m["auc"] is None and m["ks"] is None and m["gini"] is None
    assert m["undefined"] == (f"the test rows hold 0 {missing} rows: AUC, KS and Gini need both bad and good rows")
    assert m["n"] == 91 and m["bad_rate"] == (0.0 if missing == "bad" else 1.0)
    assert m["brier"] == pytest.approx(brier_score_loss(y, p, labels=[0, 1]) if missing == "bad"
                                       else np.mean((1 - p) ** 2))
    assert m["logloss"] == pytest.approx(log_loss(y, p, labels=[0, 1]))
    text = json.dumps(m, allow_nan=False)
    assert _strict(text)["auc"] is None and "null" in text


def test_defined_metrics_carry_no_undefined_key() -> None:
    y, p = _partner_scores(2000, 4, 0.5)
    for m in (exact_metrics(y, p), ScoreHistogram.from_scores(y, p).metrics()):
        assert "undefined" not in m and all(v is not None for v in m.values())


def test_pooled_histogram_is_defined_when_only_one_partner_lacks_bad_rows() -> None:
    y, p = _partner_scores(3000, 5, 0.4)
    lone = ScoreHistogram.from_scores(np.zeros(50), np.full(50, 0.05))
    assert lone.metrics()["auc"] is None
    pooled = ScoreHistogram.combine([ScoreHistogram.from_scores(y, p), lone]).metrics()
    assert pooled["auc"] is not None and "undefined" not in pooled and pooled["n"] == 3050


def test_no_rows_and_non_finite_scores_are_undefined_not_nan() -> None:
    for m in (exact_metrics(np.zeros(0), np.zeros(0)), ScoreHistogram().metrics()):
        assert m["n"] == 0 and m["undefined"] == "there are no test rows: no metric is defined"
        assert all(m[k] is None for k in ("auc", "ks", "gini", "brier", "logloss", "bad_rate"))
        json.dumps(m, allow_nan=False)
    y, p = np.array([0, 1, 0, 1]), np.array([0.1, np.nan, 0.2, 0.9])
    hist = ScoreHistogram.from_dict(json.loads(json.dumps(ScoreHistogram.from_scores(y, p).to_dict(),
                                                          allow_nan=False)))
    for m in (exact_metrics(y, p), hist.metrics(), ScoreHistogram.combine([hist, ScoreHistogram.from_scores(
            np.array([0, 1]), np.array([0.2, 0.8]))]).metrics()):
        assert m["auc"] is None and m["brier"] is None and m["logloss"] is None
        assert "not a finite number" in m["undefined"]
        json.dumps(m, allow_nan=False)
