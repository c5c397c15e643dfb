"""Federated WOE binning: per-bin good/bad counts from every partner, summed, merged into a
scorecard's bins — no pooled rows anywhere.

1. Each partner releases its training rows' counts split by label on the shared plan's cells
   (`labelled_bin_stats`): per numeric column the window's grid bins plus a missing cell, per
   categorical column the kept levels. This *is* round 0's release 2 of a scorecard run (the
   transform's histograms are the good + bad sums), so binning costs no extra release: under DP
   the cells are noised and charged as one Gaussian mechanism (`fedcredit.privacy.statistics.noisy_bins`).
2. The coordinator sums them (sums of partners' counts equal the pooled counts exactly without DP)
   and builds candidate bins: the grid bins grouped at the summed histogram's quantiles
   (`CANDIDATES` of about equal mass; under DP the coarse grid's own bins, each already wide).
3. `merge` chooses adjacent candidates to join so the information value is largest, subject to
   at most `max_bins` bins, each holding at least `min_bin_share` of the rows, and — where the
   scenario asks — a monotonic bad rate. It is an exact dynamic programme over the candidates
   (O(K³·max_bins)), the objective and constraints of optbinning's `OptimalBinning` (Navas-Palencia
   2020, arXiv:2001.08025), which solves them with a CP/MIP solver over pooled rows. We do not call
   optbinning at run time: its dependencies (OR-Tools, cvxpy, SCS, HiGHS: about 250 MB) are out of
   proportion, and fed aggregated counts as weighted rows its `min_bin_size` counts rows, not
   weights, so the minimum bin share is not enforced. It is the reference in tests and benchmarks.
   Categorical levels are ordered by WOE and then merged the same way (groups of adjacent levels).
   A missing cell with rows is its own bin.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from fedcredit.credit.errors import InputError
from fedcredit.credit.features import BIN_SIGNAL_SD, ColumnPlan, FeatureTransform, level_codes
from fedcredit.credit.statistics import MISSING, OTHER, BinStats, histogram_quantile
from fedcredit.credit.woe import ColumnBins, woe_iv

CANDIDATES = 20          # candidate bins per numeric column from exact statistics (5 % of rows each)
LEVEL_PRIOR_SD = 4.0     # under DP: prior rows (in noise sd of a level's count) shrinking a level's WOE to ordering it
RELIABLE_BIN_SD = 3.0    # under DP a scorecard bin must hold this many noise sd of its row count


def labelled_bin_stats(plan: ColumnPlan, features: pd.DataFrame, label: np.ndarray) -> BinStats:
    """One partner's release 2 for a scorecard run: counts split by label (good row 0, bad row 1)."""
    bad = np.asarray(label).astype(bool)
    hists, sums, cells = {}, {}, {}
    for col, grid in plan.grids.items():
        values = features[col].to_numpy(dtype=np.float64)
        ok = np.isfinite(values)
        idx = np.full(len(values), grid.bins, dtype=np.int64)
        idx[ok] = np.minimum((grid.unit(values[ok]) * grid.bins).astype(np.int64), grid.bins - 1)
        cells[col] = np.stack([np.bincount(idx[~bad], minlength=grid.bins + 1),
                               np.bincount(idx[bad], minlength=grid.bins + 1)]).astype(np.float64)
        hists[col] = cells[col][:, :-1].sum(axis=0)
        sums[col] = grid.moments(values[ok])
    for col, levels in plan.categorical.items():
        other = levels.index(OTHER) if OTHER in levels else len(levels) - 1
        codes = level_codes(features[col], levels, other, levels.index(MISSING) if MISSING in levels else other)
        cells[col] = np.stack([np.bincount(codes[~bad], minlength=len(levels)),
                               np.bincount(codes[bad], minlength=len(levels))]).astype(np.float64)
    return BinStats(hists, sums, cells)


def _iv_term(g: float, b: float, G: float, B: float) -> float:
    gs, bs = max(g, 0.5) / G, max(b, 0.5) / B
    return (gs - bs) * math.log(gs / bs)


