"""Validation measures from released score histograms and column statistics, never from rows.

- AUC confidence interval: Hanley & McNeil (1982), "The meaning and use of the area under a receiver
  operating characteristic (ROC) curve", Radiology 143(1):29-36, eq. (1)-(3); under DP the noise on
  the counts adds its own standard deviation (`ScoreHistogram.metrics()["auc_noise_sd"]`) in quadrature.
- Calibration by score decile: bins of the pooled histogram, in order of score, grouped into ten
  bands of about equal rows (a bin is never split); predicted bad rate = the rows' mean PD at their
  bin's centre, observed = bads / rows. Hosmer & Lemeshow (2000), "Applied Logistic Regression", 2nd
  ed., §5.2.2, for the C-hat statistic on those bands (df = bands - 2).
- Population stability index: PSI = Σ (a_i - e_i) ln(a_i / e_i) over shares a (partner) and e (pool);
  Siddiqi (2006), "Credit Risk Scorecards", ch. 8: < 0.1 stable, 0.1-0.25 some shift, > 0.25 shifted.
  A share of 0 on either side is taken as `PSI_FLOOR` (the logarithm needs both > 0).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.stats import chi2, norm

from fedcredit.credit.metrics import PRIVATE_SCORE_EDGES, ScoreHistogram
from fedcredit.credit.statistics import RangeStats

Z95 = float(norm.ppf(0.975))
PSI_FLOOR = 1e-4
PSI_BANDS = [{"below": 0.1, "reading": "stable"}, {"below": 0.25, "reading": "some shift: investigate"},
             {"below": None, "reading": "shifted: the population differs"}]
MAX_FEATURE_BANDS = 10


def hanley_mcneil_se(auc: float, n_bad: float, n_good: float) -> float:
    """Standard error of an AUC from `n_bad` bad and `n_good` good rows (Hanley & McNeil 1982, eq. 1-3):
    SE² = (A(1-A) + (n_b - 1)(Q1 - A²) + (n_g - 1)(Q2 - A²)) / (n_b n_g), Q1 = A/(2-A), Q2 = 2A²/(1+A).
    Raises ValueError without rows of both kinds."""
    if n_bad <= 0 or n_good <= 0:
        raise ValueError("an AUC standard error needs bad and good rows")
    q1, q2 = auc / (2 - auc), 2 * auc ** 2 / (1 + auc)
    var = (auc * (1 - auc) + (n_bad - 1) * (q1 - auc ** 2) + (n_good - 1) * (q2 - auc ** 2)) / (n_bad * n_good)
    return math.sqrt(max(var, 0.0))


def discrimination(hist: ScoreHistogram) -> dict[str, Any]:
    """AUC with its 95 % interval (clipped to [0, 1]), KS, Gini, rows, bads, good rows, bad rate; `noised`:
    the counts carry DP noise (then bads and goods are noisy sums, not whole rows).
    Metrics the rows cannot define are None with `undefined` saying why (as `ScoreHistogram.metrics`)."""
    m = hist.metrics()
    # as `ScoreHistogram.metrics`: noised counts are summed as released (their noise averages out)
    bad, good = (hist.bad, hist.good) if hist.private else (np.clip(hist.bad, 0, None), np.clip(hist.good, 0, None))
    n_bad, n_good = max(float(bad.sum()), 0.0), max(float(good.sum()), 0.0)
    out = {"auc": m["auc"], "auc_se": None, "auc_low": None, "auc_high": None, "ks": m["ks"], "gini": m["gini"],
           "rows": m["n"], "bads": n_bad, "goods": n_good, "bad_rate": m["bad_rate"], "noised": hist.private}
    if m["auc"] is not None and n_bad > 0 and n_good > 0:
        se = math.hypot(hanley_mcneil_se(m["auc"], n_bad, n_good), m.get("auc_noise_sd") or 0.0)
        out.update(auc_se=se, auc_low=max(m["auc"] - Z95 * se, 0.0), auc_high=min(m["auc"] + Z95 * se, 1.0))
    if m.get("undefined"):
        out["undefined"] = m["undefined"]
    return out


def bin_centres(edges: np.ndarray) -> np.ndarray:
    """Logit of each bin's centre; the two outer bins of a grid with open ends (±12) sit half a
    neighbouring bin's width beyond their inner edge (as `ScoreHistogram`'s losses)."""
    e = np.asarray(edges, dtype=np.float64)
    centres = (e[:-1] + e[1:]) / 2
    if len(e) > 3:
        centres[0], centres[-1] = e[1] - (e[2] - e[1]) / 2, e[-2] + (e[-2] - e[-3]) / 2
    return centres


def _pd(logit: np.ndarray | float) -> np.ndarray:
    return 1 / (1 + np.exp(-np.asarray(logit, dtype=np.float64)))


def calibration(hist: ScoreHistogram, bands: int = 10) -> dict[str, Any]:
    """Predicted vs observed bad rate by score decile (lowest PD first) and the Hosmer-Lemeshow C-hat.

    Returns {"deciles": [{decile, pd_low, pd_high, rows, bads, predicted_bad_rate, observed_bad_rate}],
    "hosmer_lemeshow": {statistic, df, p_value} | None, "noised"}. Negative noised counts count as 0."""
    bad, good = np.clip(hist.bad, 0, None), np.clip(hist.good, 0, None)
    n = bad + good
    total = float(n.sum())
    edges, p = hist.grid, _pd(bin_centres(hist.grid))
    deciles: list[dict[str, Any]] = []
    if total > 0:
        band = np.minimum(((np.cumsum(n) - n / 2) / total * bands).astype(np.int64), bands - 1)
        for b in np.unique(band[n > 0]):
            idx = np.flatnonzero((band == b) & (n > 0))
            rows = float(n[idx].sum())
            deciles.append({"decile": len(deciles) + 1, "pd_low": float(_pd(edges[idx[0]])),
                            "pd_high": float(_pd(edges[idx[-1] + 1])), "rows": rows, "bads": float(bad[idx].sum()),
                            "predicted_bad_rate": float(n[idx] @ p[idx] / rows),
                            "observed_bad_rate": float(bad[idx].sum() / rows)})
    return {"deciles": deciles, "hosmer_lemeshow": hosmer_lemeshow(deciles), "noised": hist.private}


def hosmer_lemeshow(deciles: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """C-hat = Σ (O - E)² / (E (1 - E / n)) over bands with E = predicted rate × rows; χ² with bands - 2
    degrees of freedom (Hosmer & Lemeshow 2000, §5.2.2). None with fewer than 3 bands."""
    usable = [d for d in deciles if 0 < d["predicted_bad_rate"] < 1 and d["rows"] > 0]
    if len(usable) < 3:
        return None
    stat = sum((d["bads"] - d["predicted_bad_rate"] * d["rows"]) ** 2
               / (d["predicted_bad_rate"] * d["rows"] * (1 - d["predicted_bad_rate"])) for d in usable)
    df = len(usable) - 2
    return {"statistic": float(stat), "df": df, "p_value": float(chi2.sf(stat, df))}


def psi(expected: Sequence[float] | np.ndarray, actual: Sequence[float] | np.ndarray) -> float | None:
    """PSI of `actual` counts against `expected` counts on the same bins (counts or shares; negative
    noised counts count as 0). None if either side holds no rows."""
    e, a = np.clip(np.asarray(expected, dtype=np.float64), 0, None), np.clip(np.asarray(actual, dtype=np.float64), 0, None)
    if e.sum() <= 0 or a.sum() <= 0:
        return None
    e, a = np.maximum(e / e.sum(), PSI_FLOOR), np.maximum(a / a.sum(), PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def psi_reading(value: float | None) -> str | None:
    """The rule-of-thumb reading of a PSI (`PSI_BANDS`)."""
    if value is None:
        return None
    return next(b["reading"] for b in PSI_BANDS if b["below"] is None or value < b["below"])


def score_distribution(hist: ScoreHistogram) -> list[float]:
    """Rows per bin of the coarse score grid `PRIVATE_SCORE_EDGES` (both labels; negative noised counts 0)."""
    coarse = hist if len(hist.grid) == len(PRIVATE_SCORE_EDGES) else hist.coarsen(PRIVATE_SCORE_EDGES)
    return np.clip(coarse.bad + coarse.good, 0, None).tolist()


def _equal_mass_bounds(counts: np.ndarray, bands: int) -> list[int]:
    """Indices cutting `counts` into at most `bands` runs of about equal mass (cuts between bins)."""
    total = counts.sum()
    if total <= 0:
        return [0, len(counts)]
    cum = np.cumsum(counts) / total
    cuts = sorted({int(np.searchsorted(cum, q, side="left")) + 1 for q in np.arange(1, bands) / bands})
    return [0, *[c for c in cuts if 0 < c < len(counts)], len(counts)]


def feature_psi(partners: Mapping[str, RangeStats], numeric: Sequence[str],
                categorical: Sequence[str]) -> dict[str, dict[str, Any]]:
    """PSI of each partner against the pool (the sum of all `partners`) per column, from round 0's
    release 1: a numeric column's counts on the magnitude grid merged into at most 10 bands of about
    equal pooled rows, plus a missing band; a categorical column by level, plus a missing band.

    Returns {column: {"kind", "bands" (incl. missing), "partners": {partner: PSI or None}, "readings"}}."""
    if not partners:
        return {}
    pool = RangeStats.combine(partners.values())
    out: dict[str, dict[str, Any]] = {}
    for col in numeric:
        if col not in pool.magnitudes:
            continue
        bounds = _equal_mass_bounds(np.clip(pool.magnitudes[col], 0, None), MAX_FEATURE_BANDS)

        def banded(s: RangeStats) -> np.ndarray:
            h = np.clip(np.asarray(s.magnitudes.get(col, np.zeros_like(pool.magnitudes[col])), dtype=np.float64), 0, None)
            return np.array([h[a:b].sum() for a, b in zip(bounds[:-1], bounds[1:])] + [s.missing.get(col, 0.0)])
        expected = banded(pool)
        out[col] = {"kind": "numeric", "bands": len(bounds), "partners": {
            name: psi(expected, banded(s)) for name, s in partners.items()}}
    for col in categorical:
        levels = sorted(pool.levels.get(col, {}))

        def by_level(s: RangeStats) -> np.ndarray:
            got = s.levels.get(col, {})
            return np.array([got.get(lvl, 0.0) for lvl in levels] + [s.missing.get(col, 0.0)], dtype=np.float64)
        out[col] = {"kind": "categorical", "bands": len(levels) + 1, "partners": {
            name: psi(by_level(pool), by_level(s)) for name, s in partners.items()}}
    for item in out.values():
        item["readings"] = {name: psi_reading(v) for name, v in item["partners"].items()}
    return out
