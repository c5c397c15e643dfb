"""Binned characteristics: a column's bins, their summed good/bad counts, weight of evidence (WOE)
and information value (IV), and the encoding that maps raw rows to one value per bin.

Conventions (Siddiqi 2006, ch. 6; the same sign as optbinning's binning tables):

    WOE_i = ln( (good_i / G) / (bad_i / B) )        G, B: the column's total good and bad counts
    IV    = Σ_i (good_i / G − bad_i / B) · WOE_i

so a bin of lower risk than average has WOE > 0. A count ≤ 0 (an empty bin, or a noised count
pushed below zero) is taken as half a row (`FLOOR`), so every WOE is finite.

Numeric bins are left-closed: bin i holds splits[i−1] ≤ x < splits[i] (the first bin is open below,
the last above); a missing value falls in the missing bin when the column has one, else in the
bin holding the training median. Categorical bins are groups of the levels the shared transform
keeps; a level the model did not see counts as OTHER, a missing value as MISSING when that level
is kept, else as OTHER (as `fedcredit.credit.features.FeatureTransform` encodes them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fedcredit.credit.statistics import MISSING, OTHER

FLOOR = 0.5


def woe_iv(good: np.ndarray, bad: np.ndarray) -> tuple[np.ndarray, float]:
    """(WOE per bin, IV) of bins with these good and bad counts (see the module docstring)."""
    g = np.maximum(np.asarray(good, dtype=np.float64), FLOOR)
    b = np.maximum(np.asarray(bad, dtype=np.float64), FLOOR)
    gs, bs = g / g.sum(), b / b.sum()
    woe = np.log(gs / bs)
    return woe, float(np.sum((gs - bs) * woe))


@dataclass(frozen=True)
class ColumnBins:
    """One characteristic's bins and their summed counts (good, bad per bin; numeric: the missing
    bin last when `has_missing`)."""

    column: str
    kind: str                                      # "numeric" | "categorical"
    good: tuple[float, ...]
    bad: tuple[float, ...]
    splits: tuple[float, ...] = ()                 # numeric: ascending, raw units
    groups: tuple[tuple[str, ...], ...] = ()       # categorical: the levels of each bin
    has_missing: bool = False
    median_bin: int = 0                            # numeric without a missing bin: where a missing value goes
    monotonic: str | None = None                   # the bad-rate trend the merge enforced, if any

    @property
    def woe(self) -> np.ndarray:
        return woe_iv(np.asarray(self.good), np.asarray(self.bad))[0]

    @property
    def iv(self) -> float:
        return woe_iv(np.asarray(self.good), np.asarray(self.bad))[1]

    @property
    def n_bins(self) -> int:
        return len(self.good)

    def labels(self) -> list[str]:
        """A readable name per bin: "[a, b)", "missing", or the levels joined by ", "."""
        if self.kind == "categorical":
            return [", ".join(_level_text(v) for v in g) for g in self.groups]
        edges = ["-inf", *(f"{s:.6g}" for s in self.splits), "inf"]
        out = [f"[{a}, {b})" for a, b in zip(edges[:-1], edges[1:])]
        return out + (["missing"] if self.has_missing else [])

    def index(self, values: Any) -> np.ndarray:
        """Bin of each value (int64, shape (n,)); see the module docstring for missing and unknown values."""
        if self.kind == "numeric":
            x = np.asarray(values, dtype=np.float64)
            idx = np.searchsorted(np.asarray(self.splits, dtype=np.float64), x, side="right")
            missing = len(self.splits) + 1 if self.has_missing else self.median_bin
            return np.where(np.isnan(x), missing, idx).astype(np.int64)
        lookup = {lvl: i for i, group in enumerate(self.groups) for lvl in group}
        other = lookup.get(OTHER, 0)
        missing = lookup.get(MISSING, other)
        if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
            values = values.astype(object)
        series = pd.Series(np.asarray(values, dtype=object))
        absent = series.isna().to_numpy()
        mapped = series.map(lookup).to_numpy(dtype=np.float64, na_value=np.nan)
        mapped = np.where(np.isnan(mapped), other, mapped)
        return np.where(absent, missing, mapped).astype(np.int64)

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "kind": self.kind, "good": list(self.good), "bad": list(self.bad),
                "splits": list(self.splits), "groups": [list(g) for g in self.groups],
                "has_missing": self.has_missing, "median_bin": self.median_bin, "monotonic": self.monotonic}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ColumnBins:
        return cls(str(raw["column"]), str(raw["kind"]), tuple(float(v) for v in raw["good"]),
                   tuple(float(v) for v in raw["bad"]), tuple(float(v) for v in raw["splits"]),
                   tuple(tuple(str(v) for v in g) for g in raw["groups"]), bool(raw["has_missing"]),
                   int(raw["median_bin"]), raw.get("monotonic"))


def _level_text(level: str) -> str:
    return {OTHER: "other", MISSING: "missing"}.get(level, level)


@dataclass(frozen=True)
class BinnedEncoding:
    """Raw rows → one value per characteristic (its bin's value): WOE for training ("woe"), a
    scorecard's points for scoring ("points"). Columns in `bins` order."""

    bins: dict[str, ColumnBins]
    values: dict[str, tuple[float, ...]]           # column → value per bin
    kind: str = "woe"

    @classmethod
    def woe(cls, bins: Mapping[str, ColumnBins]) -> BinnedEncoding:
        return cls(dict(bins), {c: tuple(float(v) for v in b.woe) for c, b in bins.items()}, "woe")

    @property
    def columns(self) -> list[str]:
        return list(self.bins)

    def transform(self, features: Any, n: int) -> np.ndarray:
        """(n, columns) float32: each row's bin value per characteristic."""
        out = np.zeros((n, len(self.bins)), dtype=np.float32)
        for j, (col, b) in enumerate(self.bins.items()):
            out[:, j] = np.asarray(self.values[col], dtype=np.float64)[b.index(features[col])]
        return out

    def best(self) -> np.ndarray:
        """The largest value of each characteristic (its best attainable points), `columns` order."""
        return np.asarray([max(self.values[c]) for c in self.bins], dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "bins": {c: b.to_dict() for c, b in self.bins.items()},
                "values": {c: list(v) for c, v in self.values.items()}}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> BinnedEncoding:
        return cls({c: ColumnBins.from_dict(b) for c, b in raw["bins"].items()},
                   {c: tuple(float(x) for x in v) for c, v in raw["values"].items()}, str(raw["kind"]))