def merge(good: np.ndarray, bad: np.ndarray, *, max_bins: int, min_count: float,
          monotonic: str | None = None, totals: tuple[float, float] | None = None, noise_sd: float = 0.0
          ) -> list[int]:
    """Boundaries [0, …, K] of the IV-maximising merge of K ordered candidates (good, bad counts):
    at most `max_bins` bins, each holding ≥ `min_count` rows, and with `monotonic` "ascending" /
    "descending" a bad rate that rises / falls from bin to bin ("auto": the better of the two).
    `totals` (G, B): the column's totals (default: these counts'). `noise_sd`: the noise sd on each
    candidate's good and bad count (DP); a bin's good and bad counts must then each stand
    RELIABLE_BIN_SD noise sd above zero, so no WOE is a ratio of noise. Always feasible (one bin)."""
    good, bad = np.clip(good, 0, None), np.clip(bad, 0, None)
    if monotonic == "auto":
        options = [merge(good, bad, max_bins=max_bins, min_count=min_count, monotonic=m, totals=totals,
                         noise_sd=noise_sd)
                   for m in ("ascending", "descending")]
        return max(options, key=lambda b: _total_iv(good, bad, b, totals))
    k = len(good)
    G, B = totals or (max(good.sum(), 1.0), max(bad.sum(), 1.0))
    cg, cb = np.concatenate([[0], np.cumsum(good)]), np.concatenate([[0], np.cumsum(bad)])

    def counts(j: int, i: int) -> tuple[float, float]:
        return cg[i] - cg[j], cb[i] - cb[j]

    def rate(j: int, i: int) -> float:
        g, b = counts(j, i)
        return b / (g + b) if g + b > 0 else 0.0

    ok = np.zeros((k + 1, k + 1), dtype=bool)
    iv = np.full((k + 1, k + 1), -np.inf)
    for j in range(k):
        for i in range(j + 1, k + 1):
            g, b = counts(j, i)
            floor = RELIABLE_BIN_SD * noise_sd * math.sqrt(i - j)
            if g + b >= min_count and min(g, b) >= floor:
                ok[j, i], iv[j, i] = True, _iv_term(g, b, G, B)
    # best[(j, i)] for n bins: the best IV of [0, i) in n bins whose last bin is [j, i)
    best = {(0, i): (iv[0, i], None) for i in range(1, k + 1) if ok[0, i]}
    layers = [best]
    for _ in range(1, max_bins):
        nxt: dict[tuple[int, int], tuple[float, tuple[int, int] | None]] = {}
        for (h, j), (value, _) in layers[-1].items():
            for i in range(j + 1, k + 1):
                if not ok[j, i]:
                    continue
                if monotonic == "ascending" and rate(j, i) < rate(h, j):
                    continue
                if monotonic == "descending" and rate(j, i) > rate(h, j):
                    continue
                cand = value + iv[j, i]
                if cand > nxt.get((j, i), (-np.inf, None))[0]:
                    nxt[(j, i)] = (cand, (h, j))
        if not nxt:
            break
        layers.append(nxt)
    ends = [(n, key, v[0]) for n, layer in enumerate(layers) for key, v in layer.items() if key[1] == k]
    if not ends:
        return [0, k]
    n, key, _ = max(ends, key=lambda e: (e[2], -e[0]))
    bounds = [k]
    while key is not None:
        bounds.append(key[0])
        key = layers[n][key][1]
        n -= 1
    return sorted(set(bounds))


def _total_iv(good: np.ndarray, bad: np.ndarray, bounds: list[int], totals: tuple[float, float] | None) -> float:
    G, B = totals or (max(good.sum(), 1.0), max(bad.sum(), 1.0))
    return sum(_iv_term(good[a:b].sum(), bad[a:b].sum(), G, B) for a, b in zip(bounds[:-1], bounds[1:]))


def _candidates(hist: np.ndarray, edges: np.ndarray, private: bool) -> list[int]:
    """Grid bin boundaries (indices into `edges`) of the candidate bins of a numeric column."""
    if private:
        return list(range(len(hist) + 1))
    cuts = {0, len(hist)}
    for q in np.arange(1, CANDIDATES) / CANDIDATES:
        x = histogram_quantile(hist, edges, q)
        if np.isfinite(x):
            cuts.add(int(np.clip(np.searchsorted(edges, x, side="left"), 0, len(hist))))
    return sorted(cuts)


