"""Federated preprocessing: partners send column statistics, never rows.

Each partner summarises its training rows as `ColumnStats` (missing counts, a fine
histogram of every numeric column on the signed-log scale, level counts of every
categorical column). Statistics add up across partners, so the server fits ONE
`FeatureTransform` from their sum — exactly what it would fit from the pooled rows —
and every partner applies that same transform.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from credit.schema import DatasetSpec

# Histogram grid on z = sign(x)·log1p(|x|): covers |x| up to e^24 ≈ 2.6e10 at 1 % resolution.
# Private statistics use a coarser grid (COARSE_BINS divides N_BINS, so grids merge).
Z_LIMIT = 24.0
N_BINS = 4800
COARSE_BINS = 96
Z_EDGES = np.linspace(-Z_LIMIT, Z_LIMIT, N_BINS + 1)


def z_edges(bins: int) -> np.ndarray:
    return np.linspace(-Z_LIMIT, Z_LIMIT, bins + 1)


def coarsen(hist: np.ndarray, bins: int) -> np.ndarray:
    """Sum neighbouring bins of a finer histogram down to `bins` bins."""
    if len(hist) == bins:
        return hist
    if len(hist) % bins:
        raise ValueError(f"cannot merge a {len(hist)}-bin histogram into {bins} bins")
    return hist.reshape(bins, -1).sum(axis=1)
LOW_QUANTILE, HIGH_QUANTILE = 0.005, 0.995
SKEW_FOR_LOG = 1.0          # auto log: right tail heavier than this skewness
MIN_LEVEL_COUNT = 5         # rarer categorical levels fold into OTHER
OTHER, MISSING = "__other__", "__missing__"


def signed_log1p(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


def signed_expm1(z: np.ndarray) -> np.ndarray:
    return np.sign(z) * np.expm1(np.abs(z))


@dataclass
class ColumnStats:
    """Additive summary statistics of one partner's (or the federation's) rows."""

    rows: int = 0
    missing: dict[str, int] = field(default_factory=dict)
    histograms: dict[str, np.ndarray] = field(default_factory=dict)   # numeric: counts on Z_EDGES
    levels: dict[str, dict[str, int]] = field(default_factory=dict)   # categorical: level → count

    @classmethod
    def from_frame(cls, features: pd.DataFrame, spec: DatasetSpec, *, bins: int = N_BINS) -> ColumnStats:
        stats = cls(rows=len(features))
        edges = z_edges(bins)
        for col in spec.numeric:
            values = features[col].to_numpy(dtype=np.float64)
            observed = values[~np.isnan(values)]
            stats.missing[col] = int(len(values) - len(observed))
            z = np.clip(signed_log1p(observed), -Z_LIMIT, Z_LIMIT)
            stats.histograms[col] = np.histogram(z, bins=edges)[0].astype(np.float64)
        for col in spec.categorical:
            series = features[col]
            stats.missing[col] = int(series.isna().sum())
            counts = {str(k): int(v) for k, v in series.dropna().value_counts().items()}
            if col in spec.levels:  # a public code list: count exactly those levels, the rest as OTHER
                declared = spec.levels[col]
                counts = {**{lvl: counts.get(lvl, 0) for lvl in declared},
                          OTHER: sum(n for lvl, n in counts.items() if lvl not in declared)}
            stats.levels[col] = counts
        return stats

    def __add__(self, other: ColumnStats) -> ColumnStats:
        if not self.rows and not self.histograms and not self.levels:
            return other.copy()
        levels = {}
        for col in self.levels.keys() | other.levels.keys():
            total = Counter(self.levels.get(col, {}))
            total.update(other.levels.get(col, {}))
            levels[col] = dict(total)
        return ColumnStats(
            rows=self.rows + other.rows,
            missing={c: self.missing.get(c, 0) + other.missing.get(c, 0)
                     for c in self.missing.keys() | other.missing.keys()},
            histograms={c: _merge(self.histograms.get(c), other.histograms.get(c))
                        for c in self.histograms.keys() | other.histograms.keys()},
            levels=levels,
        )

    def copy(self) -> ColumnStats:
        return ColumnStats.from_dict(self.to_dict())

    @staticmethod
    def combine(parts: Iterable[ColumnStats]) -> ColumnStats:
        return sum(parts, ColumnStats())

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "missing": dict(self.missing),
            "histograms": {c: h.tolist() for c, h in self.histograms.items()},
            "levels": {c: dict(v) for c, v in self.levels.items()},
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ColumnStats:
        return cls(
            rows=raw["rows"],
            missing={k: v for k, v in raw["missing"].items()},
            histograms={c: np.asarray(h, dtype=np.float64) for c, h in raw["histograms"].items()},
            levels={c: dict(v) for c, v in raw["levels"].items()},
        )


def _merge(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray:
    if a is None or b is None:
        return (a if b is None else b).copy()
    bins = min(len(a), len(b))
    return coarsen(a, bins) + coarsen(b, bins)


def histogram_quantile(hist: np.ndarray, q: float) -> float:
    """The q-quantile on the z scale, interpolating linearly inside a bin."""
    counts = np.clip(hist, 0, None)
    total = counts.sum()
    if total <= 0:
        return 0.0
    edges = z_edges(len(counts))
    cum = np.cumsum(counts)
    target = q * total
    i = int(np.searchsorted(cum, target, side="left"))
    i = min(i, len(counts) - 1)
    before = cum[i - 1] if i > 0 else 0.0
    frac = (target - before) / counts[i] if counts[i] > 0 else 0.5
    return float(edges[i] + frac * (edges[i + 1] - edges[i]))


@dataclass(frozen=True)
class NumericRule:
    """clip to [low, high] (raw units) → optional signed log1p → (t - mean) / std; NaN → median."""

    low: float
    high: float
    median: float
    log: bool
    mean: float
    std: float
    indicator: bool


@dataclass(frozen=True)
class FeatureTransform:
    """The shared preprocessing every partner applies: one fitted rule per column."""

    numeric: dict[str, NumericRule]
    categorical: dict[str, tuple[str, ...]]

    @classmethod
    def fit(cls, stats: ColumnStats, spec: DatasetSpec, *, min_count: float = 0.0) -> FeatureTransform:
        """Fit from (summed) statistics; counts at or below `min_count` are treated as noise."""
        numeric: dict[str, NumericRule] = {}
        for col in spec.numeric:
            hist = np.clip(stats.histograms[col], 0, None)
            edges = z_edges(len(hist))
            centres = (edges[:-1] + edges[1:]) / 2
            z_lo, z_med, z_hi = (histogram_quantile(hist, q) for q in (LOW_QUANTILE, 0.5, HIGH_QUANTILE))
            low, median, high = (float(signed_expm1(np.float64(z))) for z in (z_lo, z_med, z_hi))
            raw = np.clip(signed_expm1(centres), low, high)
            weights = hist / max(hist.sum(), 1e-12)
            if spec.log is not None:
                use_log = col in spec.log
            else:
                mu = float(weights @ raw)
                sd = float(np.sqrt(max(weights @ (raw - mu) ** 2, 0.0)))
                skew = float(weights @ ((raw - mu) ** 3)) / sd**3 if sd > 0 else 0.0
                use_log = skew > SKEW_FOR_LOG
            t = signed_log1p(raw) if use_log else raw
            mean = float(weights @ t)
            std = float(np.sqrt(max(weights @ (t - mean) ** 2, 0.0)))
            numeric[col] = NumericRule(low, high, median, use_log, mean, std if std > 1e-12 else 1.0,
                                       indicator=stats.missing.get(col, 0) > min_count)
        categorical: dict[str, tuple[str, ...]] = {}
        for col in spec.categorical:
            counts = stats.levels.get(col, {})
            kept = sorted((lvl for lvl, n in counts.items() if n >= max(MIN_LEVEL_COUNT, min_count) and lvl != OTHER),
                          key=lambda lvl: (-counts[lvl], lvl))
            levels = tuple(kept) + (OTHER,) + ((MISSING,) if stats.missing.get(col, 0) > min_count else ())
            categorical[col] = levels
        return cls(numeric, categorical)

    @property
    def feature_names(self) -> list[str]:
        names: list[str] = []
        for col, rule in self.numeric.items():
            names.append(col)
            if rule.indicator:
                names.append(f"{col}{MISSING}")
        for col, levels in self.categorical.items():
            names.extend(f"{col}={lvl}" for lvl in levels)
        return names

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def transform(self, features: pd.DataFrame) -> np.ndarray:
        """Rows → float32 design matrix, in `feature_names` order."""
        blocks: list[np.ndarray] = []
        for col, r in self.numeric.items():
            x = features[col].to_numpy(dtype=np.float64)
            nan = np.isnan(x)
            x = np.clip(np.where(nan, r.median, x), r.low, r.high)
            t = signed_log1p(x) if r.log else x
            blocks.append(((t - r.mean) / r.std)[:, None])
            if r.indicator:
                blocks.append(nan.astype(np.float64)[:, None])
        for col, levels in self.categorical.items():
            series = features[col]
            known = pd.Categorical(series.where(series.isin(levels), OTHER)
                                   .where(series.notna(), MISSING if MISSING in levels else OTHER),
                                   categories=list(levels))
            onehot = np.zeros((len(series), len(levels)))
            onehot[np.arange(len(series)), known.codes] = 1.0
            blocks.append(onehot)
        if not blocks:
            return np.zeros((len(features), 0), dtype=np.float32)
        return np.hstack(blocks).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {
            "numeric": {c: vars(r).copy() for c, r in self.numeric.items()},
            "categorical": {c: list(v) for c, v in self.categorical.items()},
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> FeatureTransform:
        return cls(
            numeric={c: NumericRule(**r) for c, r in raw["numeric"].items()},
            categorical={c: tuple(v) for c, v in raw["categorical"].items()},
        )
