"""The shared transform, fitted from federated statistics (never rows), independent of units.

Round 0 has two releases (see `fedcredit.credit.statistics`). From the summed `RangeStats` the
coordinator makes a `ColumnPlan`: for each numeric column a window that holds its bulk
and a grid of bins on it, the categorical levels to keep, and the columns it must drop
(no values, or constant — each with the reason). From the summed `BinStats` on those
windows it fits the `FeatureTransform`: per numeric column

    x (raw units) → missing: median → clip to [low, high] (0.5 % / 99.5 % quantiles)
      → if right-skewed: t = log1p((x − low) / scale) → (t − mean) / std

Every step is defined by quantiles and differences of quantiles, so multiplying a
column by any a > 0 or adding any b gives the same transformed values up to the bin
resolution (a column in thousandths, in percent, or in epoch milliseconds alike). The
log decision uses Bowley's quantile skewness (Bowley 1901; Kenney & Keeping 1962,
§7.11): (q95 + q05 − 2·q50) / (q95 − q05) > BOWLEY_FOR_LOG.
Categorical columns are one-hot over the kept levels + OTHER (+ MISSING).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from fedcredit.credit.schema import DatasetSpec
from fedcredit.credit.statistics import (
    MISSING,
    OTHER,
    BinStats,
    RangeStats,
    histogram_quantile,
    magnitude_edges,
)
from fedcredit.credit.woe import BinnedEncoding

EXACT_BINS = 2048           # bins per window: exact statistics …
PRIVATE_BINS = 16           # … private statistics (noise per bin is fixed: fewer bins, more signal)
WINDOW_QUANTILES = (0.001, 0.999)
LOW_QUANTILE, HIGH_QUANTILE = 0.005, 0.995
BOWLEY_FOR_LOG = 0.3        # ≈ moment skewness 1 for a lognormal
MIN_LEVEL_COUNT = 5         # rarer categorical levels fold into OTHER
# Private statistics: a summed noisy count "stands above the noise" beyond this many noise sd
RANGE_SIGNAL_SD = 5.0       # release 1 has hundreds of bins per column: a false bin must be rare
BIN_SIGNAL_SD = 4.0         # release 2
WIDEN_SIGNAL_SD = 2.0       # a window's neighbouring magnitude bin likely holds its tail

__all__ = ["ColumnPlan", "FeatureTransform", "NumericGrid", "NumericRule", "MISSING", "OTHER"]


@dataclass(frozen=True)
class NumericGrid:
    """Where release 2 bins a numeric column: `bins` bins on [lo, hi] (raw units), linear, or
    linear in log1p((x − lo) / scale) when `log_spaced`; values outside go to the end bins."""

    lo: float
    hi: float
    bins: int
    log_spaced: bool = False
    scale: float = 1.0

    def _g(self, x: np.ndarray) -> np.ndarray:
        return np.log1p((x - self.lo) / self.scale) if self.log_spaced else x

    def _g_inv(self, g: np.ndarray) -> np.ndarray:
        return self.lo + self.scale * np.expm1(g) if self.log_spaced else g

    @property
    def edges(self) -> np.ndarray:
        """Bin edges in raw units, ascending."""
        lo, hi = self._g(np.float64(self.lo)), self._g(np.float64(self.hi))
        return self._g_inv(np.linspace(lo, hi, self.bins + 1))

    def unit(self, values: np.ndarray) -> np.ndarray:
        """Values clipped to the window, in grid units scaled to [0, 1]."""
        g = self._g(np.clip(values, self.lo, self.hi))
        lo, hi = self._g(np.float64(self.lo)), self._g(np.float64(self.hi))
        return np.clip((g - lo) / (hi - lo), 0.0, 1.0)

    def from_unit(self, u: np.ndarray | float) -> np.ndarray:
        lo, hi = self._g(np.float64(self.lo)), self._g(np.float64(self.hi))
        return lo + np.asarray(u) * (hi - lo)

    def histogram(self, values: np.ndarray) -> np.ndarray:
        idx = np.minimum((self.unit(values) * self.bins).astype(np.int64), self.bins - 1)
        return np.bincount(idx, minlength=self.bins).astype(np.float64)

    def moments(self, values: np.ndarray) -> np.ndarray:
        """[Σu, Σu²] of the values in grid units u ∈ [0, 1] (each row adds at most 1 to each)."""
        u = self.unit(values)
        return np.array([u.sum(), (u * u).sum()])


@dataclass(frozen=True)
class ColumnPlan:
    """The coordinator's plan after release 1: numeric windows, kept levels, dropped columns."""

    grids: dict[str, NumericGrid]
    categorical: dict[str, tuple[str, ...]]
    indicators: tuple[str, ...]             # columns that get a missing indicator
    dropped: dict[str, str] = field(default_factory=dict)   # column → why
    observed: dict[str, float] = field(default_factory=dict)   # rows with a value, per planned column

    @classmethod
    def fit(cls, stats: RangeStats, spec: DatasetSpec, *, noise_sd: float = 0.0) -> ColumnPlan:
        """Plan from summed range statistics; `noise_sd` is the standard deviation of the noise on
        each summed count (0: exact statistics). Noisy counts under RANGE_SIGNAL_SD of it are empty."""
        private = noise_sd > 0
        min_count = RANGE_SIGNAL_SD * noise_sd
        grids: dict[str, NumericGrid] = {}
        dropped: dict[str, str] = {}
        edges = magnitude_edges(stats.per_decade)
        for col in spec.numeric:
            raw = stats.magnitudes[col]
            hist = np.where(raw > min_count, raw, 0.0)
            if hist.sum() <= 0:
                dropped[col] = ("no observed value stands above the noise of the private statistics" if private
                                else "every value is missing")
                continue
            extremes = stats.extremes.get(col)
            if extremes is not None and extremes[0] == extremes[1]:
                dropped[col] = f"constant: every observed value is {extremes[0]:g}"
                continue
            occupied = np.flatnonzero(hist)
            if private and len(occupied) == 1 and edges[occupied[0]] * edges[occupied[0] + 1] <= 0:
                dropped[col] = "constant at the resolution of private statistics: every value is 0"
                continue
            q_lo, q_hi = (histogram_quantile(hist, edges, q, geometric=True) for q in WINDOW_QUANTILES)
            lo = edges[np.searchsorted(edges, q_lo, side="right") - 1]
            hi = edges[min(np.searchsorted(edges, q_hi, side="left"), len(edges) - 1)]
            if hi <= lo:
                hi = edges[min(np.searchsorted(edges, lo, side="right"), len(edges) - 1)]
            if extremes is not None:
                lo, hi = max(lo, extremes[0]), min(hi, extremes[1])
            grid = NumericGrid(float(lo), float(hi), EXACT_BINS)
            if private:   # a neighbour under the threshold may still hold the tail: take it when it likely does
                i, j = np.searchsorted(edges, lo, side="left"), np.searchsorted(edges, hi, side="left")
                if i > 0 and raw[i - 1] > WIDEN_SIGNAL_SD * noise_sd:
                    lo = edges[i - 1]
                if j < len(raw) and raw[j] > WIDEN_SIGNAL_SD * noise_sd:
                    hi = edges[j + 1]
                q05, q50, q95 = (histogram_quantile(hist, edges, q, geometric=True) for q in (0.05, 0.5, 0.95))
                skewed = _bowley(q05, q50, q95) > BOWLEY_FOR_LOG if spec.log is None else col in spec.log
                grid = NumericGrid(float(lo), float(hi), PRIVATE_BINS, skewed,
                                   _log_scale(lo, hi, [q50, q95]) if skewed else 1.0)
            grids[col] = grid
        categorical: dict[str, tuple[str, ...]] = {}
        for col in spec.categorical:
            counts = stats.levels.get(col, {})
            kept = sorted((lvl for lvl, n in counts.items() if n >= max(MIN_LEVEL_COUNT, min_count) and lvl != OTHER),
                          key=lambda lvl: (-counts[lvl], lvl))
            categorical[col] = tuple(kept) + (OTHER,) + ((MISSING,) if stats.missing.get(col, 0) > min_count else ())
        indicators = tuple(c for c in spec.numeric if c in grids and stats.missing.get(c, 0) > min_count)
        observed = {c: float(stats.rows - stats.missing.get(c, 0.0)) for c in grids}
        return cls(grids, categorical, indicators, dropped, observed)

    def bin_stats(self, features: pd.DataFrame) -> BinStats:
        """Release 2 of one partner's rows: each planned column's histogram on its grid, and the
        sums of its values and squares in grid units."""
        hists, sums = {}, {}
        for col, grid in self.grids.items():
            values = features[col].to_numpy(dtype=np.float64)
            values = values[np.isfinite(values)]
            hists[col], sums[col] = grid.histogram(values), grid.moments(values)
        return BinStats(hists, sums)

    def to_dict(self) -> dict[str, Any]:
        return {"grids": {c: vars(g).copy() for c, g in self.grids.items()},
                "categorical": {c: list(v) for c, v in self.categorical.items()},
                "indicators": list(self.indicators), "dropped": dict(self.dropped), "observed": dict(self.observed)}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ColumnPlan:
        return cls({c: NumericGrid(**g) for c, g in raw["grids"].items()},
                   {c: tuple(v) for c, v in raw["categorical"].items()}, tuple(raw["indicators"]),
                   dict(raw["dropped"]), dict(raw.get("observed", {})))


