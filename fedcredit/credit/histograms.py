"""Histogram gradient boosting across partners: bins, per-partner gradient histograms, splits.

Bins (`BinPlan`, made by the coordinator from round 0's summed statistics: no extra release): per
transform column, numeric columns get value bins cut at quantiles of the summed release-2 histogram on
the column's window (its grid edges are the only candidate cuts, so the private statistics' 16 bins
are the most a private run can have), mapped through the column's rule into design units; a column
with a missing indicator gets one more bin, its missing rows. A categorical column's bins are its
kept levels (its one-hot block). So each row falls in exactly ONE bin per column.

A partner (`gradient_histograms`) sums, for each open node of the tree being grown and each column
bin, its rows' clipped gradients g = p − y ∈ [−1, 1] and hessians h = p(1 − p) ∈ [0, 1/4] of the
logistic loss at the current ensemble (Friedman 2001; Chen & Guestrin 2016). The sums add up across
partners: the coordinator's sum is the histogram of the pooled rows. From a column's bins it derives
every design feature's split candidates exactly — a numeric value `x ≤ threshold` (missing rows sit
where the transform imputes them), the missing indicator, and each level of a one-hot block against
the rest — and picks the split of largest gain (Chen & Guestrin 2016, eq. 7):

    gain = ½ [G_L²/(H_L + λ) + G_R²/(H_R + λ) − G²/(H + λ)] − γ

Nodes are grown a level at a time, so a tree of depth D needs D histogram exchanges.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedcredit.credit.features import ColumnPlan, FeatureTransform
from fedcredit.credit.statistics import BinStats
from fedcredit.credit.trees import Tree, TreeEnsemble, TreeSettings

DEFAULT_BINS = 32
G_BOUND, H_BOUND = 1.0, 0.25          # |g| ≤ 1, 0 ≤ h ≤ 1/4 for the logistic loss
NOISE_FLOOR_SD = 2.0                  # under DP a split side needs its hessian this many noise sd above 0


class BinError(ValueError):
    """More bins asked than the shared transform's statistics provide."""


@dataclass(frozen=True)
class ColumnBins:
    """One transform column's bins. numeric: `thresholds` (float32 values, design units, ascending)
    cut len + 1 value bins, plus a missing bin when `indicator` ≥ 0 (the design position of its
    missing indicator); `impute_bin` is the value bin a missing row's imputed value falls in.
    categorical: `levels` bins, the one-hot block starting at `feature`."""

    column: str
    kind: str                    # "numeric" | "categorical"
    feature: int                 # design position of the value (numeric) or of the first level
    thresholds: tuple[float, ...] = ()
    indicator: int = -1
    impute_bin: int = 0
    levels: int = 0

    @property
    def bins(self) -> int:
        if self.kind == "categorical":
            return self.levels
        return len(self.thresholds) + 1 + (self.indicator >= 0)


@dataclass(frozen=True)
class BinPlan:
    """Every transform column's bins; a row's bins are one per column (`codes`)."""

    columns: tuple[ColumnBins, ...]

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum([c.bins for c in self.columns])]).astype(np.int64)

    @property
    def total_bins(self) -> int:
        return int(self.offsets[-1])

    def subset(self, columns: list[int] | None) -> BinPlan:
        """The plan of the columns at these positions (None: all): a tree grown on a column sample."""
        return self if columns is None else BinPlan(tuple(self.columns[i] for i in columns))

    def sample(self, settings: TreeSettings, rng: np.random.Generator) -> list[int] | None:
        """The column positions one tree uses ([gbdt] colsample; None: every column), in plan order."""
        k = settings.columns_per_tree(len(self.columns))
        return None if k >= len(self.columns) else sorted(int(i) for i in rng.choice(len(self.columns), k, replace=False))

    @classmethod
    def fit(cls, transform: FeatureTransform, plan: ColumnPlan, bins: BinStats, max_bins: int | None) -> BinPlan:
        """From the shared transform, round 0's plan and the summed release-2 histograms (post-processing).
        BinError when `max_bins` exceeds the bins a numeric column's statistics have."""
        names = transform.feature_names
        columns = []
        for col, rule in transform.numeric.items():
            grid = plan.grids[col]
            if max_bins is not None and max_bins > grid.bins:
                raise BinError(f"max_bins {max_bins} is more than the {grid.bins} bins the shared transform's "
                               f"statistics give column '{col}' (private statistics have {grid.bins} a column): "
                               f"use max_bins ≤ {grid.bins}, or leave it out")
            wanted = min(max_bins or DEFAULT_BINS, grid.bins)
            counts = np.clip(np.asarray(bins.histograms[col], np.float64), 0, None)
            interior = grid.edges[1:-1]
            if wanted < grid.bins and counts.sum() > 0:
                cdf = np.cumsum(counts)[:-1] / counts.sum()
                picks = {int(np.argmin(np.abs(cdf - q))) for q in np.arange(1, wanted) / wanted}
                interior = interior[sorted(picks)]
            design = np.unique(rule.apply(np.asarray(interior, np.float64)).astype(np.float32))
            feature = names.index(col)
            imputed = np.float32(rule.apply(np.array([np.nan]))[0])
            columns.append(ColumnBins(col, "numeric", feature, tuple(float(v) for v in design),
                                      feature + 1 if rule.indicator else -1,
                                      int(np.searchsorted(design, imputed, side="left"))))
        for col, levels in transform.categorical.items():
            columns.append(ColumnBins(col, "categorical", names.index(f"{col}={levels[0]}"), levels=len(levels)))
        return cls(tuple(columns))

    def codes(self, x: np.ndarray) -> np.ndarray:
        """(n, columns) each row's bin per column, from its design matrix x (n, features)."""
        out = np.empty((len(x), len(self.columns)), dtype=np.int64)
        for i, c in enumerate(self.columns):
            if c.kind == "categorical":
                out[:, i] = np.argmax(x[:, c.feature:c.feature + c.levels], axis=1)
                continue
            thresholds = np.asarray(c.thresholds, np.float32)
            code = np.searchsorted(thresholds, x[:, c.feature].astype(np.float32), side="left")
            if c.indicator >= 0:
                code = np.where(x[:, c.indicator] > 0.5, len(thresholds) + 1, code)
            out[:, i] = code
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"columns": [vars(c).copy() | {"thresholds": list(c.thresholds)} for c in self.columns]}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> BinPlan:
        return cls(tuple(ColumnBins(**{**c, "thresholds": tuple(float(v) for v in c["thresholds"])})
                         for c in raw["columns"]))


