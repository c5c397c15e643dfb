"""Credit-model metrics: AUC, KS, Gini, Brier, log loss — exact, and pooled from histograms.

Pooling per-partner AUCs by averaging is wrong (AUC is not additive). Instead each partner
sends a `ScoreHistogram`: counts of its test scores per fine logit bin, split by label, and
the sums needed for Brier and log loss. Histograms add up, and the metrics of the sum equal
the metrics of the pooled rows up to the bin width.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score, roc_curve

LOGIT_LIMIT = 12.0
N_SCORE_BINS = 4800
_EPS = 1e-7


def exact_metrics(y_true: np.ndarray, p_bad: np.ndarray) -> dict[str, float]:
    """Metrics of scores `p_bad` (probability of default) against labels (1 = bad)."""
    y = np.asarray(y_true, dtype=np.int64)
    p = np.clip(np.asarray(p_bad, dtype=np.float64), _EPS, 1 - _EPS)
    fpr, tpr, _ = roc_curve(y, p)
    auc = float(roc_auc_score(y, p))
    return {
        "auc": auc,
        "ks": float(np.max(tpr - fpr)),
        "gini": 2 * auc - 1,
        "brier": float(brier_score_loss(y, p)),
        "logloss": float(log_loss(y, p, labels=[0, 1])),
        "n": int(len(y)),
        "bad_rate": float(y.mean()),
    }


@dataclass
class ScoreHistogram:
    """Additive summary of scored test rows: per-bin counts by label plus loss sums."""

    bad: np.ndarray = field(default_factory=lambda: np.zeros(N_SCORE_BINS))
    good: np.ndarray = field(default_factory=lambda: np.zeros(N_SCORE_BINS))
    brier_sum: float = 0.0
    logloss_sum: float = 0.0

    @classmethod
    def from_scores(cls, y_true: np.ndarray, p_bad: np.ndarray) -> ScoreHistogram:
        y = np.asarray(y_true, dtype=np.int64)
        p = np.clip(np.asarray(p_bad, dtype=np.float64), _EPS, 1 - _EPS)
        logit = np.clip(np.log(p) - np.log1p(-p), -LOGIT_LIMIT, LOGIT_LIMIT)
        edges = np.linspace(-LOGIT_LIMIT, LOGIT_LIMIT, N_SCORE_BINS + 1)
        return cls(
            bad=np.histogram(logit[y == 1], bins=edges)[0].astype(np.float64),
            good=np.histogram(logit[y == 0], bins=edges)[0].astype(np.float64),
            brier_sum=float(np.sum((p - y) ** 2)),
            logloss_sum=float(-np.sum(y * np.log(p) + (1 - y) * np.log(1 - p))),
        )

    def __add__(self, other: ScoreHistogram) -> ScoreHistogram:
        return ScoreHistogram(self.bad + other.bad, self.good + other.good,
                              self.brier_sum + other.brier_sum, self.logloss_sum + other.logloss_sum)

    @staticmethod
    def combine(parts: Iterable[ScoreHistogram]) -> ScoreHistogram:
        return sum(parts, ScoreHistogram())

    def metrics(self) -> dict[str, float]:
        """AUC (ties inside a bin count one half), KS at bin edges, Gini, Brier, log loss."""
        bad, good = np.clip(self.bad, 0, None), np.clip(self.good, 0, None)
        n_bad, n_good = bad.sum(), good.sum()
        n = n_bad + n_good
        if n_bad == 0 or n_good == 0:
            nan = float("nan")
            return {"auc": nan, "ks": nan, "gini": nan, "brier": self.brier_sum / max(n, 1),
                    "logloss": self.logloss_sum / max(n, 1), "n": int(n), "bad_rate": n_bad / max(n, 1)}
        good_below = np.cumsum(good) - good
        auc = float((bad * (good_below + 0.5 * good)).sum() / (n_bad * n_good))
        ks = float(np.max(np.abs(np.cumsum(good) / n_good - np.cumsum(bad) / n_bad)))
        return {"auc": auc, "ks": ks, "gini": 2 * auc - 1, "brier": self.brier_sum / n,
                "logloss": self.logloss_sum / n, "n": int(n), "bad_rate": float(n_bad / n)}

    def to_dict(self) -> dict[str, Any]:
        nz = np.flatnonzero((self.bad != 0) | (self.good != 0))
        return {"bins": nz.tolist(), "bad": self.bad[nz].tolist(), "good": self.good[nz].tolist(),
                "brier_sum": self.brier_sum, "logloss_sum": self.logloss_sum}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ScoreHistogram:
        hist = cls(brier_sum=float(raw["brier_sum"]), logloss_sum=float(raw["logloss_sum"]))
        idx = np.asarray(raw["bins"], dtype=np.int64)
        hist.bad[idx] = raw["bad"]
        hist.good[idx] = raw["good"]
        return hist