def _bowley(q05: float, q50: float, q95: float) -> float:
    spread = q95 - q05
    return (q95 + q05 - 2 * q50) / spread if spread > 0 else 0.0


def _log_scale(low: float, high: float, quantiles: list[float]) -> float:
    """The scale of log1p((x − low) / scale): the first quantile clearly above `low` (by 1 % of the
    range, so a point mass at `low` does not set it), minus `low` — a typical value maps to
    t ≈ log 2."""
    floor = max((high - low) * 1e-2, np.finfo(float).tiny)
    for q in quantiles:
        if q - low > floor:
            return float(q - low)
    return float(floor)


@dataclass(frozen=True)
class NumericRule:
    """NaN → median; clip to [low, high] (raw units); if `log`: t = log1p((x − shift) / scale)
    (`shift` None: `low`); then (t − mean) / std."""

    low: float
    high: float
    median: float
    log: bool
    mean: float
    std: float
    indicator: bool
    scale: float = 1.0
    shift: float | None = None

    def t(self, x: np.ndarray) -> np.ndarray:
        """Clipped (and logged) values before standardising."""
        x = np.clip(np.where(np.isnan(x), self.median, x), self.low, self.high)
        return np.log1p((x - (self.low if self.shift is None else self.shift)) / self.scale) if self.log else x

    def apply(self, x: np.ndarray) -> np.ndarray:
        return (self.t(x) - self.mean) / self.std