def logistic_gradients(ensemble: TreeEnsemble, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(g, h) of the log loss at the ensemble's logits, clipped to [−1, 1] and [0, 1/4] (their bounds
    for this loss: the clip is the DP sensitivity's guarantee, not a change of the maths)."""
    p = ensemble.predict_proba(x)
    return np.clip(p - y, -G_BOUND, G_BOUND), np.clip(p * (1 - p), 0.0, H_BOUND)


def gradient_histograms(codes: np.ndarray, node: np.ndarray, g: np.ndarray, h: np.ndarray, nodes: int,
                        plan: BinPlan) -> tuple[np.ndarray, np.ndarray]:
    """(G, H), each (nodes, total bins): per open node (`node` ∈ [0, nodes), −1 = a row in no open node)
    and column bin, the sums of g and h. One row adds to exactly one bin per column."""
    keep = node >= 0
    total = plan.total_bins
    index = (node[keep, None] * total + plan.offsets[None, :-1] + codes[keep]).ravel()
    width = len(plan.columns)
    size = nodes * total
    grad = np.bincount(index, weights=np.repeat(g[keep], width), minlength=size).reshape(nodes, total)
    hess = np.bincount(index, weights=np.repeat(h[keep], width), minlength=size).reshape(nodes, total)
    return grad, hess


@dataclass(frozen=True)
class Split:
    feature: int
    threshold: float
    gain: float
    left: tuple[float, float]     # (G, H)
    right: tuple[float, float]


def _score(g: np.ndarray, h: np.ndarray, l2: float, noise_var: Any = 0.0) -> np.ndarray:
    return (g * g - noise_var) / (np.maximum(h, 0.0) + l2 + 1e-12)


def node_totals(grad: np.ndarray, hess: np.ndarray, plan: BinPlan) -> tuple[float, float]:
    """A node's (G, H): every column's bins partition its rows, so each column sums to it; under DP
    the mean over the columns has the least noise."""
    cuts = plan.offsets
    gs = [grad[a:b].sum() for a, b in zip(cuts[:-1], cuts[1:])]
    hs = [hess[a:b].sum() for a, b in zip(cuts[:-1], cuts[1:])]
    return float(np.mean(gs)), float(np.mean(hs))


def best_split(grad: np.ndarray, hess: np.ndarray, plan: BinPlan, settings: TreeSettings, *,
               hess_sd: float = 0.0, grad_sd: float = 0.0) -> Split | None:
    """The split of largest gain of one node from its (total bins,) histograms, or None when no
    candidate has a positive gain above `min_split_gain` with enough hessian on both sides
    (min_child_weight, and under DP NOISE_FLOOR_SD × the noise sd of the side's sum).

    Under DP (`grad_sd` > 0, the noise sd of each summed gradient cell) each G² is replaced by its
    unbiased estimate G² − k·grad_sd² (k noised cells summed): otherwise sides summing many noisy cells
    look like better splits than they are."""
    best: Split | None = None
    var = grad_sd * grad_sd
    for c, a in zip(plan.columns, plan.offsets[:-1]):
        gc, hc = grad[a:a + c.bins], hess[a:a + c.bins]
        G, H = gc.sum(), hc.sum()
        # (feature, thresholds, GL, HL, cells summed into GL)
        candidates: list[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        if c.kind == "categorical":
            candidates.append((-1, np.full(c.levels, 0.5), G - gc, H - hc, np.full(c.levels, c.levels - 1)))
        else:
            values = len(c.thresholds) + 1
            gv, hv = gc[:values].copy(), hc[:values].copy()
            if c.indicator >= 0:
                gv[c.impute_bin] += gc[values]
                hv[c.impute_bin] += hc[values]
                candidates.append((c.indicator, np.array([0.5]), np.array([gc[:values].sum()]),
                                   np.array([hc[:values].sum()]), np.array([values])))
            if values > 1:
                cells = np.arange(1, values) + ((np.arange(values - 1) >= c.impute_bin) & (c.indicator >= 0))
                candidates.append((c.feature, np.asarray(c.thresholds), np.cumsum(gv)[:-1], np.cumsum(hv)[:-1],
                                   cells))
        floor = max(settings.min_child_weight, NOISE_FLOOR_SD * hess_sd * math.sqrt(c.bins))
        for feature, thresholds, gl, hl, cells in candidates:
            gr, hr = G - gl, H - hl
            gain = 0.5 * (_score(gl, hl, settings.l2, var * cells) + _score(gr, hr, settings.l2, var * (c.bins - cells))
                          - _score(np.array([G]), np.array([H]), settings.l2, var * c.bins)) - settings.min_split_gain
            gain = np.where((hl >= floor) & (hr >= floor), gain, -np.inf)
            i = int(np.argmax(gain))
            if gain[i] > 0 and (best is None or gain[i] > best.gain):
                best = Split(c.feature + i if feature < 0 else feature, float(thresholds[i]), float(gain[i]),
                             (float(gl[i]), float(hl[i])), (float(gr[i]), float(hr[i])))
    return best


def grow_level(tree: Tree, open_nodes: list[int], grad: np.ndarray, hess: np.ndarray, plan: BinPlan,
               settings: TreeSettings, *, depth: int, hess_sd: float = 0.0, grad_sd: float = 0.0) -> list[int]:
    """Split the open nodes of `tree` at `depth` from their summed histograms (rows of grad/hess in
    `open_nodes` order); set every node's value from its noised sums; → the next level's open nodes
    (none once `depth + 1` is the tree's maximum depth: the children are leaves)."""
    following: list[int] = []
    for k, node in enumerate(open_nodes):
        G, H = node_totals(grad[k], hess[k], plan)
        tree.value[node], tree.cover[node] = settings.leaf_value(G, H), H
        split = best_split(grad[k], hess[k], plan, settings, hess_sd=hess_sd, grad_sd=grad_sd)
        if split is None:
            continue
        left, right = tree.split(node, split.feature, split.threshold,
                                 (settings.leaf_value(*split.left), split.left[1]),
                                 (settings.leaf_value(*split.right), split.right[1]))
        if depth + 1 < settings.max_depth:
            following += [left, right]
    return following


def open_node_index(tree: Tree, open_nodes: list[int], x: np.ndarray) -> np.ndarray:
    """(n,) each row's position in `open_nodes`, or −1 when its leaf of the partial tree is not open."""
    lookup = np.full(len(tree.feature), -1, dtype=np.int64)
    lookup[np.asarray(open_nodes, dtype=np.int64)] = np.arange(len(open_nodes))
    return lookup[tree.apply(x)]


# (G, H) → (G', H', noise sd of each G cell, of each H cell)
Noise = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, float, float]]


