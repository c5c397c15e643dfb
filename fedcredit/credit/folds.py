"""Cross-validation folds of a partner's training rows, from each row's own content.

A partner's training rows are those whose content-keyed fraction (`fedcredit.credit.loading.row_fractions`)
lies in [test_fraction, 1). Fold k of K is the k-th of K equal sub-intervals of that range:

    fold k = [t + k·w, t + (k+1)·w),   t = test_fraction,  w = (1 − t) / K

So every partner splits its own rows into the same fold ids 0 … K−1 without any row id leaving it;
a row's fold never depends on the other rows (adding or removing a row moves no other row between
folds: the privacy ledger can name each fold as one interval of rows, see
`fedcredit.privacy.accountant.Charge`); the same data gives the same folds in every run; the folds are
disjoint and cover the training rows; and each row lands in each fold with probability 1/K, so fold
sizes are balanced in expectation (multinomial; exact balance would need a row's fold to depend on
the others' ranks, which would break the accounting above). The test rows (below t) are never in a fold.
"""

from __future__ import annotations

import numpy as np

MIN_FOLD_ROWS = 10   # each fold of each partner: at least this many rows, and a bad and a good one


def fold_interval(test_fraction: float, folds: int, fold: int) -> tuple[float, float]:
    """The row fractions [lo, hi) of fold `fold` (0-based) of `folds` (ValueError outside 0 … folds−1)."""
    if folds < 2 or not 0 <= fold < folds:
        raise ValueError(f"fold {fold} of {folds}: need folds ≥ 2 and 0 ≤ fold < folds")
    width = (1.0 - test_fraction) / folds
    hi = 1.0 if fold == folds - 1 else test_fraction + (fold + 1) * width
    return (test_fraction + fold * width, hi)


def assign_folds(fractions: np.ndarray, test_fraction: float, folds: int) -> np.ndarray:
    """Fold id (0 … folds−1) of each training row; −1 for a test row (fraction below `test_fraction`).

    `fractions`: shape (n,), each row's content-keyed place in [0, 1)."""
    if folds < 2:
        raise ValueError(f"folds must be ≥ 2 (got {folds})")
    fractions = np.asarray(fractions, dtype=np.float64)
    width = (1.0 - test_fraction) / folds
    ids = np.floor((fractions - test_fraction) / width).astype(np.int64)
    ids = np.minimum(ids, folds - 1)          # a fraction rounding onto 1.0 stays in the last fold
    return np.where(fractions < test_fraction, -1, ids)


def training_position(fractions: np.ndarray, test_fraction: float, held: tuple[float, float]) -> np.ndarray:
    """Each training row's place in [0, 1) among the rows that train while the fold `held` (its
    interval, `fold_interval`) is held out: that interval cut out of [test_fraction, 1) and the rest
    stretched to [0, 1); the stopping rule holds the same content-keyed share of them out as
    validation rows. Shape (n,)."""
    lo, hi = held
    f = np.asarray(fractions, dtype=np.float64)
    shifted = np.where(f >= hi, f - (hi - lo), f)
    return (shifted - test_fraction) / ((1.0 - test_fraction) - (hi - lo))


def fold_problem(fractions: np.ndarray, label: np.ndarray, test_fraction: float, folds: int) -> str:
    """"" when every fold of these training rows has at least MIN_FOLD_ROWS rows, a bad and a good
    one (its validation AUC is defined); else what falls short, e.g. "fold 3 holds 4 rows (0 bad)"."""
    ids = assign_folds(fractions, test_fraction, folds)
    label = np.asarray(label)
    for k in range(folds):
        in_fold = ids == k
        rows, bad = int(in_fold.sum()), int(label[in_fold].sum())
        if rows < MIN_FOLD_ROWS or bad == 0 or bad == rows:
            return f"fold {k + 1} of {folds} would hold {rows} row(s) ({bad} bad)"
    return ""


def most_folds(fractions: np.ndarray, label: np.ndarray, test_fraction: float, upto: int) -> int:
    """The largest K ≤ `upto` (at least 2) whose folds all pass `fold_problem`; 0 if none does."""
    for k in range(upto, 1, -1):
        if not fold_problem(fractions, label, test_fraction, k):
            return k
    return 0
