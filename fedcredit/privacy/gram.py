"""Differential privacy of the joint Gram matrix S = Z^T Z of a vertical federation's joined rows.

Z = [Z_1 | … | Z_P], one block of columns per party; the label holder's block is [1, X, y]. Each
party p clips every transformed row of its features to a public L2 bound and adds Gaussian noise
(sd = σ_p · gram_sensitivity) to every block involving its own columns: the upper triangle
(with the diagonal) of its own block Z_p^T Z_p, and each cross block Z_p^T Z_q once (a cross
block gets the noise of both its parties). σ_p is the noise multiplier of the party's privacy
gate, one Gaussian release (sample rate 1, one step) charged to its ledger.

Row bounds. `row_bound(k) = ROW_BOUND_PER_COLUMN · sqrt(k)` for a party with k source feature
columns, counted as they weigh in a transformed row's squared norm (`norm_columns`): a standardised
numeric column ≈ 1 on average, a missing indicator ≤ 1, and a categorical column exactly 1 whatever its
number of one-hot levels. The count depends on the party's column list and its transform's kept
columns only, so the bound is public (no data value). The label holder does not clip its constant
1 and its label y ∈ {0, 1}: they add 1 + y² ≤ 2 to the squared row norm, so its block's bound is
sqrt(row_bound(k)² + 2) (`block_bound(k, label_holder=True)`).

Neighbouring relation. Sensitivities are for adding or removing one joined row (the relation of
fedcredit's accountant). PSI already tells the label holder which keys are joined; to protect a
party's values of a row whose membership is known, the relation is "replace one row's values",
whose sensitivity is twice as large (`gram_sensitivity(..., replace_one=True)`).
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence

import numpy as np

from fedcredit.credit.features import FeatureTransform
from fedcredit.privacy.gate import RunShape

ROW_BOUND_PER_COLUMN = 0.75   # c in row_bound(k) = c·sqrt(k): chosen by benchmarks/bench_vertical_lr.py --tune
LABEL_HOLDER_EXTRA = 2.0      # the constant 1 and the label y ∈ {0, 1}: 1 + y² ≤ 2 in the squared row norm

__all__ = ["ROW_BOUND_PER_COLUMN", "block_bound", "block_noise", "clip_rows", "gram_sensitivity", "norm_columns",
           "row_bound", "symmetric_noise"]


def _rng(rng: np.random.Generator | None) -> np.random.Generator:
    return rng or np.random.default_rng(secrets.randbits(128))


def norm_columns(transform: FeatureTransform) -> int:
    """The column count `row_bound` takes for a party's fitted transform: kept numeric columns, their
    missing indicators, and categorical columns (one each, however many one-hot levels)."""
    if transform.binned is not None:
        return len(transform.binned.columns)
    return len(transform.numeric) + sum(r.indicator for r in transform.numeric.values()) + len(transform.categorical)


def row_bound(columns: int, *, per_column: float = ROW_BOUND_PER_COLUMN) -> float:
    """The public L2 bound a party clips each transformed feature row to: per_column · sqrt(columns),
    `columns` counted by `norm_columns`."""
    if columns < 1:
        raise ValueError(f"a party needs at least one feature column (got {columns})")
    if not per_column > 0:
        raise ValueError(f"per_column must be > 0 (got {per_column})")
    return per_column * math.sqrt(columns)


def block_bound(columns: int, *, label_holder: bool = False, per_column: float = ROW_BOUND_PER_COLUMN) -> float:
    """The L2 bound of a party's whole row block: row_bound(columns), with the label holder's
    unclipped constant and label added (sqrt(row_bound² + 2))."""
    bound = row_bound(columns, per_column=per_column)
    return math.sqrt(bound * bound + LABEL_HOLDER_EXTRA) if label_holder else bound


def clip_rows(x: np.ndarray, bound: float) -> np.ndarray:
    """Rows (n × k) scaled down to L2 norm ≤ `bound` (rows already within it unchanged); float64."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D matrix of rows (got {x.ndim}-D)")
    if not bound > 0:
        raise ValueError(f"the bound must be > 0 (got {bound})")
    if not np.all(np.isfinite(x)):
        raise ValueError("rows hold a non-finite value (NaN or infinity)")
    norms = np.linalg.norm(x, axis=1)
    return x * (bound / np.maximum(norms, bound))[:, None]


def gram_sensitivity(own_bound: float, all_bounds: Sequence[float], *, replace_one: bool = False) -> float:
    """L2 sensitivity of what party p releases — the upper triangle (with the diagonal) of Z_p^T Z_p
    and every cross block Z_p^T Z_q, q ≠ p — to adding or removing one joined row z = (z_1, …, z_P)
    with ||z_q|| ≤ C_q (`all_bounds` includes `own_bound` = C_p): C_p · sqrt(Σ_q C_q²).

    Proof: the row adds z_p z_q^T to block (p, q), and ||z_p z_q^T||_F = ||z_p||·||z_q||; the upper
    triangle of z_p z_p^T has norm ≤ ||z_p||². So the squared change is ≤ Σ_q ||z_p||²·||z_q||² =
    ||z_p||²·||z||² ≤ C_p²·Σ_q C_q².
    `replace_one`: changing one row's values z_p → z_p' (others fixed) moves each block by
    (z_p − z_p') z_q^T, and the own block by z_p z_p^T − z_p' z_p'^T: at most twice the above."""
    bounds = [float(b) for b in all_bounds]
    if not bounds or min(bounds) <= 0 or own_bound <= 0:
        raise ValueError("bounds must be > 0, and all_bounds must list every party's (the own one included)")
    if not any(math.isclose(own_bound, b) for b in bounds):
        raise ValueError(f"own_bound {own_bound} is not among all_bounds {bounds}")
    return (2.0 if replace_one else 1.0) * own_bound * math.sqrt(sum(b * b for b in bounds))


def symmetric_noise(size: int, sd: float, rng: np.random.Generator | None = None) -> np.ndarray:
    """size × size Gaussian noise N(0, sd²) drawn on the upper triangle (diagonal included) and
    mirrored below it: for a symmetric diagonal block released as its upper triangle."""
    if size < 0 or not sd >= 0:
        raise ValueError(f"need size ≥ 0 and sd ≥ 0 (got {size}, {sd})")
    upper = np.triu(_rng(rng).normal(0.0, sd, size=(size, size)))
    return upper + np.triu(upper, 1).T


def block_noise(rows: int, cols: int, sd: float, rng: np.random.Generator | None = None) -> np.ndarray:
    """rows × cols independent N(0, sd²) noise for a cross block (released once, not mirrored)."""
    if rows < 0 or cols < 0 or not sd >= 0:
        raise ValueError(f"need rows, cols ≥ 0 and sd ≥ 0 (got {rows}, {cols}, {sd})")
    return _rng(rng).normal(0.0, sd, size=(rows, cols))


def vertical_run_shape(rows: int, *, label_holder: bool, test_fraction: float) -> RunShape:
    """What one vertical run releases at a party, for its privacy gate: the two statistics releases of its own
    transform and one Gram release on the training customers (sampling rate 1, one step), and at the label
    holder one evaluation on the held-out customers (the split is a hash of the key: disjoint rows)."""
    rows = max(int(rows), 1)
    return RunShape(1, rows, 1, rows, 1 if label_holder else 0, (test_fraction, 1.0), (0.0, test_fraction))