@dataclass(frozen=True)
class FeatureTransform:
    """The shared preprocessing every partner applies: one fitted rule per kept column; a scorecard's
    transform also holds its bins (`binned`), and then its design matrix is one column per binned
    characteristic (WOE, or points), not the rules' output."""

    numeric: dict[str, NumericRule]
    categorical: dict[str, tuple[str, ...]]
    dropped: dict[str, str] = field(default_factory=dict)    # column → why it is not used
    binned: BinnedEncoding | None = None

    @classmethod
    def fit(cls, plan: ColumnPlan, bins: BinStats, spec: DatasetSpec, *, noise_sd: float = 0.0) -> FeatureTransform:
        """Fit from the plan and the summed bin statistics; `noise_sd` is the standard deviation of
        the noise on each summed count (0: exact statistics).

        Coarse (private) statistics: see `_private_rule`. A column none of whose bins stands
        BIN_SIGNAL_SD noise deviations above zero, and whose values are too few to be spread over
        its bins, is dropped."""
        numeric: dict[str, NumericRule] = {}
        dropped = dict(plan.dropped)
        for col, grid in plan.grids.items():
            raw = bins.histograms[col]
            standing = np.count_nonzero(raw > BIN_SIGNAL_SD * noise_sd)
            spread_out = plan.observed.get(col, 0.0) > BIN_SIGNAL_SD * noise_sd * np.sqrt(grid.bins)
            if standing == 0 and not spread_out:
                dropped[col] = "no bin of its private statistics stands above the noise"
                continue
            if standing == 1 and grid.bins == PRIVATE_BINS and np.count_nonzero(raw > noise_sd) == 1:
                dropped[col] = "all its values fall in one bin of the private statistics (constant at that resolution)"
                continue
            private = grid.bins == PRIVATE_BINS
            numeric[col] = (_private_rule(col, grid, raw, bins.sums[col], spec, indicator=col in plan.indicators,
                                          observed=plan.observed.get(col, 0.0))
                            if private else _numeric_rule(col, grid, raw, spec, indicator=col in plan.indicators))
        categorical = {c: v for c, v in plan.categorical.items() if c not in dropped}
        return cls(numeric, categorical, dropped)

    @classmethod
    def fit_rows(cls, features: pd.DataFrame, spec: DatasetSpec) -> FeatureTransform:
        """The same method on rows held in one place (yardsticks, audits): exact statistics."""
        label = np.zeros(len(features))
        plan = ColumnPlan.fit(RangeStats.from_frame(features, label, spec), spec)
        return cls.fit(plan, plan.bin_stats(features), spec)

    @property
    def feature_names(self) -> list[str]:
        if self.binned is not None:
            return self.binned.columns
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

    def transform(self, features: pd.DataFrame | Mapping[str, Any]) -> np.ndarray:
        """Rows (n, columns) → float32 design matrix (n, n_features), in `feature_names` order.

        `features` is a DataFrame or any mapping of column → array-like (numeric columns as float,
        NaN missing; categorical as text, NaN/None missing). A level not among the kept ones is
        OTHER; a missing value is MISSING when that level is kept, else OTHER."""
        n = len(features) if isinstance(features, pd.DataFrame) else None
        if n is None:
            first = next(iter({**self.numeric, **self.categorical}), None)
            n = len(features[first]) if first is not None else 0
        if self.binned is not None:
            return self.binned.transform(features, n)
        out = np.zeros((n, self.n_features), dtype=np.float32)
        rows = np.arange(n)
        j = 0
        for col, rule in self.numeric.items():
            x = np.asarray(features[col], dtype=np.float64)
            out[:, j] = rule.apply(x)                 # computed in float64, stored as float32
            j += 1
            if rule.indicator:
                out[:, j] = np.isnan(x)
                j += 1
        for col, levels in self.categorical.items():
            other = levels.index(OTHER) if OTHER in levels else len(levels) - 1
            missing = levels.index(MISSING) if MISSING in levels else other
            codes = level_codes(features[col], levels, other, missing)
            out[rows, j + codes] = 1.0
            j += len(levels)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"numeric": {c: vars(r).copy() for c, r in self.numeric.items()},
                "categorical": {c: list(v) for c, v in self.categorical.items()},
                "dropped": dict(self.dropped), **({"binned": self.binned.to_dict()} if self.binned else {})}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> FeatureTransform:
        return cls(numeric={c: NumericRule(**r) for c, r in raw["numeric"].items()},
                   categorical={c: tuple(v) for c, v in raw["categorical"].items()},
                   dropped=dict(raw.get("dropped", {})),
                   binned=BinnedEncoding.from_dict(raw["binned"]) if raw.get("binned") else None)