def grow_ensemble(x: np.ndarray, y: np.ndarray, plan: BinPlan, settings: TreeSettings, *, base_score: float,
                  features: list[str], noise: Noise | None = None, seed: int = 0, forest: bool = False
                  ) -> TreeEnsemble:
    """The same trees grown on rows held in one place (yardsticks, tests): the federated loop with one
    partner. `noise` (None: exact) noises each level's histograms as a private partner would;
    `forest`: a random forest (every tree from the base score's gradients, averaged)."""
    all_codes = plan.codes(x)
    full = plan
    ensemble = TreeEnsemble(base_score, list(features), average=forest)
    start = TreeEnsemble(base_score, list(features))
    rng = np.random.default_rng(seed)
    for _ in range(settings.trees):
        g, h = logistic_gradients(start if forest else ensemble, x, y)
        keep = rng.random(len(y)) < settings.row_share if settings.row_share < 1 else np.ones(len(y), bool)
        chosen = full.sample(settings, rng)
        plan = full.subset(chosen)
        codes = all_codes if chosen is None else all_codes[:, chosen]
        tree, open_nodes = Tree(), [0]
        for level in range(settings.max_depth):
            if not open_nodes:
                break
            node = np.where(keep, open_node_index(tree, open_nodes, x), -1)
            grad, hess = gradient_histograms(codes, node, g, h, len(open_nodes), plan)
            grad_sd = hess_sd = 0.0
            if noise is not None:
                grad, hess, grad_sd, hess_sd = noise(grad, hess)
            open_nodes = grow_level(tree, open_nodes, grad, hess, plan, settings, depth=level, hess_sd=hess_sd,
                                    grad_sd=grad_sd)
        ensemble.trees.append(tree)
    return ensemble
