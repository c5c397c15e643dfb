"""Private gradient histograms for federated boosted trees (the Gaussian mechanism).

One release is one tree level: for every open node, every transform column and every bin of it, the
sums G of the rows' gradients and H of their hessians (`fedcredit.credit.histograms`). The open
nodes partition the rows and each row falls in one bin per column, so adding or removing one row
changes C cells of G by its g ∈ [−1, 1] and C cells of H by its h ∈ [0, 1/4] (C: the columns the level
releases — all, or the tree's public column sample, [gbdt] colsample): with H released scaled by
HESSIAN_SCALE, the L2 sensitivity of (G, s·H) is

    Δ = sqrt(C · (1 + (s/4)²))

and every cell of G gets N(0, (z·Δ)²) noise, every cell of H N(0, (z·Δ/s)²): ONE Gaussian mechanism
of noise multiplier z, charged as Release(z, 1.0, 1) on the training rows. A run of T trees of depth
D is T × D such mechanisms (composed by the accountant, `fedcredit.privacy.accountant`); row
subsampling is not credited (sampling rate 1: an upper bound). Leaf values, node covers and every
split are computed from the noised sums (post-processing).
"""

from __future__ import annotations

import math
import secrets

import numpy as np

from fedcredit.credit.histograms import G_BOUND, H_BOUND
from fedcredit.credit.trees import TreeSettings
from fedcredit.privacy.accountant import Release
from fedcredit.privacy.gate import RunShape

HESSIAN_SCALE = 2.0     # s: H's share of the sensitivity (its noise sd is z·Δ/s)


def histogram_sensitivity(columns: int) -> float:
    """Δ of one level's release over `columns` transform columns (see the module docstring)."""
    return math.sqrt(max(columns, 1) * (G_BOUND ** 2 + (HESSIAN_SCALE * H_BOUND) ** 2))


def noise_sd(noise_multiplier: float, columns: int) -> tuple[float, float]:
    """(sd on each gradient sum, sd on each hessian sum) of one level's release."""
    sd = noise_multiplier * histogram_sensitivity(columns)
    return sd, sd / HESSIAN_SCALE


def noisy_histograms(grad: np.ndarray, hess: np.ndarray, noise_multiplier: float, columns: int, *,
                     rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray, Release, float]:
    """(noised G, noised H, the release to charge, sd on each G cell)."""
    rng = rng or np.random.default_rng(secrets.randbits(128))
    sd_g, sd_h = noise_sd(noise_multiplier, columns)
    return (grad + rng.normal(0.0, sd_g, grad.shape), hess + rng.normal(0.0, sd_h, hess.shape),
            Release(noise_multiplier, 1.0, 1), sd_g)


def tree_run_shape(trees: TreeSettings, *, rows: int, evaluations: int, train_rows: tuple[float, float],
                   test_rows: tuple[float, float], train_parts: tuple[tuple[float, float], ...] = ()) -> RunShape:
    """A gbdt run as the gate plans it: `trees` rounds of `max_depth` Gaussian mechanisms at sampling
    rate 1 (one "batch" of all `rows` rows, `max_depth` "epochs" of one step: a level each)."""
    rows = max(int(rows), 1)
    return RunShape(trees.trees, rows, trees.max_depth, rows, evaluations, train_rows, test_rows, unit="tree",
                    train_parts=train_parts)