def _is_missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def level_codes(values: Any, levels: tuple[str, ...], unknown: int, missing: int) -> np.ndarray:
    """Each value's position in `levels` (exact text), `unknown` for any other value, `missing` for a
    missing one (None or NaN); looked up once per distinct value. `values`: any array-like of text, or
    a pandas Categorical (a Series of one) of text."""
    lookup = {lvl: i for i, lvl in enumerate(levels)}
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
        values = values.array
    if isinstance(values, pd.Categorical):
        mapped = np.fromiter((lookup.get(c, unknown) for c in values.categories), dtype=np.int64,
                             count=len(values.categories))
        codes = np.asarray(values.codes, dtype=np.int64)
        return np.where(codes >= 0, mapped[np.maximum(codes, 0)] if len(mapped) else unknown, missing)
    values = np.asarray(values, dtype=object)
    if len(values) <= 64:
        return np.fromiter((missing if _is_missing(v) else lookup.get(v, unknown) for v in values),
                           dtype=np.int64, count=len(values))
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    mapped = np.fromiter((lookup.get(u, unknown) for u in uniques), dtype=np.int64, count=len(uniques))
    return np.where(codes >= 0, mapped[np.maximum(codes, 0)], missing) if len(uniques) else np.full(len(values), missing)


def _private_rule(col: str, grid: NumericGrid, raw: np.ndarray, sums: np.ndarray, spec: DatasetSpec, *,
                  indicator: bool, observed: float) -> NumericRule:
    """From coarse noisy statistics: clip to the window, log on the grid's own spacing when the
    window was planned skewed; centre from the noisy sum (unbiased, and exact for point masses
    such as a count column's zeros, which bin centres misplace); spread from the interquartile
    range of the noisy cumulative counts, IQR / 1.349 (a CDF point sums many bins, so its noise is
    small against the quartiles; a second moment of a narrow column in a wide window is not), or
    from the bins around that centre when one bin holds both quartiles (a point mass). The number of
    values is release 1's (rows − missing: two noisy counts), not the sum of sixteen noisy bins."""
    use_log = grid.log_spaced if spec.log is None else col in spec.log
    if use_log != grid.log_spaced:   # t is not the grid's own unit: fall back to the bins
        return _numeric_rule(col, grid, raw, spec, indicator=indicator)
    counts = np.clip(raw, 0, None)
    n = max(observed if observed > 0 else float(raw.sum()), float(counts.max()), 1.0)
    mean_u = float(np.clip(sums[0] / n, 0.0, 1.0))
    unit_edges = np.linspace(0.0, 1.0, grid.bins + 1)
    q25, q75 = (histogram_quantile(counts, unit_edges, q) for q in (0.25, 0.75))
    if int(q25 * grid.bins) != int(min(q75, 1 - 1e-12) * grid.bins):
        spread = (q75 - q25) / 1.349
    else:   # one bin (a point mass) holds both quartiles: the dispersion around the centre, bins at their midpoints
        mids = (unit_edges[:-1] + unit_edges[1:]) / 2
        spread = float(np.sqrt(counts @ (mids - mean_u) ** 2 / max(counts.sum(), 1.0)))
    width = float(grid.from_unit(1.0) - grid.from_unit(0.0))
    std = max(spread, 1.0 / (grid.bins * np.sqrt(12))) * width
    median = float(np.clip(histogram_quantile(counts, grid.edges, 0.5), grid.lo, grid.hi))
    return NumericRule(grid.lo, grid.hi, median, bool(use_log), float(grid.from_unit(mean_u)), std, indicator,
                       grid.scale if use_log else 1.0, grid.lo if use_log else None)


