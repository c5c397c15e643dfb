"""What a training run already released about its populations, kept in the model artefact so a
partner can see when its applicants have moved (population stability, `fedcredit.scoring.drift`).

Nothing here is a new release of partner data: every count is a post-processing of what the
partners already sent the coordinator (and, under DP, noised and charged to their ledgers):

- the score distribution: the final model's evaluation histograms (each partner's held-out rows,
  by logit bin; under DP the coarse noised ones), summed over partners and over the label, on the
  coarse grid `PRIVATE_SCORE_EDGES` (half-logit bins and two open ends);
- each numeric column: round 0's release 2 (`BinStats`: its histogram on the window the coordinator
  chose; training rows), merged into at most `MAX_BINS` bins of about equal mass, plus its missing
  count from release 1;
- each categorical column: its level counts from release 1 folded onto the levels the transform
  keeps (`OTHER` takes the rest; `MISSING` the missing count).

Noised counts below zero are 0. The reference is a plain JSON-able dict (`to_dict`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from fedcredit.credit.features import ColumnPlan, FeatureTransform
from fedcredit.credit.metrics import PRIVATE_SCORE_EDGES, ScoreHistogram
from fedcredit.credit.statistics import MISSING, OTHER, BinStats, RangeStats

MAX_BINS = 10        # numeric reference bins (deciles where the statistics resolve them)
SOURCE = ("counts the partners already released in this run (round-0 statistics on their training rows; the "
          "final evaluation histograms on their held-out rows), post-processed: no new release of partner data")


def score_reference(evaluations: Iterable[ScoreHistogram]) -> dict[str, Any] | None:
    """The pooled score distribution of the final evaluation on the coarse logit grid (None: none released)."""
    parts = list(evaluations)
    if not parts:
        return None
    pooled = ScoreHistogram.combine(parts)
    if len(pooled.grid) != len(PRIVATE_SCORE_EDGES) or not np.array_equal(pooled.grid, PRIVATE_SCORE_EDGES):
        pooled = pooled.coarsen(PRIVATE_SCORE_EDGES)
    counts = np.clip(pooled.bad + pooled.good, 0.0, None)
    return {"edges": PRIVATE_SCORE_EDGES.tolist(), "counts": counts.tolist(), "noised": pooled.private,
            "rows": "the final model's scores on the partners' held-out rows (logit bins)"}


def _merge_bins(edges: np.ndarray, counts: np.ndarray, max_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Adjacent bins merged into at most `max_bins` of about equal mass (edges kept from the grid)."""
    total = counts.sum()
    if len(counts) <= max_bins or total <= 0:
        return edges, counts
    cum = np.cumsum(counts) / total
    cuts = sorted({int(np.searchsorted(cum, q, side="left")) + 1 for q in np.arange(1, max_bins) / max_bins})
    cuts = [c for c in cuts if 0 < c < len(counts)]
    bounds = [0, *cuts, len(counts)]
    merged = np.array([counts[a:b].sum() for a, b in zip(bounds[:-1], bounds[1:])])
    return edges[bounds], merged


def feature_reference(plan: ColumnPlan | None, ranges: RangeStats, bins: BinStats,
                      transform: FeatureTransform) -> dict[str, Any]:
    """Per used column: numeric {edges (raw units, outer ones open), counts, missing}; categorical {levels}."""
    out: dict[str, Any] = {}
    for col in transform.numeric:
        if plan is None or col not in plan.grids or col not in bins.histograms:
            continue
        counts = np.clip(np.asarray(bins.histograms[col], dtype=np.float64), 0.0, None)
        edges, merged = _merge_bins(plan.grids[col].edges, counts, MAX_BINS)
        out[col] = {"edges": [float(e) for e in edges], "counts": merged.tolist(),
                    "missing": max(float(ranges.missing.get(col, 0.0)), 0.0)}
    for col, kept in transform.categorical.items():
        released = ranges.levels.get(col, {})
        levels = {lvl: 0.0 for lvl in kept}
        fold = OTHER if OTHER in levels else None
        for lvl, n in released.items():
            target = lvl if lvl in levels else fold
            if target is not None:
                levels[target] += max(float(n), 0.0)
        if MISSING in levels:
            levels[MISSING] = max(float(ranges.missing.get(col, 0.0)), 0.0)
        out[col] = {"levels": levels}
    return out


MIN_EXACT_PARTNERS = 3   # below this, a pooled EXACT count tells a partner the others' (subtract its own)


def withheld_because(contributors: int, exact: list[str]) -> str | None:
    """Why the reference must not travel with the model to the partners, or None.

    Every partner receives the artefact. A pooled count minus a partner's own is what the others
    released: harmless under DP (post-processing of noised, charged counts), but without DP and with
    only two contributors it is the other partner's exact distribution."""
    if exact and contributors < MIN_EXACT_PARTNERS:
        return (f"not kept: {', '.join(exact)} released exact counts (no DP) and only {contributors} partner(s) "
                f"contributed; a partner could subtract its own from the pooled counts and read the other's "
                f"(kept from {MIN_EXACT_PARTNERS} partners, or when every partner's releases are noised)")
    return None


def reference(plan: ColumnPlan | None, ranges: RangeStats | None, bins: BinStats | None,
              transform: FeatureTransform, evaluations: Iterable[ScoreHistogram],
              *, noised: bool, withheld: str | None = None) -> dict[str, Any]:
    """The artefact's `metadata["reference"]`: score and feature distributions, and where they come
    from; `withheld` (a reason, `withheld_because`) keeps neither."""
    if withheld:
        return {"score": None, "features": {}, "noised": noised, "source": SOURCE, "withheld": withheld}
    features = (feature_reference(plan, ranges, bins, transform)
                if ranges is not None and bins is not None else {})
    return {"score": score_reference(evaluations), "features": features, "noised": noised, "source": SOURCE}


def design_means(ref: Mapping[str, Any] | None, transform: FeatureTransform) -> np.ndarray:
    """The reference point of each design-matrix column (`transform.feature_names` order): 0 for a
    standardised numeric column (its mean is the training mean by construction), the training
    share of missing values for an indicator and of each level for a one-hot column, from the
    released counts (0 where the artefact holds none)."""
    feats = (ref or {}).get("features", {})
    out: list[float] = []
    for col, rule in transform.numeric.items():
        out.append(0.0)
        if rule.indicator:
            item = feats.get(col)
            if item:
                present = float(np.sum(item["counts"]))
                total = present + float(item["missing"])
                out.append(float(item["missing"]) / total if total > 0 else 0.0)
            else:
                out.append(0.0)
    for col, levels in transform.categorical.items():
        counts = feats.get(col, {}).get("levels", {})
        total = float(sum(counts.values()))
        out.extend(float(counts.get(lvl, 0.0)) / total if total > 0 else 0.0 for lvl in levels)
    return np.asarray(out, dtype=np.float64)
