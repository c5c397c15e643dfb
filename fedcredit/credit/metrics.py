"""Credit-model metrics: AUC, KS, Gini, Brier, log loss — exact, and pooled from histograms.

Pooling per-partner AUCs by averaging is wrong (AUC is not additive). Instead each partner
sends a `ScoreHistogram`: counts of its test scores per fine logit bin, split by label, and
the sums needed for Brier and log loss. Histograms add up, and the metrics of the sum equal
the metrics of the pooled rows up to the bin width.

A metric the rows cannot define is None (JSON null), never NaN, and the metrics dict then
carries `undefined`: the reason in words (e.g. a small partner whose test rows hold no bad
row has no AUC, KS or Gini; its Brier score and log loss are still defined).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

LOGIT_LIMIT = 12.0
N_SCORE_BINS = 4800
SCORE_EDGES = np.linspace(-LOGIT_LIMIT, LOGIT_LIMIT, N_SCORE_BINS + 1)
# The coarse grid of a private evaluation: half-logit bins where credit scores live
# (PD 0.25 % … 95 %) and two open end bins.
PRIVATE_SCORE_EDGES = np.concatenate([[-LOGIT_LIMIT], np.arange(-6.0, 3.01, 0.5), [LOGIT_LIMIT]])
_EPS = 1e-7
UNDEFINED = "undefined"   # key of the reason, present only when some metric is None

Metrics = dict[str, Any]   # auc, ks, gini, brier, logloss: float | None; n: int; bad_rate: float | None
LABELS = {"auc": "AUC", "ks": "KS", "gini": "Gini", "brier": "Brier", "logloss": "log loss", "bad_rate": "bad rate"}


def undefined_names(metrics: Mapping[str, Any]) -> str:
    """The metrics that are None, in words, e.g. 'AUC, KS and Gini'."""
    names = [LABELS.get(k, k) for k, v in metrics.items() if v is None and k != UNDEFINED]
    return " and ".join(filter(None, [", ".join(names[:-1]), names[-1]])) if names else ""


def undefined_reason(n_bad: float, n_good: float, nonfinite: float = 0) -> str | None:
    """Why some metric of these test rows is undefined, in words for the partner; None if all are defined."""
    if nonfinite:
        return (f"{int(nonfinite)} test row(s) got a score that is not a finite number (the model diverged): "
                "no metric of these scores is defined")
    if n_bad == 0 and n_good == 0:
        return "there are no test rows: no metric is defined"
    if n_bad == 0 or n_good == 0:
        return (f"the test rows hold 0 {'bad' if n_bad == 0 else 'good'} rows: "
                "AUC, KS and Gini need both bad and good rows")
    return None


def _finish(values: Metrics, reason: str | None) -> Metrics:
    """Standard JSON: any non-finite number becomes None, and `undefined` says why."""
    out: Metrics = {}
    odd = []
    for key, value in values.items():
        if value is not None and isinstance(value, float) and not math.isfinite(value):
            odd.append(key)
            value = None
        out[key] = value
    if any(v is None for v in out.values()):
        out[UNDEFINED] = reason or f"{', '.join(odd)}: not a finite number"
    return out


def exact_metrics(y_true: np.ndarray, p_bad: np.ndarray) -> Metrics:
    """Metrics of scores `p_bad` (probability of default) against labels (1 = bad).

    A metric the rows cannot define (AUC, KS and Gini of one-class rows; anything of no rows
    or of non-finite scores) is None, and the key `undefined` gives the reason.
    """
    y = np.asarray(y_true, dtype=np.int64)
    raw = np.asarray(p_bad, dtype=np.float64)
    n, n_bad = int(len(y)), int(y.sum())
    nonfinite = int(np.count_nonzero(~np.isfinite(raw)))
    reason = undefined_reason(n_bad, n - n_bad, nonfinite)
    out: Metrics = {"auc": None, "ks": None, "gini": None, "brier": None, "logloss": None, "n": n,
                    "bad_rate": n_bad / n if n else None}
    if n and not nonfinite:
        p = np.clip(raw, _EPS, 1 - _EPS)
        out["brier"] = float(np.mean((p - y) ** 2))
        out["logloss"] = float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))
        if 0 < n_bad < n:
            fpr, tpr, _ = roc_curve(y, p)
            auc = float(roc_auc_score(y, p))
            out.update(auc=auc, ks=float(np.max(tpr - fpr)), gini=2 * auc - 1)
    return _finish(out, reason)


@dataclass
class ScoreHistogram:
    """Additive summary of scored test rows: per-bin counts by label plus loss sums.

    Rows whose score is not a finite number (a diverged model) are counted in `nonfinite`
    and left out of the bins and sums; any such row makes every score metric undefined.
    """

    bad: np.ndarray = field(default_factory=lambda: np.zeros(N_SCORE_BINS))
    good: np.ndarray = field(default_factory=lambda: np.zeros(N_SCORE_BINS))
    brier_sum: float | None = 0.0     # None: a coarse (private) histogram; losses come from its bins
    logloss_sum: float | None = 0.0
    nonfinite: float = 0.0
    edges: np.ndarray | None = None   # logit bin edges; None: the fine grid SCORE_EDGES
    noise_sd: float = 0.0             # a private histogram: the sd of the noise on each count

    @property
    def grid(self) -> np.ndarray:
        return SCORE_EDGES if self.edges is None else self.edges

    @property
    def private(self) -> bool:
        """Noised counts (sums withheld): AUC and KS use the raw counts so the noise averages out."""
        return self.brier_sum is None

    @property
    def total(self) -> float:
        """Rows counted (a noisy number for a private histogram)."""
        return float(self.bad.sum() + self.good.sum() + self.nonfinite)

    def coarsen(self, edges: np.ndarray) -> ScoreHistogram:
        """Counts summed onto coarser `edges` (each a fine-grid edge); loss sums kept."""
        idx = np.round((np.asarray(edges) - SCORE_EDGES[0]) / (SCORE_EDGES[1] - SCORE_EDGES[0])).astype(np.int64)
        if not np.allclose(SCORE_EDGES[idx], edges) or idx[0] != 0 or idx[-1] != N_SCORE_BINS:
            raise ValueError("coarse score edges must be fine-grid edges spanning the whole grid")
        return ScoreHistogram(np.add.reduceat(self.bad, idx[:-1]), np.add.reduceat(self.good, idx[:-1]),
                              self.brier_sum, self.logloss_sum, self.nonfinite, np.asarray(edges, dtype=np.float64))

    @classmethod
    def from_scores(cls, y_true: np.ndarray, p_bad: np.ndarray) -> ScoreHistogram:
        y = np.asarray(y_true, dtype=np.int64)
        raw = np.asarray(p_bad, dtype=np.float64)
        finite = np.isfinite(raw)
        y, p = y[finite], np.clip(raw[finite], _EPS, 1 - _EPS)
        logit = np.clip(np.log(p) - np.log1p(-p), -LOGIT_LIMIT, LOGIT_LIMIT)
        return cls(
            bad=np.histogram(logit[y == 1], bins=SCORE_EDGES)[0].astype(np.float64),
            good=np.histogram(logit[y == 0], bins=SCORE_EDGES)[0].astype(np.float64),
            brier_sum=float(np.sum((p - y) ** 2)),
            logloss_sum=float(-np.sum(y * np.log(p) + (1 - y) * np.log1p(-p))),
            nonfinite=float(np.count_nonzero(~finite)),
        )

    def __add__(self, other: ScoreHistogram) -> ScoreHistogram:
        a, b = self, other
        if len(a.grid) != len(b.grid) or not np.array_equal(a.grid, b.grid):
            a, b = (a.coarsen(b.grid), b) if len(a.grid) > len(b.grid) else (a, b.coarsen(a.grid))
        sums = (None, None) if a.private or b.private else (a.brier_sum + b.brier_sum, a.logloss_sum + b.logloss_sum)
        return ScoreHistogram(a.bad + b.bad, a.good + b.good, *sums, a.nonfinite + b.nonfinite, a.edges,
                              float(np.hypot(a.noise_sd, b.noise_sd)))

    @staticmethod
    def combine(parts: Iterable[ScoreHistogram]) -> ScoreHistogram:
        parts = list(parts)
        return sum(parts[1:], parts[0]) if parts else ScoreHistogram()

    def _bin_losses(self, bad: np.ndarray, good: np.ndarray) -> tuple[float, float]:
        """Brier and log-loss sums with every row at its bin's centre score (open end bins:
        half a neighbouring bin's width beyond the inner edge)."""
        e = self.grid
        centres = (e[:-1] + e[1:]) / 2
        centres[0], centres[-1] = e[1] - (e[2] - e[1]) / 2, e[-2] + (e[-2] - e[-3]) / 2
        p = np.clip(1 / (1 + np.exp(-centres)), _EPS, 1 - _EPS)
        brier = float(bad @ (1 - p) ** 2 + good @ p ** 2)
        logloss = float(-(bad @ np.log(p) + good @ np.log1p(-p)))
        return brier, logloss

    def metrics(self) -> Metrics:
        """AUC (ties inside a bin count one half), KS at bin edges, Gini, Brier, log loss.

        As `exact_metrics`: a metric these rows cannot define is None, `undefined` says why."""
        if self.private:   # noisy counts: unbiased sums; too few rows to stand above the noise = none
            bad, good = self.bad, self.good
            n_bad, n_good = max(float(bad.sum()), 0.0), max(float(good.sum()), 0.0)
            n_bad, n_good = (n_bad if n_bad >= 1 else 0.0), (n_good if n_good >= 1 else 0.0)
        else:
            bad, good = np.clip(self.bad, 0, None), np.clip(self.good, 0, None)
            n_bad, n_good = float(bad.sum()), float(good.sum())
        n = n_bad + n_good + self.nonfinite
        reason = undefined_reason(n_bad, n_good, self.nonfinite)
        out: Metrics = {"auc": None, "ks": None, "gini": None, "brier": None, "logloss": None, "n": int(round(n)),
                        "bad_rate": n_bad / n if n and not self.nonfinite else None}
        if n and not self.nonfinite:
            brier, logloss = self._bin_losses(bad, good) if self.private else (self.brier_sum, self.logloss_sum)
            out.update(brier=min(max(brier / n, 0.0), 1.0), logloss=max(logloss / n, 0.0))
            if n_bad and n_good:
                good_below = np.cumsum(good) - good
                auc = float(np.clip((bad * (good_below + 0.5 * good)).sum() / (n_bad * n_good), 0.0, 1.0))
                ks = float(np.clip(np.max(np.abs(np.cumsum(good) / n_good - np.cumsum(bad) / n_bad)), 0.0, 1.0))
                out.update(auc=auc, ks=ks, gini=2 * auc - 1)
                if self.private and self.noise_sd:
                    out["auc_noise_sd"] = self._auc_noise_sd(bad, good, n_bad, n_good)
        return _finish(out, reason)

    def _auc_noise_sd(self, bad: np.ndarray, good: np.ndarray, n_bad: float, n_good: float) -> float:
        """Standard deviation the count noise puts on the AUC (first order): each bad count enters
        weighted by the good rows below it, each good count by the bad rows above it."""
        good_below = np.cumsum(good) - good / 2
        bad_above = n_bad - (np.cumsum(bad) - bad / 2)
        return float(self.noise_sd * np.sqrt(good_below @ good_below + bad_above @ bad_above) / (n_bad * n_good))

    def to_dict(self) -> dict[str, Any]:
        nz = np.flatnonzero((self.bad != 0) | (self.good != 0))
        out: dict[str, Any] = {"bins": nz.tolist(), "bad": self.bad[nz].tolist(), "good": self.good[nz].tolist()}
        if self.private:
            out.update(edges=self.grid.tolist(), noise_sd=self.noise_sd)
        else:
            out.update(brier_sum=self.brier_sum, logloss_sum=self.logloss_sum, nonfinite=self.nonfinite)
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ScoreHistogram:
        edges = np.asarray(raw["edges"], dtype=np.float64) if raw.get("edges") is not None else None
        size = N_SCORE_BINS if edges is None else len(edges) - 1
        private = edges is not None
        hist = cls(np.zeros(size), np.zeros(size), None if private else float(raw["brier_sum"]),
                   None if private else float(raw["logloss_sum"]), float(raw.get("nonfinite", 0.0)), edges,
                   float(raw.get("noise_sd", 0.0)))
        idx = np.asarray(raw["bins"], dtype=np.int64)
        hist.bad[idx] = raw["bad"]
        hist.good[idx] = raw["good"]
        return hist