def _numeric_rule(col: str, grid: NumericGrid, raw: np.ndarray, spec: DatasetSpec, *,
                  indicator: bool) -> NumericRule:
    edges = grid.edges
    counts = np.clip(raw, 0, None)
    q = {p: histogram_quantile(counts, edges, p) for p in (LOW_QUANTILE, 0.05, 0.5, 0.75, 0.95, HIGH_QUANTILE)}
    low, high = q[LOW_QUANTILE], q[HIGH_QUANTILE]
    if high <= low:   # the bulk sits inside one bin: use that bin
        i = int(np.argmax(counts))
        low, high = float(edges[i]), float(edges[i + 1])
    use_log = col in spec.log if spec.log is not None else _bowley(q[0.05], q[0.5], q[0.95]) > BOWLEY_FOR_LOG
    shift = None
    if use_log and grid.log_spaced:   # coarse private bins: log on the grid's own spacing, so bins are even in t
        use_log, shift, scale = True, grid.lo, grid.scale
    else:
        scale = _log_scale(low, high, [q[0.5], q[0.75], q[0.95]]) if use_log else 1.0
    rule = NumericRule(float(low), float(high), float(np.clip(q[0.5], low, high)), bool(use_log), 0.0, 1.0,
                       indicator, float(scale), None if shift is None else float(shift))
    bounds = rule.t(edges)                       # bin edges in t (clipped to [low, high])
    t = (bounds[:-1] + bounds[1:]) / 2
    total = raw.sum() if raw.sum() > 0 else counts.sum()
    weights = raw / total
    mean = float(np.clip(weights @ t, t.min(), t.max()))
    std = float(np.sqrt(max(weights @ (t - mean) ** 2, 0.0)))
    if std <= 0:   # every count in one bin: its width is the resolution (never raw units)
        i = int(np.argmax(counts))
        std = max(float(bounds[i + 1] - bounds[i]) / np.sqrt(12), np.finfo(float).eps * max(abs(mean), 1.0))
    return replace(rule, mean=mean, std=std)