def fit_binning(plan: ColumnPlan, bins: BinStats, transform: FeatureTransform, *, max_bins: int,
                min_bin_share: float, monotonic: Mapping[str, str], noise_sd: float = 0.0) -> dict[str, ColumnBins]:
    """Bins of every characteristic the transform keeps, from the summed labelled release 2.
    `noise_sd`: sd of the noise on each summed cell (0: exact). Raises InputError when the release
    holds no labelled counts (not a scorecard run's)."""
    if not bins.by_label:
        raise InputError("the statistics hold no counts split by label: binning needs a scorecard run's "
                         "release 2 ([federation] model = \"scorecard\")", source="scorecard binning")
    private = noise_sd > 0
    out: dict[str, ColumnBins] = {}
    for col in transform.numeric:
        cells = np.clip(bins.by_label[col], 0, None)
        hist = cells[:, :-1].sum(axis=0)
        edges = plan.grids[col].edges
        cuts = _candidates(hist, edges, private)
        good = np.add.reduceat(cells[0, :-1], cuts[:-1])
        bad = np.add.reduceat(cells[1, :-1], cuts[:-1])
        miss = cells[:, -1]
        has_missing = miss.sum() > (BIN_SIGNAL_SD * noise_sd * math.sqrt(2) if private else 0.0)
        totals = (good.sum() + (miss[0] if has_missing else 0), bad.sum() + (miss[1] if has_missing else 0))
        n_all = sum(totals)
        bounds = merge(good, bad, max_bins=max_bins, min_count=min_bin_share * n_all,
                       monotonic=monotonic.get(col), totals=(max(totals[0], 1.0), max(totals[1], 1.0)),
                       noise_sd=noise_sd if private else 0.0)
        g = [float(good[a:b].sum()) for a, b in zip(bounds[:-1], bounds[1:])]
        b_ = [float(bad[a:b].sum()) for a, b in zip(bounds[:-1], bounds[1:])]
        splits = tuple(float(edges[cuts[i]]) for i in bounds[1:-1])
        share = np.cumsum(np.add(g, b_)) / max(sum(g) + sum(b_), 1.0)
        median_bin = int(np.searchsorted(share, 0.5))
        if has_missing:
            g.append(float(miss[0]))
            b_.append(float(miss[1]))
        out[col] = ColumnBins(col, "numeric", tuple(g), tuple(b_), splits, (), bool(has_missing),
                              min(median_bin, len(splits)), monotonic.get(col))
    for col, levels in transform.categorical.items():
        cells = np.clip(bins.by_label[col], 0, None)
        # order levels by WOE; under DP shrunk towards the column's average (prior rows = the noise a
        # level's count carries), so a level lost in the noise sits mid-way, not at an extreme
        prior = LEVEL_PRIOR_SD * noise_sd * math.sqrt(2) if private else 0.0
        G, B = max(cells[0].sum(), 1.0), max(cells[1].sum(), 1.0)
        woe, _ = woe_iv(cells[0] + prior * G / (G + B), cells[1] + prior * B / (G + B))
        empty = cells.sum(axis=0) <= 0
        order = sorted(range(len(levels)), key=lambda i: (0.0 if empty[i] else woe[i], i))
        good, bad = cells[0, order], cells[1, order]
        bounds = merge(good, bad, max_bins=max_bins, min_count=min_bin_share * cells.sum(), noise_sd=noise_sd)
        groups = tuple(tuple(levels[order[i]] for i in range(a, b)) for a, b in zip(bounds[:-1], bounds[1:]))
        out[col] = ColumnBins(col, "categorical", tuple(float(good[a:b].sum()) for a, b in zip(bounds[:-1], bounds[1:])),
                              tuple(float(bad[a:b].sum()) for a, b in zip(bounds[:-1], bounds[1:])), (), groups)
    return out


def too_few_rows_per_bin(rows: float, cell_sd: float, *, min_bin_share: float, noise_multiplier: float) -> str:
    """"" if the smallest bin the merge may keep (`min_bin_share` of `rows`) stands RELIABLE_BIN_SD
    noise sd above zero, else the refusal. `cell_sd`: the sd of the summed noise on one labelled
    cell; a bin's row count sums at least a good and a bad cell, noise sd ≥ `cell_sd` · √2."""
    floor = RELIABLE_BIN_SD * cell_sd * math.sqrt(2)
    smallest = min_bin_share * rows
    if smallest >= floor:
        return ""
    return (f"too few rows per scorecard bin for the noise of the private statistics: the smallest bin "
            f"(min_bin_share {min_bin_share:g} of about {rows:,.0f} training rows ≈ {smallest:,.0f} rows) must "
            f"hold {RELIABLE_BIN_SD:g} noise sd (≈ {floor:,.0f} rows); raise [scorecard] min_bin_share to at least "
            f"{floor / max(rows, 1):.3g}, add rows (about {floor / max(min_bin_share, 1e-12):,.0f} needed), or lower "
            f"stats_noise_multiplier from {noise_multiplier:g}")
