"""Additive column statistics a partner releases instead of rows (round 0 of a federation).

Two releases, so the shared transform never depends on a column's units or offset:

1. `RangeStats` — where each numeric column lives, on a scale-free *magnitude grid*: bins by
   sign and by fractions of a decade of |x| from 1e-40 to 1e40, plus one bin for 0. It also
   holds the row count, the number of bad rows, missing counts, categorical level counts,
   the label's value codes and — in exact (non-private) statistics only — each column's
   minimum and maximum.
2. `BinStats` — a histogram of each numeric column on the window the coordinator chose from
   the summed range statistics (`fedcredit.credit.features.ColumnPlan`), fine (exact) or coarse
   (private), so a column in thousandths, in epoch milliseconds or in billions is resolved
   alike.

Both add up across partners: the sum equals the statistics of the pooled rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from fedcredit.credit.schema import DatasetSpec

DECADES = 40                 # the magnitude grid spans 1e-40 … 1e40 on each side of zero
EXACT_PER_DECADE = 10        # bins per decade: exact statistics (26 % wide) …
PRIVATE_PER_DECADE = 2       # … private statistics (fewer, fuller bins stand above the noise)
OTHER, MISSING = "__other__", "__missing__"


# ---- the magnitude grid ----------------------------------------------------------------------

def magnitude_bins(per_decade: int) -> int:
    return 2 * (2 * DECADES * per_decade) + 1


def magnitude_index(x: np.ndarray, per_decade: int) -> np.ndarray:
    """Bin of each finite value: negatives (most negative first), zero, positives ascending."""
    side = 2 * DECADES * per_decade
    mag = np.abs(x)
    tiny = mag < 10.0 ** -DECADES
    with np.errstate(divide="ignore"):
        k = np.floor((np.log10(np.where(tiny, 1.0, mag)) + DECADES) * per_decade).astype(np.int64)
    k = np.clip(k, 0, side - 1)
    return np.where(tiny, side, np.where(x > 0, side + 1 + k, side - 1 - k))


def magnitude_edges(per_decade: int) -> np.ndarray:
    """Bin edges in raw units, ascending (len bins + 1); the zero bin is [-1e-40, 1e-40]."""
    pos = 10.0 ** (np.arange(2 * DECADES * per_decade + 1) / per_decade - DECADES)
    return np.concatenate([-pos[::-1], pos])


@dataclass
class RangeStats:
    """Release 1 of round 0 (additive). Counts are floats so noised statistics fit too."""

    rows: float = 0.0
    bad: float = 0.0
    missing: dict[str, float] = field(default_factory=dict)
    magnitudes: dict[str, np.ndarray] = field(default_factory=dict)    # numeric: counts on the magnitude grid
    levels: dict[str, dict[str, float]] = field(default_factory=dict)  # categorical: level → count
    extremes: dict[str, tuple[float, float]] = field(default_factory=dict)  # exact only: (min, max)
    label_values: tuple[str, ...] = ()
    per_decade: int = EXACT_PER_DECADE

    @classmethod
    def from_frame(cls, features: pd.DataFrame, label: np.ndarray, spec: DatasetSpec, *,
                   per_decade: int = EXACT_PER_DECADE, extremes: bool = True,
                   label_values: tuple[str, ...] = ()) -> RangeStats:
        stats = cls(rows=float(len(features)), bad=float(np.sum(label)), label_values=tuple(label_values),
                    per_decade=per_decade)
        bins = magnitude_bins(per_decade)
        for col in spec.numeric:
            values = features[col].to_numpy(dtype=np.float64)
            observed = values[np.isfinite(values)]
            stats.missing[col] = float(len(values) - len(observed))
            stats.magnitudes[col] = np.bincount(magnitude_index(observed, per_decade),
                                                minlength=bins).astype(np.float64)
            if extremes and len(observed):
                stats.extremes[col] = (float(observed.min()), float(observed.max()))
        for col in spec.categorical:
            series = features[col]
            stats.missing[col] = float(series.isna().sum())
            counts = {str(k): float(v) for k, v in series.dropna().value_counts().items()}
            if col in spec.levels:  # a public code list: count exactly those levels, the rest as OTHER
                declared = spec.levels[col]
                counts = {**{lvl: counts.get(lvl, 0.0) for lvl in declared},
                          OTHER: sum(n for lvl, n in counts.items() if lvl not in declared)}
            stats.levels[col] = counts
        return stats

    def coarsened(self, per_decade: int) -> RangeStats:
        """The same counts on a coarser magnitude grid (`per_decade` must divide this grid's): a fine
        bin lies inside exactly one coarse bin, since both grids' edges are 10^(k / per_decade)."""
        if per_decade == self.per_decade:
            return self
        if per_decade > self.per_decade or self.per_decade % per_decade:
            raise ValueError(f"a grid of {self.per_decade} bins per decade cannot be coarsened to {per_decade}")
        factor = self.per_decade // per_decade
        fine_side, coarse_side = 2 * DECADES * self.per_decade, 2 * DECADES * per_decade
        index = np.arange(magnitude_bins(self.per_decade))
        target = np.where(index > fine_side, coarse_side + 1 + (index - fine_side - 1) // factor,
                          np.where(index < fine_side, coarse_side - 1 - (fine_side - 1 - index) // factor, coarse_side))
        size = magnitude_bins(per_decade)
        magnitudes = {c: np.bincount(target, weights=h, minlength=size) for c, h in self.magnitudes.items()}
        return replace(self, magnitudes=magnitudes, per_decade=per_decade)

    def _observed(self, col: str) -> bool:
        """Whether this part may hold values of `col` (noised counts always may)."""
        hist = self.magnitudes.get(col)
        return hist is not None and bool(np.any(hist != 0))

    def __add__(self, other: RangeStats) -> RangeStats:
        """The sum of two partners' statistics. A partner without DP bins on the fine grid, one with DP
        on the coarse grid: a mixed sum is on the coarse grid. Extremes are kept only for columns every
        part reports them for (a DP partner reports none: a window clipped to the others' extremes could
        cut its values off; a part with no value in the column does not count)."""
        if self.per_decade != other.per_decade:
            grid = min(self.per_decade, other.per_decade)
            return self.coarsened(grid) + other.coarsened(grid)
        levels = {}
        for col in self.levels.keys() | other.levels.keys():
            total = Counter(self.levels.get(col, {}))
            total.update(other.levels.get(col, {}))
            levels[col] = dict(total)
        extremes = {}
        for col in self.extremes.keys() | other.extremes.keys():
            if all(col in p.extremes or not p._observed(col) for p in (self, other)):
                pairs = [p.extremes[col] for p in (self, other) if col in p.extremes]
                extremes[col] = (min(a for a, _ in pairs), max(b for _, b in pairs))
        return RangeStats(
            rows=self.rows + other.rows, bad=self.bad + other.bad,
            missing=_add(self.missing, other.missing),
            magnitudes=_add(self.magnitudes, other.magnitudes),
            levels=levels, extremes=extremes,
            label_values=tuple(sorted(set(self.label_values) | set(other.label_values))),
            per_decade=self.per_decade,
        )

    @staticmethod
    def combine(parts: Iterable[RangeStats]) -> RangeStats:
        parts = list(parts)
        total = parts[0]
        for p in parts[1:]:
            total = total + p
        return total

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "bad": self.bad, "missing": dict(self.missing),
                "magnitudes": {c: _sparse(h) for c, h in self.magnitudes.items()},
                "levels": {c: dict(v) for c, v in self.levels.items()},
                "extremes": {c: list(v) for c, v in self.extremes.items()},
                "label_values": list(self.label_values), "per_decade": self.per_decade}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> RangeStats:
        bins = magnitude_bins(int(raw["per_decade"]))
        return cls(rows=float(raw["rows"]), bad=float(raw["bad"]), missing=dict(raw["missing"]),
                   magnitudes={c: _dense(h, bins) for c, h in raw["magnitudes"].items()},
                   levels={c: dict(v) for c, v in raw["levels"].items()},
                   extremes={c: (float(v[0]), float(v[1])) for c, v in raw["extremes"].items()},
                   label_values=tuple(raw["label_values"]), per_decade=int(raw["per_decade"]))


@dataclass
class BinStats:
    """Release 2 of round 0 (additive): each planned numeric column's histogram on its window,
    and [Σu, Σu²] of its values in the window's units u ∈ [0, 1].

    A scorecard run releases the counts split by label instead (`by_label`, shape (2, cells): good
    row 0, bad row 1): per numeric column its window's bins then a missing cell, per categorical
    column the plan's kept levels (`fedcredit.credit.binning.labelled_bin_stats`); its histograms are
    then the good + bad counts of the observed cells."""

    histograms: dict[str, np.ndarray] = field(default_factory=dict)
    sums: dict[str, np.ndarray] = field(default_factory=dict)
    by_label: dict[str, np.ndarray] = field(default_factory=dict)

    def __add__(self, other: BinStats) -> BinStats:
        return BinStats(_add(self.histograms, other.histograms), _add(self.sums, other.sums),
                        _add(self.by_label, other.by_label))

    @staticmethod
    def combine(parts: Iterable[BinStats]) -> BinStats:
        total = BinStats()
        for p in parts:
            total = total + p
        return total

    def to_dict(self) -> dict[str, Any]:
        return {"histograms": {c: _sparse(h) for c, h in self.histograms.items()},
                "sums": {c: [float(v) for v in s] for c, s in self.sums.items()},
                **({"by_label": {c: np.asarray(v).tolist() for c, v in self.by_label.items()}} if self.by_label else {})}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> BinStats:
        return cls({c: _dense(h, int(h["size"])) for c, h in raw["histograms"].items()},
                   {c: np.asarray(s, dtype=np.float64) for c, s in raw.get("sums", {}).items()},
                   {c: np.asarray(v, dtype=np.float64).reshape(2, -1) for c, v in raw.get("by_label", {}).items()})


def _add(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (a[k] + b[k]) if k in a and k in b else (a[k] if k in a else b[k]) for k in a.keys() | b.keys()}


def _sparse(hist: np.ndarray) -> dict[str, Any]:
    nz = np.flatnonzero(hist)
    return {"size": int(len(hist)), "bins": nz.tolist(), "counts": hist[nz].tolist()}


def _dense(raw: Mapping[str, Any], size: int) -> np.ndarray:
    hist = np.zeros(size)
    hist[np.asarray(raw["bins"], dtype=np.int64)] = raw["counts"]
    return hist


def histogram_quantile(hist: np.ndarray, edges: np.ndarray, q: float, *, geometric: bool = False) -> float:
    """The q-quantile of a histogram with these edges (negative counts count as 0),
    interpolating linearly inside a bin — or log-uniformly (`geometric`, magnitude grid)."""
    counts = np.clip(hist, 0, None)
    total = counts.sum()
    if total <= 0:
        return float("nan")
    cum = np.cumsum(counts)
    i = min(int(np.searchsorted(cum, q * total, side="left")), len(counts) - 1)
    while counts[i] <= 0 and i + 1 < len(counts):   # land on a bin that holds mass
        i += 1
    before = cum[i - 1] if i > 0 else 0.0
    frac = float(np.clip((q * total - before) / counts[i], 0.0, 1.0))
    lo, hi = edges[i], edges[i + 1]
    if geometric and lo * hi > 0:
        a, b = (lo, hi) if lo > 0 else (-hi, -lo)   # |x| bounds, ascending
        return float(lo * (hi / lo) ** frac) if lo > 0 else float(-b * (a / b) ** frac)
    return float(lo + frac * (hi - lo))
